// Package semver parses and orders Semantic Versioning 2.0.0 versions
// (https://semver.org): MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD].
//
// Precedence follows section 11 of the specification exactly: numeric
// identifiers compare numerically, alphanumeric ones in ASCII order, numeric
// identifiers have lower precedence than alphanumeric ones, a longer list of
// pre-release identifiers wins when all preceding ones are equal, a version
// with a pre-release has lower precedence than the same version without one,
// and build metadata is ignored.
package semver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLen bounds the length of a version string accepted by Parse.
const MaxLen = 256

// Version is a parsed semantic version.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string // pre-release identifiers, nil if none
	Build               string   // build metadata, ignored for ordering
}

// Parse parses s strictly: no leading "v", no leading zeros in numeric
// parts, non-empty identifiers of [0-9A-Za-z-].
func Parse(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, errors.New("empty version")
	}
	if len(s) > MaxLen {
		return v, fmt.Errorf("version longer than %d bytes", MaxLen)
	}
	orig := s
	if i := strings.IndexByte(s, '+'); i >= 0 {
		v.Build = s[i+1:]
		s = s[:i]
		if err := idents(v.Build, false); err != nil {
			return Version{}, fmt.Errorf("version %q: build metadata: %w", orig, err)
		}
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		pre := s[i+1:]
		s = s[:i]
		if err := idents(pre, true); err != nil {
			return Version{}, fmt.Errorf("version %q: pre-release: %w", orig, err)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", orig)
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if !numeric(p) {
			return Version{}, fmt.Errorf("version %q: %q is not a number", orig, p)
		}
		if len(p) > 1 && p[0] == '0' {
			return Version{}, fmt.Errorf("version %q: %q has a leading zero", orig, p)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %q out of range", orig, p)
		}
		*nums[i] = n
	}
	return v, nil
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func idents(s string, pre bool) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return errors.New("empty identifier")
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return fmt.Errorf("identifier %q has invalid character %q", id, c)
			}
		}
		if pre && numeric(id) && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("numeric identifier %q has a leading zero", id)
		}
	}
	return nil
}

// String formats v canonically.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare returns -1, 0 or +1 as a has lower, equal or higher precedence
// than b.
func Compare(a, b Version) int {
	if c := cmpU(a.Major, b.Major); c != 0 {
		return c
	}
	if c := cmpU(a.Minor, b.Minor); c != 0 {
		return c
	}
	if c := cmpU(a.Patch, b.Patch); c != 0 {
		return c
	}
	switch {
	case len(a.Pre) == 0 && len(b.Pre) == 0:
		return 0
	case len(a.Pre) == 0:
		return 1
	case len(b.Pre) == 0:
		return -1
	}
	for i := 0; i < len(a.Pre) && i < len(b.Pre); i++ {
		if c := cmpIdent(a.Pre[i], b.Pre[i]); c != 0 {
			return c
		}
	}
	return cmpU(uint64(len(a.Pre)), uint64(len(b.Pre)))
}

func cmpIdent(a, b string) int {
	an, bn := numeric(a), numeric(b)
	switch {
	case an && bn:
		// No leading zeros, so a longer numeral is a larger number; this
		// also orders numerals beyond uint64 correctly.
		if len(a) != len(b) {
			return cmpU(uint64(len(a)), uint64(len(b)))
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
