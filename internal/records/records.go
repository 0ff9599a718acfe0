// Package records converts the input and output files of `fennec run`:
// CSV with a header line into CBOR records, CBOR and JSON input checked and
// passed through as CBOR, and CBOR output rendered as JSON for people. Every
// decoder here reads untrusted files and is bounded and fuzzed.
package records

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Limits on decoded input.
const (
	MaxNesting = 32
	MaxItems   = 1 << 22
	MaxFields  = 1024
)

var (
	decMode, _ = cbor.DecOptions{
		MaxNestedLevels:  MaxNesting,
		MaxArrayElements: MaxItems,
		MaxMapPairs:      MaxItems,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
		DefaultMapType:   nil,
	}.DecMode()
	encMode, _ = cbor.CoreDetEncOptions().EncMode()
)

// Error is an input problem at a place in a named file.
type Error struct {
	File   string
	Line   int    // 1-based, 0 when not line-oriented
	Field  string // column name, when known
	Offset int64  // byte offset, for binary input; -1 when unknown
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %q", e.Field)
	}
	if e.Offset >= 0 && e.Line == 0 {
		fmt.Fprintf(&b, ": at byte %d", e.Offset)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// FromCSV reads CSV with a header line and returns the CBOR encoding of
// {"records": [{column: value}, ...]}. Cells that parse as numbers become
// float64, empty cells are left out, others are strings.
func FromCSV(r io.Reader, file string) ([]byte, int, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, 0, &Error{File: file, Line: 1, Offset: -1, Msg: "empty file: expected a header line"}
	}
	if err != nil {
		return nil, 0, csvErr(file, err)
	}
	if len(header) > MaxFields {
		return nil, 0, &Error{File: file, Line: 1, Offset: -1, Msg: fmt.Sprintf("%d columns exceed the limit of %d", len(header), MaxFields)}
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !utf8.ValidString(h) {
			return nil, 0, &Error{File: file, Line: 1, Offset: -1, Msg: fmt.Sprintf("column %d's name is not valid UTF-8", i+1)}
		}
		if h == "" {
			return nil, 0, &Error{File: file, Line: 1, Offset: -1, Msg: fmt.Sprintf("column %d has an empty name", i+1)}
		}
		if seen[h] {
			return nil, 0, &Error{File: file, Line: 1, Field: h, Offset: -1, Msg: "column name repeated"}
		}
		seen[h] = true
		cols[i] = h
	}
	var recs []map[string]any
	for {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, csvErr(file, err)
		}
		if len(recs) >= MaxItems {
			line, _ := cr.FieldPos(0)
			return nil, 0, &Error{File: file, Line: line, Offset: -1, Msg: fmt.Sprintf("more than %d records", MaxItems)}
		}
		rec := make(map[string]any, len(row))
		for i, cell := range row {
			cell = strings.TrimSpace(cell)
			if cell == "" {
				continue
			}
			if f, err := strconv.ParseFloat(cell, 64); err == nil {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					line, _ := cr.FieldPos(i)
					return nil, 0, &Error{File: file, Line: line, Field: cols[i], Offset: -1, Msg: fmt.Sprintf("%q is not a finite number", cell)}
				}
				rec[cols[i]] = f
			} else if utf8.ValidString(cell) {
				rec[cols[i]] = cell
			} else {
				line, _ := cr.FieldPos(i)
				return nil, 0, &Error{File: file, Line: line, Field: cols[i], Offset: -1, Msg: "text is not valid UTF-8"}
			}
		}
		recs = append(recs, rec)
	}
	b, err := encMode.Marshal(map[string]any{"records": recs})
	return b, len(recs), err
}

func csvErr(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "wrong number of fields (the header has a different count)"
		}
		return &Error{File: file, Line: pe.Line, Offset: -1, Msg: fmt.Sprintf("column %d: %s", pe.Column, msg)}
	}
	return &Error{File: file, Offset: -1, Msg: err.Error()}
}

// CheckCBOR verifies that b is exactly one well-formed CBOR item within the
// nesting and size limits.
func CheckCBOR(b []byte, file string) error {
	if len(b) == 0 {
		return &Error{File: file, Offset: 0, Msg: "empty input"}
	}
	var v any
	rest, err := decMode.UnmarshalFirst(b, &v)
	if err != nil {
		off := int64(-1)
		var se *cbor.SyntaxError
		if errors.As(err, &se) {
			off = 0
		}
		return &Error{File: file, Offset: off, Msg: "not valid CBOR: " + err.Error()}
	}
	if len(rest) > 0 {
		return &Error{File: file, Offset: int64(len(b) - len(rest)), Msg: fmt.Sprintf("%d bytes of trailing data after the CBOR item", len(rest))}
	}
	return nil
}

// FromJSON converts JSON input to CBOR.
func FromJSON(b []byte, file string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
			return nil, &Error{File: file, Line: line, Offset: se.Offset, Msg: "invalid JSON: " + err.Error()}
		}
		return nil, &Error{File: file, Offset: -1, Msg: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &Error{File: file, Offset: dec.InputOffset(), Msg: "trailing data after the JSON value"}
	}
	return encMode.Marshal(jsonNumbers(v, 0))
}

func jsonNumbers(v any, depth int) any {
	if depth > MaxNesting {
		return nil
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = jsonNumbers(x[i], depth+1)
		}
	case map[string]any:
		for k := range x {
			x[k] = jsonNumbers(x[k], depth+1)
		}
	}
	return v
}

// ToJSON renders one CBOR item as indented JSON: maps with non-string keys
// get their keys formatted, byte strings become base64, non-finite floats
// become strings. The decoded item is held in memory (about 40 bytes per
// CBOR item): callers bound len(b).
func ToJSON(b []byte) ([]byte, error) {
	var v any
	if err := decMode.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: output is not valid CBOR: %v", ErrRender, err)
	}
	return json.MarshalIndent(jsonable(v), "", "  ")
}

// ErrRender is the error of ToJSON and WriteJSON for output that is not
// one valid CBOR item.
var ErrRender = errors.New("cannot render the output")

// WriteJSON is ToJSON written to w, followed by a newline. Its memory is
// ToJSON's: the decoded item and the JSON text (at most about 7 bytes per
// CBOR byte, for arrays of small integers).
func WriteJSON(w io.Writer, b []byte) error {
	var v any
	if err := decMode.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%w: output is not valid CBOR: %v", ErrRender, err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonable(v))
}

func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case map[string]any:
		for k, val := range x {
			x[k] = jsonable(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case float32:
		return jsonable(float64(x))
	case cbor.Tag:
		return map[string]any{"tag": x.Number, "content": jsonable(x.Content)}
	case cbor.SimpleValue:
		return fmt.Sprintf("simple(%d)", x)
	}
	return v
}

// SortedKeys returns a map's keys in order (for table output).
func SortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
