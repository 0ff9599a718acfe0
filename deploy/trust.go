package deploy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fennec-edge/fennec/deploy/internal/envelope"
	"github.com/fennec-edge/fennec/deploy/internal/semver"
	"github.com/fennec-edge/fennec/internal/config"
)

// Trust is the set of keys a device accepts: publishers, whose signatures
// make a bundle installable, and operators, whose signatures authorise a
// rollback to an older version.
type Trust struct {
	Publishers []TrustedKey
	Operators  []TrustedKey
}

// TrustedKey is one entry of a trust file.
type TrustedKey struct {
	Name string
	Key  ed25519.PublicKey
	// Modules, if not empty, restricts a publisher key to these module
	// names.
	Modules []string
}

type trustFile struct {
	Publisher []trustEntry `toml:"publisher"`
	Operator  []trustEntry `toml:"operator"`
}

type trustEntry struct {
	Name    string   `toml:"name"`
	Key     string   `toml:"key"`
	Modules []string `toml:"modules"`
	Role    string   `toml:"role"` // tolerated so that a .pub file's body can be pasted as is
}

// LoadTrust reads a trust file.
func LoadTrust(path string) (*Trust, error) {
	data, _, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	return ParseTrust(data, path)
}

// ParseTrust parses a trust file's text; source names it in errors, which
// give the file, line and field:
//
//	[[publisher]]
//	name = "acme"
//	key = "ed25519:BASE64"
//	modules = ["classifier"]   # optional restriction
//
//	[[operator]]
//	name = "ops"
//	key = "ed25519:BASE64"
func ParseTrust(data []byte, source string) (*Trust, error) {
	var tf trustFile
	md, err := config.DecodeTOML(data, source, &tf)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0]
		table, field := "", k.String()
		if len(k) == 2 {
			table, field = k[0], k[1]
		}
		return nil, fmt.Errorf("%s:%d: unknown field %q (want [[publisher]] or [[operator]] tables with name, key, modules)",
			source, locate(data, table, -1, field), k.String())
	}
	t := &Trust{}
	seen := map[string]string{}
	for _, sec := range []struct {
		table   string
		entries []trustEntry
		dst     *[]TrustedKey
	}{{"publisher", tf.Publisher, &t.Publishers}, {"operator", tf.Operator, &t.Operators}} {
		for i, e := range sec.entries {
			where := func(field string) string {
				return fmt.Sprintf("%s:%d: %s[%d].%s", source, locate(data, sec.table, i, field), sec.table, i, field)
			}
			if !validName(e.Name) {
				return nil, fmt.Errorf("%s: %q: want 1-64 characters of A-Z a-z 0-9 _ -", where("name"), e.Name)
			}
			if e.Role != "" && e.Role != sec.table {
				return nil, fmt.Errorf("%s: %q in a [[%s]] table", where("role"), e.Role, sec.table)
			}
			if e.Key == "" {
				return nil, fmt.Errorf("%s: missing", where("key"))
			}
			pub, err := ParseKey(e.Key)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where("key"), err)
			}
			id := sec.table + string(pub)
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s: same key as %s %q", where("key"), sec.table, prev)
			}
			seen[id] = e.Name
			if e.Modules != nil && len(e.Modules) == 0 {
				return nil, fmt.Errorf("%s: empty list would trust the key for nothing; omit the field to allow every module", where("modules"))
			}
			if sec.table == "operator" && e.Modules != nil {
				return nil, fmt.Errorf("%s: only publisher keys can be restricted to modules", where("modules"))
			}
			*sec.dst = append(*sec.dst, TrustedKey{Name: e.Name, Key: pub, Modules: e.Modules})
		}
	}
	if len(t.Publishers) == 0 {
		return nil, fmt.Errorf("%s: no [[publisher]] keys; a device that trusts no publisher can install nothing", source)
	}
	return t, nil
}

// Refusal reasons. Every refusal is an *Refused carrying one of these codes.
const (
	ReasonMalformed    = "malformed"     // not a well-formed bundle
	ReasonUnsigned     = "unsigned"      // no publisher signature at all
	ReasonTampered     = "tampered"      // content does not match the envelope's digest
	ReasonBadSignature = "bad-signature" // a trusted key's signature does not verify
	ReasonUntrusted    = "untrusted-key" // signed, but by no key trusted for this module
	ReasonDowngrade    = "downgrade"     // not newer than the running version, no operator rollback
)

// Refused is the error for a bundle a device will not run.
type Refused struct {
	Reason string // one of the Reason constants
	Detail string // a sentence for a person
}

func (r *Refused) Error() string { return "bundle refused (" + r.Reason + "): " + r.Detail }

// IsRefused returns the refusal reason of err, if it is a refusal.
func IsRefused(err error) (string, bool) {
	var r *Refused
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}

// Running describes the version a device runs now (zero: none).
type Running struct {
	Name    string
	Version string
	Digest  string
}

// Verified is an accepted bundle with who vouched for it.
type Verified struct {
	Bundle    *Bundle
	Publisher string // name of the trusted publisher key whose signature verified
	Rollback  bool   // accepted as a downgrade on an operator's authority
	Operator  string // name of that operator key
	Same      bool   // the bundle is the one already running
}

// Signers lists who vouched for the bundle, for audit records.
func (v *Verified) Signers() string {
	s := "publisher:" + v.Publisher
	if v.Rollback {
		s += ",operator:" + v.Operator
	}
	return s
}

func keyDesc(pub []byte) string { return "ed25519 key " + Fingerprint(pub) }

// Verify decides whether b may replace the running version. The checks run
// in this order: digest (tampered), publisher signatures (unsigned,
// bad-signature, untrusted-key), then version order (downgrade, unless a
// trusted operator signed a rollback).
func (t *Trust) Verify(b *Bundle, run Running) (*Verified, error) {
	env := b.env
	d := envelope.Digest(env.Manifest, env.Wasm)
	if !bytes.Equal(d[:], env.Digest) {
		return nil, &Refused{ReasonTampered, fmt.Sprintf("content digest %x does not match the envelope's digest %x: the manifest or Wasm was changed after packing", d[:8], env.Digest[:8])}
	}
	if err := b.checkModels(); err != nil {
		return nil, &Refused{ReasonTampered, err.Error()}
	}
	v := &Verified{Bundle: b}
	var badSig, notForModule, untrusted []string
	signed := false
	for _, s := range env.Signatures {
		if s.Kind != envelope.KindPublish {
			continue
		}
		signed = true
		k := findKey(t.Publishers, s.Key)
		if k == nil {
			untrusted = append(untrusted, keyDesc(s.Key))
			continue
		}
		if !ed25519.Verify(k.Key, envelope.SignedMessage(s.Kind, env.Digest), s.Sig) {
			badSig = append(badSig, fmt.Sprintf("%q", k.Name))
			continue
		}
		if k.Modules != nil && !slices.Contains(k.Modules, b.name) {
			notForModule = append(notForModule, fmt.Sprintf("%q", k.Name))
			continue
		}
		v.Publisher = k.Name
		break
	}
	switch {
	case v.Publisher != "":
	case !signed:
		return nil, &Refused{ReasonUnsigned, fmt.Sprintf("module %s %s has no publisher signature", b.name, b.Version())}
	case len(badSig) > 0:
		return nil, &Refused{ReasonBadSignature, fmt.Sprintf("the signature by trusted publisher %s does not verify: the bundle was changed after signing, or the signature was made by another key", strings.Join(badSig, ", "))}
	case len(notForModule) > 0:
		return nil, &Refused{ReasonUntrusted, fmt.Sprintf("publisher %s is not trusted for module %q", strings.Join(notForModule, ", "), b.name)}
	default:
		return nil, &Refused{ReasonUntrusted, fmt.Sprintf("signed only by keys this device does not trust (%s)", strings.Join(untrusted, ", "))}
	}
	if run.Digest != "" && run.Digest == b.Digest() {
		v.Same = true
		return v, nil
	}
	if run.Name != b.name || run.Version == "" {
		return v, nil
	}
	rv, err := semver.Parse(run.Version)
	if err != nil {
		return nil, fmt.Errorf("running version: %w", err)
	}
	if semver.Compare(b.version, rv) > 0 {
		return v, nil
	}
	var badOp []string
	for _, s := range env.Signatures {
		if s.Kind != envelope.KindRollback {
			continue
		}
		k := findKey(t.Operators, s.Key)
		if k == nil {
			continue
		}
		if !ed25519.Verify(k.Key, envelope.SignedMessage(s.Kind, env.Digest), s.Sig) {
			badOp = append(badOp, fmt.Sprintf("%q", k.Name))
			continue
		}
		v.Rollback, v.Operator = true, k.Name
		return v, nil
	}
	detail := fmt.Sprintf("module %s version %s is not newer than the running %s; installing it needs a rollback signed by a trusted operator key", b.name, b.Version(), rv)
	if len(badOp) > 0 {
		detail += fmt.Sprintf(" (the rollback signature by operator %s does not verify)", strings.Join(badOp, ", "))
	}
	return nil, &Refused{ReasonDowngrade, detail}
}

func findKey(keys []TrustedKey, pub []byte) *TrustedKey {
	for i := range keys {
		if bytes.Equal(keys[i].Key, pub) {
			return &keys[i]
		}
	}
	return nil
}

// VerifyBytes decodes raw and verifies it; a malformed bundle is refused
// with ReasonMalformed.
func (t *Trust) VerifyBytes(raw []byte, lim Limits, run Running) (*Verified, error) {
	b, err := DecodeBundle(raw, lim)
	if err != nil {
		return nil, &Refused{ReasonMalformed, err.Error()}
	}
	return t.Verify(b, run)
}
