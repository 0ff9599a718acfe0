package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// FileError is a problem in a configuration file at a line and field:
// "SOURCE:LINE: field "F": MSG". Every TOML file fennec reads (manifests,
// host configuration, trust, access and key files) reports its errors so.
type FileError struct {
	Source string
	Line   int    // 0 when unknown
	Field  string // dotted key, "" when none
	Msg    string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Type mismatches come from the decoder as plain errors:
// toml: line N (last key "k"): msg
var tomlErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// DecodeTOML decodes data into v, turning a TOML syntax or type error into
// a *FileError at the line and key it names; source names the file.
func DecodeTOML(data []byte, source string, v any) (toml.MetaData, error) {
	md, err := toml.Decode(string(data), v)
	if err == nil {
		return md, nil
	}
	var pe toml.ParseError
	var ppe *toml.ParseError
	if errors.As(err, &ppe) {
		pe = *ppe
	}
	if ppe != nil || errors.As(err, &pe) {
		msg := pe.Message
		if msg == "" {
			msg = pe.Error()
			if _, after, ok := strings.Cut(msg, "): "); ok {
				msg = after
			}
		}
		return md, &FileError{Source: source, Line: pe.Position.Line, Field: pe.LastKey, Msg: msg}
	}
	if sm := tomlErrRE.FindStringSubmatch(err.Error()); sm != nil {
		line, _ := strconv.Atoi(sm[1])
		return md, &FileError{Source: source, Line: line, Field: sm[2], Msg: sm[3]}
	}
	return md, &FileError{Source: source, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}
