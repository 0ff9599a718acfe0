// Package cbor is a small CBOR (RFC 8949) codec for fennec guests: a
// streaming Encoder and Decoder with typed methods (maps, arrays, text and
// byte strings, integers, floats of every width including half precision,
// booleans, null), so that a type's Marshal/Unmarshal is straight-line code
// without reflection. It is what sdk.Marshal/Unmarshal use; the SDK's
// shared structures (sdk.Model, sdk.TensorData, sdk.TrainInput, ...) and the
// example modules implement Marshaler and Unmarshaler with it.
//
// Encoding is deterministic ("core deterministic" of RFC 8949 §4.2, as
// fxamacker/cbor's CoreDetEncOptions): integers and lengths in their
// shortest form, floats in the shortest width that keeps the value exactly
// (72.0 is the half float 0xf95080), NaN as 0xf97e00, map keys sorted by
// their encoded bytes (for text keys: shorter first, then bytewise), nil
// slices and maps as null. Equal values give equal bytes, and the bytes
// equal fxamacker/cbor's for the same value (tested).
//
// Decoding treats its input as untrusted: every length is checked against
// the bytes that remain before anything is allocated (an array of n
// elements needs at least n more bytes, a map 2n), nesting is limited
// (MaxDepth), and malformed input is an *Error with the byte offset, never a
// panic. Both definite and indefinite lengths are accepted. Typed readers
// take null (and undefined) as the zero value, as fxamacker/cbor does;
// integers are accepted where a float is read.
//
// A type opts into the fast path by implementing
//
//	func (v *T) EncodeCBOR(e *cbor.Encoder)
//	func (v *T) DecodeCBOR(d *cbor.Decoder) error
//
// Marshal and Unmarshal use those methods when present and otherwise fall
// back to reflection over struct fields tagged `cbor:"name"` (options
// "omitempty", "keyasint", and "-" to skip), which keeps arbitrary user
// types working at a higher cost per call.
package cbor

import (
	"errors"
	"strconv"
)

// Marshaler is implemented by types that encode themselves. A value is
// written as exactly one CBOR data item.
type Marshaler interface {
	EncodeCBOR(e *Encoder)
}

// Unmarshaler is implemented by types that decode themselves from exactly
// one data item.
type Unmarshaler interface {
	DecodeCBOR(d *Decoder) error
}

// MaxDepth is the deepest nesting of arrays, maps and tags that Skip, Any
// and the reflection fallback accept.
const MaxDepth = 32

// MaxLen bounds any single array, map or string length, in elements, pairs
// or bytes (besides the bytes that remain in the input).
const MaxLen = 1 << 26

// Error is a decoding or encoding failure. Path names the field where it
// happened ("records[3].hr") when the decoders on the way added it with
// Field and Elem.
type Error struct {
	Offset int    // byte offset in the input; -1 for encoding errors
	Path   string // field path, may be empty
	Msg    string
}

func (e *Error) Error() string {
	s := "cbor: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	if e.Offset >= 0 {
		s += "offset " + strconv.Itoa(e.Offset) + ": "
	}
	return s + e.Msg
}

// Field adds the field name to err's path (err may be nil).
func Field(name string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		if c.Path == "" {
			c.Path = name
		} else if c.Path[0] == '[' {
			c.Path = name + c.Path
		} else {
			c.Path = name + "." + c.Path
		}
		return &c
	}
	return &Error{Offset: -1, Path: name, Msg: err.Error()}
}

// Elem adds the array index i to err's path (err may be nil).
func Elem(i int, err error) error {
	if err == nil {
		return nil
	}
	idx := "[" + strconv.Itoa(i) + "]"
	var e *Error
	if errors.As(err, &e) {
		c := *e
		if c.Path == "" || c.Path[0] == '[' {
			c.Path = idx + c.Path
		} else {
			c.Path = idx + "." + c.Path
		}
		return &c
	}
	return &Error{Offset: -1, Path: idx, Msg: err.Error()}
}

// Marshal encodes v deterministically. A Marshaler (or a pointer to one)
// encodes itself; other values go through reflection.
func Marshal(v any) ([]byte, error) {
	var e Encoder
	e.Value(v)
	if e.err != nil {
		return nil, e.err
	}
	return e.buf, nil
}

// Unmarshal decodes exactly one data item from data into v, a non-nil
// pointer; bytes after it are an error. An Unmarshaler decodes itself;
// other types go through reflection.
func Unmarshal(data []byte, v any) error {
	d := NewDecoder(data)
	if err := d.Value(v); err != nil {
		return err
	}
	return d.End()
}
