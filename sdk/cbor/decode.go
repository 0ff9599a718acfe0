package cbor

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Decoder reads CBOR data items from a byte slice. Each typed method reads
// one item (or one container head) and fails with an *Error, leaving the
// decoder unusable for further reads, when the item is malformed, truncated
// or of another type. Null and undefined read as the zero value.
//
// Containers are read as a head followed by their elements:
//
//	n, err := d.Map()
//	for d.More(&n) {
//		key, err := d.Key()
//		...
//		err = d.Skip() // or a typed read of the value
//	}
//
// n is the pair (element) count, or -1 for an indefinite-length container,
// which More ends at its break code.
type Decoder struct {
	data  []byte
	off   int
	depth int
}

// NewDecoder returns a Decoder reading data (not copied).
func NewDecoder(data []byte) *Decoder { return &Decoder{data: data} }

// Reset makes d read data from the start.
func (d *Decoder) Reset(data []byte) { d.data, d.off, d.depth = data, 0, 0 }

// Offset is the number of bytes consumed.
func (d *Decoder) Offset() int { return d.off }

// Remaining is the number of bytes left.
func (d *Decoder) Remaining() int { return len(d.data) - d.off }

// End returns an error when bytes remain after the items read.
func (d *Decoder) End() error {
	if d.off != len(d.data) {
		return d.errAt(d.off, strconv.Itoa(len(d.data)-d.off)+" bytes of extraneous data after the item")
	}
	return nil
}

// Enter counts one level of nesting for decoders of recursive types and
// fails beyond MaxDepth; call Leave when the nested item is done.
func (d *Decoder) Enter() error {
	if d.depth >= MaxDepth {
		return d.errAt(d.off, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	d.depth++
	return nil
}

// Leave ends a level of nesting counted by Enter.
func (d *Decoder) Leave() { d.depth-- }

func (d *Decoder) errAt(off int, msg string) error {
	d.off = len(d.data) // stop any loop over the rest
	return &Error{Offset: off, Msg: msg}
}

// Fail returns an *Error at offset off (where the offending item started,
// from Offset) for a semantic check of the caller's, such as a value out of
// range; like every decoding error it ends further reading.
func (d *Decoder) Fail(off int, msg string) error { return d.errAt(off, msg) }

var errEOF = "unexpected end of input"

// head reads an item head. info 31 means an indefinite length (majors 2-5)
// or the break code (major 7).
func (d *Decoder) head() (major, info byte, arg uint64, err error) {
	if d.off >= len(d.data) {
		return 0, 0, 0, d.errAt(d.off, errEOF)
	}
	start := d.off
	b := d.data[d.off]
	d.off++
	major, info = b>>5, b&31
	switch {
	case info < 24:
		return major, info, uint64(info), nil
	case info <= 27:
		n := 1 << (info - 24)
		if len(d.data)-d.off < n {
			return 0, 0, 0, d.errAt(start, errEOF)
		}
		p := d.data[d.off : d.off+n]
		d.off += n
		switch n {
		case 1:
			arg = uint64(p[0])
			if major == majorSimple && arg < 32 {
				return 0, 0, 0, d.errAt(start, "simple value "+strconv.Itoa(int(arg))+" in two-byte form")
			}
		case 2:
			arg = uint64(p[0])<<8 | uint64(p[1])
		case 4:
			arg = uint64(p[0])<<24 | uint64(p[1])<<16 | uint64(p[2])<<8 | uint64(p[3])
		default:
			arg = uint64(p[0])<<56 | uint64(p[1])<<48 | uint64(p[2])<<40 | uint64(p[3])<<32 |
				uint64(p[4])<<24 | uint64(p[5])<<16 | uint64(p[6])<<8 | uint64(p[7])
		}
		return major, info, arg, nil
	case info == 31 && (major >= majorBytes && major <= majorMap || major == majorSimple):
		return major, info, 0, nil
	}
	return 0, 0, 0, d.errAt(start, "malformed head byte 0x"+strconv.FormatUint(uint64(b), 16))
}

func isNull(major, info byte) bool { return major == majorSimple && (info == 22 || info == 23) }

func describe(major, info byte) string {
	switch major {
	case majorUint:
		return "unsigned integer"
	case majorNeg:
		return "negative integer"
	case majorBytes:
		return "byte string"
	case majorText:
		return "text string"
	case majorArray:
		return "array"
	case majorMap:
		return "map"
	case majorTag:
		return "tag"
	}
	switch info {
	case 20, 21:
		return "boolean"
	case 22:
		return "null"
	case 23:
		return "undefined"
	case 25, 26, 27:
		return "float"
	case 31:
		return "break code"
	}
	return "simple value"
}

func (d *Decoder) typeErr(start int, want string, major, info byte) error {
	return d.errAt(start, "want "+want+", got "+describe(major, info))
}

// Kind is the type of the next data item.
type Kind uint8

// Kinds, as Peek reports them.
const (
	KindEnd     Kind = iota // no more input
	KindUint                // major type 0
	KindNegInt              // major type 1
	KindBytes               // byte string
	KindText                // text string
	KindArray               // array
	KindMap                 // map
	KindTag                 // tag
	KindFloat               // half, single or double float
	KindBool                // true or false
	KindNull                // null or undefined
	KindSimple              // another simple value
	KindBreak               // the break code of an indefinite container
	KindInvalid             // a reserved head byte
)

// Peek returns the kind of the next item without consuming it.
func (d *Decoder) Peek() Kind {
	if d.off >= len(d.data) {
		return KindEnd
	}
	b := d.data[d.off]
	major, info := b>>5, b&31
	if info >= 28 && info <= 30 || info == 31 && (major < majorBytes || major == majorTag) {
		return KindInvalid
	}
	switch major {
	case majorUint:
		return KindUint
	case majorNeg:
		return KindNegInt
	case majorBytes:
		return KindBytes
	case majorText:
		return KindText
	case majorArray:
		return KindArray
	case majorMap:
		return KindMap
	case majorTag:
		return KindTag
	}
	switch info {
	case 20, 21:
		return KindBool
	case 22, 23:
		return KindNull
	case 25, 26, 27:
		return KindFloat
	case 31:
		return KindBreak
	}
	return KindSimple
}

// Null consumes a null or undefined item and reports whether there was one.
func (d *Decoder) Null() bool {
	if d.off < len(d.data) && (d.data[d.off] == 0xf6 || d.data[d.off] == 0xf7) {
		d.off++
		return true
	}
	return false
}

// Uint reads an unsigned integer.
func (d *Decoder) Uint() (uint64, error) {
	if d.off < len(d.data) && d.data[d.off] < 24 {
		d.off++
		return uint64(d.data[d.off-1]), nil
	}
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	if major == majorUint {
		return arg, nil
	}
	if isNull(major, info) {
		return 0, nil
	}
	return 0, d.typeErr(start, "unsigned integer", major, info)
}

// Int reads a signed integer (major type 0 or 1) that fits in int64.
func (d *Decoder) Int() (int64, error) {
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	switch {
	case major == majorUint || major == majorNeg:
		if arg > math.MaxInt64 {
			return 0, d.errAt(start, "integer overflows int64")
		}
		if major == majorNeg {
			return -1 - int64(arg), nil
		}
		return int64(arg), nil
	case isNull(major, info):
		return 0, nil
	}
	return 0, d.typeErr(start, "integer", major, info)
}

// IntRange reads a signed integer and checks it lies in [lo, hi].
func (d *Decoder) IntRange(lo, hi int64) (int64, error) {
	start := d.off
	v, err := d.Int()
	if err == nil && (v < lo || v > hi) {
		return 0, d.errAt(start, strconv.FormatInt(v, 10)+" outside "+strconv.FormatInt(lo, 10)+".."+strconv.FormatInt(hi, 10))
	}
	return v, err
}

// Float reads a float of any width, or an integer converted to float64.
func (d *Decoder) Float() (float64, error) {
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	switch major {
	case majorSimple:
		switch info {
		case 25:
			return float64(halfToFloat32(uint16(arg))), nil
		case 26:
			return float64(math.Float32frombits(uint32(arg))), nil
		case 27:
			return math.Float64frombits(arg), nil
		case 22, 23:
			return 0, nil
		}
	case majorUint:
		return float64(arg), nil
	case majorNeg:
		return -1 - float64(arg), nil
	}
	return 0, d.typeErr(start, "number", major, info)
}

// Float32 reads a number as float32 (doubles are rounded).
func (d *Decoder) Float32() (float32, error) {
	f, err := d.Float()
	return float32(f), err
}

// Bool reads true or false.
func (d *Decoder) Bool() (bool, error) {
	start := d.off
	major, info, _, err := d.head()
	if err != nil {
		return false, err
	}
	if major == majorSimple {
		switch info {
		case 20, 22, 23:
			return false, nil
		case 21:
			return true, nil
		}
	}
	return false, d.typeErr(start, "boolean", major, info)
}

// str reads a text (major 3) or byte (major 2) string. The result aliases
// the input for a definite length and is a fresh slice for an indefinite
// one (concatenated chunks). null gives nil, ok false.
func (d *Decoder) str(want byte) (b []byte, null bool, err error) {
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return nil, false, err
	}
	if major != want {
		if isNull(major, info) {
			return nil, true, nil
		}
		name := "text string"
		if want == majorBytes {
			name = "byte string"
		}
		return nil, false, d.typeErr(start, name, major, info)
	}
	if info != 31 {
		if arg > uint64(len(d.data)-d.off) || arg > MaxLen {
			return nil, false, d.errAt(start, "string length "+strconv.FormatUint(arg, 10)+" exceeds the "+strconv.Itoa(len(d.data)-d.off)+" bytes left")
		}
		b = d.data[d.off : d.off+int(arg)]
		d.off += int(arg)
		return b, false, nil
	}
	out := []byte{}
	for {
		if d.off >= len(d.data) {
			return nil, false, d.errAt(d.off, errEOF)
		}
		if d.data[d.off] == 0xff {
			d.off++
			return out, false, nil
		}
		cs := d.off
		m, ci, n, err := d.head()
		if err != nil {
			return nil, false, err
		}
		if m != want || ci == 31 {
			return nil, false, d.errAt(cs, "indefinite-length string chunk is a "+describe(m, ci))
		}
		if n > uint64(len(d.data)-d.off) || uint64(len(out))+n > MaxLen {
			return nil, false, d.errAt(cs, "string chunk length "+strconv.FormatUint(n, 10)+" exceeds the input")
		}
		out = append(out, d.data[d.off:d.off+int(n)]...)
		d.off += int(n)
	}
}

// Text reads a text string (valid UTF-8).
func (d *Decoder) Text() (string, error) {
	start := d.off
	b, _, err := d.str(majorText)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", d.errAt(start, "text string is not valid UTF-8")
	}
	return string(b), nil
}

// Key reads a text string as a byte slice that aliases the input (valid
// until the input changes): a map key to compare against known names
// without allocating. UTF-8 is not checked.
func (d *Decoder) Key() ([]byte, error) {
	b, null, err := d.str(majorText)
	if err == nil && null {
		return nil, d.errAt(d.off-1, "map key is null")
	}
	return b, err
}

// Bytes reads a byte string into a new slice (nil for null).
func (d *Decoder) Bytes() ([]byte, error) {
	b, null, err := d.str(majorBytes)
	if err != nil || null {
		return nil, err
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

// container reads an array or map head; n is the element (pair) count or
// -1 for an indefinite length. per is the minimum bytes per element.
func (d *Decoder) container(want byte, per uint64) (int, error) {
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	if major != want {
		if isNull(major, info) {
			return 0, nil
		}
		name := "array"
		if want == majorMap {
			name = "map"
		}
		return 0, d.typeErr(start, name, major, info)
	}
	if info == 31 {
		return -1, nil
	}
	if arg > MaxLen || arg*per > uint64(len(d.data)-d.off) {
		return 0, d.errAt(start, "length "+strconv.FormatUint(arg, 10)+" exceeds the "+strconv.Itoa(len(d.data)-d.off)+" bytes left")
	}
	return int(arg), nil
}

// Array reads an array head: the element count, or -1 for an indefinite
// length (iterate with More). null reads as an empty array.
func (d *Decoder) Array() (int, error) { return d.container(majorArray, 1) }

// Map reads a map head: the pair count, or -1 for an indefinite length
// (iterate with More). null reads as an empty map.
func (d *Decoder) Map() (int, error) { return d.container(majorMap, 2) }

// More reports whether the container whose count n came from Array or Map
// has another element (pair), counting it down; for an indefinite length
// (-1) it consumes the break code at the end. At the end of the input it
// returns true, so that the next read reports the truncation.
func (d *Decoder) More(n *int) bool {
	switch {
	case *n > 0:
		*n--
		return true
	case *n == 0:
		return false
	}
	if d.off < len(d.data) && d.data[d.off] == 0xff {
		d.off++
		*n = 0
		return false
	}
	return true
}

// Cap is a safe capacity for a slice of an n-element container (0 for an
// indefinite length).
func Cap(n int) int { return max(n, 0) }

// Skip reads and discards one data item of any type.
func (d *Decoder) Skip() error { return d.skip(0) }

func (d *Decoder) skip(depth int) error {
	if depth+d.depth > MaxDepth {
		return d.errAt(d.off, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	start := d.off
	major, info, arg, err := d.head()
	if err != nil {
		return err
	}
	switch major {
	case majorBytes, majorText:
		d.off = start
		_, _, err := d.str(major)
		return err
	case majorArray, majorMap:
		per := uint64(1)
		if major == majorMap {
			per = 2
		}
		if info == 31 {
			for {
				if d.off >= len(d.data) {
					return d.errAt(d.off, errEOF)
				}
				if d.data[d.off] == 0xff {
					d.off++
					return nil
				}
				for range per {
					if err := d.skip(depth + 1); err != nil {
						return err
					}
				}
			}
		}
		if arg > MaxLen || arg*per > uint64(len(d.data)-d.off) {
			return d.errAt(start, "length "+strconv.FormatUint(arg, 10)+" exceeds the input")
		}
		for i := uint64(0); i < arg*per; i++ {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case majorTag:
		return d.skip(depth + 1)
	case majorSimple:
		if info == 31 {
			return d.errAt(start, "unexpected break code")
		}
	}
	return nil
}

// Tag is a tagged item that Any does not interpret.
type Tag struct {
	Number  uint64
	Content any
}

// Simple is a simple value other than false, true, null and undefined.
type Simple uint8

// Any decodes one item into Go values: uint64 (unsigned), int64
// (negative), float64 (any float width), []byte, string, []any,
// map[string]any (maps must have text keys), bool, nil (null and
// undefined), Tag and Simple.
func (d *Decoder) Any() (any, error) { return d.anyAt(0) }

func (d *Decoder) anyAt(depth int) (any, error) {
	if depth+d.depth > MaxDepth {
		return nil, d.errAt(d.off, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	start := d.off
	if d.off >= len(d.data) {
		return nil, d.errAt(d.off, errEOF)
	}
	switch b := d.data[d.off]; b >> 5 {
	case majorUint:
		return d.Uint()
	case majorNeg:
		return d.Int()
	case majorBytes:
		return d.Bytes()
	case majorText:
		return d.Text()
	case majorArray:
		n, err := d.Array()
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, Cap(n))
		for i := 0; d.More(&n); i++ {
			v, err := d.anyAt(depth + 1)
			if err != nil {
				return nil, Elem(i, err)
			}
			out = append(out, v)
		}
		return out, nil
	case majorMap:
		n, err := d.Map()
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, Cap(n))
		for d.More(&n) {
			ks := d.off
			if d.Peek() != KindText {
				return nil, d.errAt(ks, "map key is not a text string")
			}
			k, err := d.Text()
			if err != nil {
				return nil, err
			}
			v, err := d.anyAt(depth + 1)
			if err != nil {
				return nil, Field(k, err)
			}
			out[k] = v
		}
		return out, nil
	case majorTag:
		_, _, num, _ := d.head()
		v, err := d.anyAt(depth + 1)
		if err != nil {
			return nil, err
		}
		return Tag{Number: num, Content: v}, nil
	default:
		switch b & 31 {
		case 20, 21:
			return d.Bool()
		case 22, 23:
			d.off++
			return nil, nil
		case 25, 26, 27:
			return d.Float()
		}
		major, info, arg, err := d.head()
		if err != nil {
			return nil, err
		}
		if info == 31 {
			return nil, d.typeErr(start, "a data item", major, info)
		}
		return Simple(arg), nil
	}
}

// Float64s reads an array of numbers, appending to dst[:0].
func (d *Decoder) Float64s(dst []float64) ([]float64, error) {
	if d.Null() {
		return nil, nil
	}
	n, err := d.Array()
	if err != nil {
		return nil, err
	}
	out := dst[:0]
	if out == nil {
		out = make([]float64, 0, Cap(n))
	}
	for i := 0; d.More(&n); i++ {
		f, err := d.Float()
		if err != nil {
			return nil, Elem(i, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Uint64s reads an array of unsigned integers, appending to dst[:0].
func (d *Decoder) Uint64s(dst []uint64) ([]uint64, error) {
	if d.Null() {
		return nil, nil
	}
	n, err := d.Array()
	if err != nil {
		return nil, err
	}
	out := dst[:0]
	if out == nil {
		out = make([]uint64, 0, Cap(n))
	}
	for i := 0; d.More(&n); i++ {
		u, err := d.Uint()
		if err != nil {
			return nil, Elem(i, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// Strings reads an array of text strings.
func (d *Decoder) Strings(dst []string) ([]string, error) {
	if d.Null() {
		return nil, nil
	}
	n, err := d.Array()
	if err != nil {
		return nil, err
	}
	out := dst[:0]
	if out == nil {
		out = make([]string, 0, Cap(n))
	}
	for i := 0; d.More(&n); i++ {
		s, err := d.Text()
		if err != nil {
			return nil, Elem(i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// DecodeMap reads a map with text keys into a Go map (nil for null), each
// value with dec.
func DecodeMap[V any](d *Decoder, dec func(*Decoder) (V, error)) (map[string]V, error) {
	if d.Null() {
		return nil, nil
	}
	n, err := d.Map()
	if err != nil {
		return nil, err
	}
	m := make(map[string]V, Cap(n))
	for d.More(&n) {
		k, err := d.Text()
		if err != nil {
			return nil, err
		}
		v, err := dec(d)
		if err != nil {
			return nil, Field(k, err)
		}
		m[k] = v
	}
	return m, nil
}

// DecodeFloat64 reads a number; for DecodeMap.
func DecodeFloat64(d *Decoder) (float64, error) { return d.Float() }

// DecodeUint64 reads an unsigned integer; for DecodeMap.
func DecodeUint64(d *Decoder) (uint64, error) { return d.Uint() }

// DecodeString reads a text string; for DecodeMap.
func DecodeString(d *Decoder) (string, error) { return d.Text() }

// DecodeFloat64s reads an array of numbers; for DecodeMap.
func DecodeFloat64s(d *Decoder) ([]float64, error) { return d.Float64s(nil) }
