package cbor

import (
	"math"
	"slices"
	"strings"
)

// Major types.
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// Encoder appends CBOR data items to a buffer. Its methods write one item
// (or one container head) each; a container's head states its length, so
// the caller writes exactly that many elements (pairs for a map) after it.
// Map keys must be written in deterministic order (SortKeys) for the output
// to be deterministic; the helpers that take Go maps sort for you.
type Encoder struct {
	buf []byte
	err error
}

// NewEncoder returns an Encoder that appends to buf (which may be nil).
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes returns the encoded bytes.
func (e *Encoder) Bytes() []byte { return e.buf }

// Err returns the first error of Value (unsupported types); the typed
// methods cannot fail.
func (e *Encoder) Err() error { return e.err }

// Reset empties the buffer (keeping its capacity) and clears the error.
func (e *Encoder) Reset() { e.buf, e.err = e.buf[:0], nil }

// Len is the number of bytes written.
func (e *Encoder) Len() int { return len(e.buf) }

// Grow makes room for n more bytes.
func (e *Encoder) Grow(n int) { e.buf = slices.Grow(e.buf, n) }

func (e *Encoder) fail(msg string) {
	if e.err == nil {
		e.err = &Error{Offset: -1, Msg: msg}
	}
}

func (e *Encoder) head(major byte, v uint64) {
	m := major << 5
	switch {
	case v < 24:
		e.buf = append(e.buf, m|byte(v))
	case v <= math.MaxUint8:
		e.buf = append(e.buf, m|24, byte(v))
	case v <= math.MaxUint16:
		e.buf = append(e.buf, m|25, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		e.buf = append(e.buf, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		e.buf = append(e.buf, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// Uint writes an unsigned integer.
func (e *Encoder) Uint(v uint64) { e.head(majorUint, v) }

// Int writes a signed integer.
func (e *Encoder) Int(v int64) {
	if v < 0 {
		e.head(majorNeg, uint64(-(v + 1)))
		return
	}
	e.head(majorUint, uint64(v))
}

// Text writes a text string.
func (e *Encoder) Text(s string) {
	e.head(majorText, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// ByteString writes a byte string; nil writes null (as a nil []byte field
// encodes in fxamacker/cbor's default mode).
func (e *Encoder) ByteString(b []byte) {
	if b == nil {
		e.Null()
		return
	}
	e.head(majorBytes, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// Array writes the head of an array of n elements.
func (e *Encoder) Array(n int) { e.head(majorArray, uint64(n)) }

// Map writes the head of a map of n key/value pairs.
func (e *Encoder) Map(n int) { e.head(majorMap, uint64(n)) }

// Tag writes a tag number; the tagged item follows.
func (e *Encoder) Tag(n uint64) { e.head(majorTag, n) }

// Bool writes true or false.
func (e *Encoder) Bool(b bool) {
	if b {
		e.buf = append(e.buf, 0xf5)
	} else {
		e.buf = append(e.buf, 0xf4)
	}
}

// Null writes null.
func (e *Encoder) Null() { e.buf = append(e.buf, 0xf6) }

// Float64 writes f in the shortest float width that preserves it exactly
// (half, single or double); NaN as the half 0x7e00 and infinities as half
// floats, as core deterministic encoding requires.
func (e *Encoder) Float64(f float64) {
	f32 := float32(f)
	if float64(f32) != f && f == f { // needs double (NaN falls through)
		e.Float64Fixed(f)
		return
	}
	e.Float32(f32)
}

// Float32 writes f in the shortest float width that preserves it exactly.
func (e *Encoder) Float32(f float32) {
	if f != f {
		e.buf = append(e.buf, 0xf9, 0x7e, 0x00)
		return
	}
	if math.IsInf(float64(f), 0) {
		if f > 0 {
			e.buf = append(e.buf, 0xf9, 0x7c, 0x00)
		} else {
			e.buf = append(e.buf, 0xf9, 0xfc, 0x00)
		}
		return
	}
	if h, ok := halfExact(f); ok {
		e.buf = append(e.buf, 0xf9, byte(h>>8), byte(h))
		return
	}
	e.Float32Fixed(f)
}

// Float64Fixed writes f as a double (9 bytes) whatever its value.
func (e *Encoder) Float64Fixed(f float64) {
	u := math.Float64bits(f)
	e.buf = append(e.buf, 0xfb, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
		byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// Float32Fixed writes f as a single (5 bytes) whatever its value.
func (e *Encoder) Float32Fixed(f float32) {
	u := math.Float32bits(f)
	e.buf = append(e.buf, 0xfa, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// Float16 writes f as a half float (3 bytes), rounded to nearest even;
// values beyond half's range become infinities.
func (e *Encoder) Float16(f float32) {
	h := halfFromFloat32(f)
	e.buf = append(e.buf, 0xf9, byte(h>>8), byte(h))
}

// Raw appends b, which must be one or more complete encoded items.
func (e *Encoder) Raw(b []byte) { e.buf = append(e.buf, b...) }

// Float64s writes an array of shortest-form floats; nil writes null.
func (e *Encoder) Float64s(v []float64) {
	if v == nil {
		e.Null()
		return
	}
	e.Array(len(v))
	for _, f := range v {
		e.Float64(f)
	}
}

// Float32s writes an array of shortest-form floats; nil writes null.
func (e *Encoder) Float32s(v []float32) {
	if v == nil {
		e.Null()
		return
	}
	e.Array(len(v))
	for _, f := range v {
		e.Float32(f)
	}
}

// Uint64s writes an array of unsigned integers; nil writes null.
func (e *Encoder) Uint64s(v []uint64) {
	if v == nil {
		e.Null()
		return
	}
	e.Array(len(v))
	for _, u := range v {
		e.Uint(u)
	}
}

// Strings writes an array of text strings; nil writes null.
func (e *Encoder) Strings(v []string) {
	if v == nil {
		e.Null()
		return
	}
	e.Array(len(v))
	for _, s := range v {
		e.Text(s)
	}
}

// Encode writes a Marshaler (or null for a nil one).
func (e *Encoder) Encode(m Marshaler) {
	if m == nil {
		e.Null()
		return
	}
	m.EncodeCBOR(e)
}

// KeyLess reports whether text key a sorts before b in deterministic
// encoding (shorter first, then bytewise).
func KeyLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// SortKeys sorts text map keys into deterministic order.
func SortKeys(keys []string) {
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
}

// SortedKeys returns m's keys in deterministic order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	SortKeys(keys)
	return keys
}

// EncodeMap writes a map with text keys in deterministic order, each value
// with enc; a nil map writes null.
func EncodeMap[V any](e *Encoder, m map[string]V, enc func(*Encoder, V)) {
	if m == nil {
		e.Null()
		return
	}
	e.Map(len(m))
	for _, k := range SortedKeys(m) {
		e.Text(k)
		enc(e, m[k])
	}
}

// EncodeFloat64 and friends are value encoders for EncodeMap.
func EncodeFloat64(e *Encoder, v float64) { e.Float64(v) }

// EncodeUint64 writes v; for EncodeMap.
func EncodeUint64(e *Encoder, v uint64) { e.Uint(v) }

// EncodeString writes v; for EncodeMap.
func EncodeString(e *Encoder, v string) { e.Text(v) }

// EncodeFloat64s writes v; for EncodeMap.
func EncodeFloat64s(e *Encoder, v []float64) { e.Float64s(v) }
