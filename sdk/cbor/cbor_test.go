package cbor

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	fx "github.com/fxamacker/cbor/v2"
	"github.com/x448/float16"
)

// The reference: fxamacker/cbor in the modes the SDK used before this
// package and the federation layer still uses.
var (
	fxEnc, _ = fx.CoreDetEncOptions().EncMode()
	fxDec, _ = fx.DecOptions{
		MaxArrayElements: 1 << 24,
		MaxMapPairs:      1 << 24,
		MaxNestedLevels:  32,
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
	}.DecMode()
)

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// RFC 8949 Appendix A examples (those without tags and bignums).
func TestAppendixA(t *testing.T) {
	for _, tc := range []struct {
		v   any
		hex string
	}{
		{uint64(0), "00"}, {uint64(1), "01"}, {uint64(10), "0a"}, {uint64(23), "17"}, {uint64(24), "1818"},
		{uint64(25), "1819"}, {uint64(100), "1864"}, {uint64(1000), "1903e8"}, {uint64(1000000), "1a000f4240"},
		{uint64(1000000000000), "1b000000e8d4a51000"}, {uint64(18446744073709551615), "1bffffffffffffffff"},
		{int64(-1), "20"}, {int64(-10), "29"}, {int64(-100), "3863"}, {int64(-1000), "3903e7"},
		{0.0, "f90000"}, {math.Copysign(0, -1), "f98000"}, {1.0, "f93c00"}, {1.1, "fb3ff199999999999a"},
		{1.5, "f93e00"}, {65504.0, "f97bff"}, {100000.0, "fa47c35000"}, {3.4028234663852886e+38, "fa7f7fffff"},
		{1.0e+300, "fb7e37e43c8800759c"}, {5.960464477539063e-8, "f90001"}, {0.00006103515625, "f90400"},
		{-4.0, "f9c400"}, {-4.1, "fbc010666666666666"}, {math.Inf(1), "f97c00"}, {math.NaN(), "f97e00"},
		{math.Inf(-1), "f9fc00"}, {false, "f4"}, {true, "f5"}, {nil, "f6"},
		{[]byte{}, "40"}, {[]byte{1, 2, 3, 4}, "4401020304"}, {"", "60"}, {"a", "6161"}, {"IETF", "6449455446"},
		{"\"\\", "62225c"}, {"\u00fc", "62c3bc"}, {"\u6c34", "63e6b0b4"}, {"\U00010151", "64f0908591"},
		{[]any{}, "80"}, {[]any{uint64(1), uint64(2), uint64(3)}, "83010203"},
		{[]any{uint64(1), []any{uint64(2), uint64(3)}, []any{uint64(4), uint64(5)}}, "8301820203820405"},
		{map[string]any{}, "a0"},
		{map[string]any{"a": uint64(1), "b": []any{uint64(2), uint64(3)}}, "a26161016162820203"},
		{[]any{"a", map[string]any{"b": "c"}}, "826161a161626163"},
		{map[string]any{"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"},
	} {
		got, err := Marshal(tc.v)
		if err != nil || hexOf(got) != tc.hex {
			t.Errorf("Marshal(%#v) = %s, %v; want %s", tc.v, hexOf(got), err, tc.hex)
		}
		b, _ := hex.DecodeString(tc.hex)
		var back any
		if err := Unmarshal(b, &back); err != nil {
			t.Errorf("Unmarshal(%s): %v", tc.hex, err)
			continue
		}
		if f, ok := tc.v.(float64); ok && math.IsNaN(f) {
			if g, ok := back.(float64); !ok || !math.IsNaN(g) {
				t.Errorf("Unmarshal(%s) = %v", tc.hex, back)
			}
			continue
		}
		if !reflect.DeepEqual(back, tc.v) && !(tc.v == nil && back == nil) {
			t.Errorf("Unmarshal(%s) = %#v, want %#v", tc.hex, back, tc.v)
		}
	}
	// Other encodings that decode to the same values.
	for h, want := range map[string]any{
		"fa7f800000":                 math.Inf(1),
		"fb7ff0000000000000":         math.Inf(1),
		"fa47c35000":                 100000.0,
		"f97bff":                     65504.0,
		"5f42010243030405ff":         []byte{1, 2, 3, 4, 5},
		"7f657374726561646d696e67ff": "streaming",
		"9fff":                       []any{},
		"9f018202039f0405ffff":       []any{uint64(1), []any{uint64(2), uint64(3)}, []any{uint64(4), uint64(5)}},
		"bf61610161629f0203ffff":     map[string]any{"a": uint64(1), "b": []any{uint64(2), uint64(3)}},
		"bf6346756ef563416d7421ff":   map[string]any{"Fun": true, "Amt": int64(-2)},
		"f7":                         nil,
		"f0":                         Simple(16),
		"f8ff":                       Simple(255),
		"c11a514b67b0":               Tag{1, uint64(1363896240)},
		"d74401020304":               Tag{23, []byte{1, 2, 3, 4}},
		"1b7fffffffffffffff":         uint64(math.MaxInt64),
		"3b7fffffffffffffff":         int64(math.MinInt64),
		"a1781861616161616161616161616161616161616161616161616101": map[string]any{strings.Repeat("a", 24): uint64(1)},
	} {
		b, _ := hex.DecodeString(h)
		var got any
		if err := Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Unmarshal(%s) = %#v, %v; want %#v", h, got, err, want)
		}
	}
}

func TestMalformedInput(t *testing.T) {
	deep := strings.Repeat("81", MaxDepth+2) + "00"
	for name, h := range map[string]string{
		"empty":                  "",
		"truncated uint":         "19 03",
		"truncated float":        "fb 3ff1",
		"reserved info 28":       "1c",
		"indefinite uint":        "1f",
		"indefinite tag":         "df",
		"lone break":             "ff",
		"break in array":         "82 01 ff",
		"text past end":          "65 6162",
		"huge text length":       "7b 7fffffffffffffff",
		"huge array length":      "9b 7fffffffffffffff",
		"array longer than data": "9a 00010000 00",
		"map longer than data":   "a3 6161 01 6162",
		"unterminated indef arr": "9f 01 02",
		"unterminated indef map": "bf 6161 01",
		"bad chunk type":         "5f 6161 ff",
		"nested indef chunk":     "7f 7f ff ff",
		"invalid utf8":           "62 c328",
		"non-text map key":       "a1 01 02",
		"trailing data":          "01 02",
		"two-byte simple < 32":   "f8 10",
		"deep nesting":           deep,
		"tag nesting":            strings.Repeat("c1", MaxDepth+2) + "00",
		"negative int overflow":  "3b 8000000000000000",
	} {
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil {
			t.Fatal(name, err)
		}
		var v any
		err = Unmarshal(b, &v)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want *cbor.Error", name, err)
			continue
		}
		if ce.Offset < 0 || ce.Offset > len(b) {
			t.Errorf("%s: offset %d outside the input", name, ce.Offset)
		}
		d := NewDecoder(b)
		if err := d.Skip(); err == nil && name != "trailing data" && name != "negative int overflow" && name != "non-text map key" && name != "invalid utf8" {
			t.Errorf("%s: Skip accepted it", name)
		}
	}
}

func TestTypedReaders(t *testing.T) {
	var e Encoder
	e.Map(7)
	e.Text("i")
	e.Int(-5)
	e.Text("u")
	e.Uint(300)
	e.Text("f")
	e.Float16(0.333)
	e.Text("g")
	e.Float32Fixed(2.5)
	e.Text("h")
	e.Float64Fixed(2.5)
	e.Text("n")
	e.Null()
	e.Text("s")
	e.Strings([]string{"x", "y"})
	d := NewDecoder(e.Bytes())
	n, err := d.Map()
	if err != nil || n != 7 {
		t.Fatal(n, err)
	}
	got := map[string]any{}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			t.Fatal(err)
		}
		switch string(k) {
		case "i":
			got["i"], err = d.Int()
		case "u":
			got["u"], err = d.Uint()
		case "f", "g", "h":
			got[string(k)], err = d.Float()
		case "n":
			got["n"], err = d.Text() // null reads as ""
		case "s":
			got["s"], err = d.Strings(nil)
		}
		if err != nil {
			t.Fatal(string(k), err)
		}
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": int64(-5), "u": uint64(300), "f": float64(float16.Fromfloat32(0.333).Float32()),
		"g": 2.5, "h": 2.5, "n": "", "s": []string{"x", "y"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// Type mismatches name what was wanted and found, with the offset.
	d = NewDecoder([]byte{0x61, 'a'})
	if _, err := d.Uint(); err == nil || err.Error() != "cbor: offset 0: want unsigned integer, got text string" {
		t.Fatalf("Uint of text: %v", err)
	}
	d = NewDecoder([]byte{0xf9, 0x3c, 0x00})
	if _, err := d.Int(); err == nil || !strings.Contains(err.Error(), "want integer, got float") {
		t.Fatalf("Int of float: %v", err)
	}
	d = NewDecoder([]byte{0x19, 0x01, 0x00})
	if _, err := d.IntRange(0, 255); err == nil || !strings.Contains(err.Error(), "256 outside 0..255") {
		t.Fatalf("IntRange: %v", err)
	}
	// Paths: Field and Elem build "a.b[2]".
	err = Field("a", Field("b", Elem(2, &Error{Offset: 9, Msg: "bad"})))
	if err.Error() != "cbor: a.b[2]: offset 9: bad" {
		t.Fatalf("path: %v", err)
	}
}

func TestHalfConversions(t *testing.T) {
	for h := range 1 << 16 {
		want := float16.Frombits(uint16(h)).Float32()
		got := halfToFloat32(uint16(h))
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Fatalf("halfToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(f float32) {
		if want, got := uint16(float16.Fromfloat32(f)), halfFromFloat32(f); got != want && !(f != f) {
			t.Fatalf("halfFromFloat32(%v / %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
		// Exactness as fxamacker decides it (PrecisionFromfloat32 plus a
		// round trip for the uncertain cases).
		if f != f || math.IsInf(float64(f), 0) {
			return
		}
		p := float16.PrecisionFromfloat32(f)
		wantOK := p == float16.PrecisionExact || p == float16.PrecisionUnknown && float16.Fromfloat32(f).Float32() == f
		h, ok := halfExact(f)
		if ok != wantOK || ok && h != uint16(float16.Fromfloat32(f)) {
			t.Fatalf("halfExact(%v) = %#04x %v, want %v", f, h, ok, wantOK)
		}
	}
	for range 200000 {
		check(math.Float32frombits(rng.Uint32()))
		// values near half's range and precision
		check(float32(math.Ldexp(float64(rng.IntN(1<<12)), rng.IntN(40)-36)) * float32(1-2*rng.IntN(2)))
	}
	for h := range 1 << 16 {
		check(halfToFloat32(uint16(h)))
	}
}

// randValue builds a random generic value as fxamacker decodes into any.
func randValue(rng *rand.Rand, depth int) any {
	k := rng.IntN(12)
	if depth > 3 && k >= 9 {
		k = rng.IntN(9)
	}
	switch k {
	case 0:
		return rng.Uint64() >> rng.IntN(64)
	case 1:
		return -int64(rng.Uint64()>>(1+rng.IntN(63))) - 1
	case 2:
		return randFloat(rng)
	case 3:
		return randText(rng)
	case 4:
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case 5:
		return rng.IntN(2) == 0
	case 6:
		return nil
	case 7:
		return float64(float32(randFloat(rng)))
	case 8:
		return float64(float16.Frombits(uint16(rng.Uint32())).Float32())
	case 9, 10:
		a := make([]any, rng.IntN(6))
		for i := range a {
			a[i] = randValue(rng, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range rng.IntN(6) {
			m[randText(rng)] = randValue(rng, depth+1)
		}
		return m
	}
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(6) {
	case 0:
		return math.Float64frombits(rng.Uint64())
	case 1:
		return float64(rng.IntN(2000) - 1000)
	case 2:
		return float64(rng.IntN(2000)-1000) / 8
	case 3:
		return math.Ldexp(float64(rng.IntN(1<<11)), rng.IntN(60)-40)
	case 4:
		return []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64, 65504, 65505, 1e-8}[rng.IntN(9)]
	}
	return rng.NormFloat64() * 100
}

func randText(rng *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzüé水𐅑_"
	r := []rune(alphabet)
	n := rng.IntN(30)
	if rng.IntN(10) == 0 {
		n = 20 + rng.IntN(300)
	}
	var sb strings.Builder
	for range n {
		sb.WriteRune(r[rng.IntN(len(r))])
	}
	return sb.String()
}

// TestGenericAgainstFxamacker checks, for random generic values, that both
// encoders give the same bytes and that each decoder reads the other's
// output to the same value.
func TestGenericAgainstFxamacker(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 3000 {
		v := randValue(rng, 0)
		ours, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := fxEnc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("value %d %#v:\nours   %x\ntheirs %x", i, v, ours, theirs)
		}
		var a, b any
		if err := Unmarshal(theirs, &a); err != nil {
			t.Fatalf("value %d: our decoder: %v", i, err)
		}
		if err := fxDec.Unmarshal(ours, &b); err != nil {
			t.Fatalf("value %d: fxamacker decoder: %v", i, err)
		}
		// Compare through the deterministic encoding (NaN != NaN).
		ra, _ := fxEnc.Marshal(a)
		rb, _ := Marshal(b)
		if !bytes.Equal(ra, ours) || !bytes.Equal(rb, ours) {
			t.Fatalf("value %d: decoded values differ:\n%#v\n%#v", i, a, b)
		}
	}
}

type inner struct {
	A  float32 `cbor:"a"`
	B  []byte  `cbor:"b,omitempty"`
	ID int     `cbor:"1,keyasint"`
}

type Embedded struct {
	E string `cbor:"e"`
	X int    // untagged: key "X"
}

type outer struct {
	Embedded
	Name     string             `cbor:"name"`
	Count    uint16             `cbor:"count"`
	Neg      int8               `cbor:"neg"`
	Ratio    float64            `cbor:"ratio"`
	Tags     []string           `cbor:"tags"`
	Inner    inner              `cbor:"inner"`
	PInner   *inner             `cbor:"pinner"`
	List     []inner            `cbor:"list"`
	Metrics  map[string]float64 `cbor:"metrics"`
	ByID     map[int]string     `cbor:"by_id"`
	Any      any                `cbor:"any"`
	Fixed    [3]uint8           `cbor:"fixed"`
	Skip     int                `cbor:"-"`
	Omit     string             `cbor:"omit,omitempty"`
	JSONName bool               `json:"json_name"`
	private  int
}

func randOuter(rng *rand.Rand) outer {
	o := outer{Embedded: Embedded{E: randText(rng), X: rng.IntN(100) - 50}, Name: randText(rng), Count: uint16(rng.Uint32()),
		Neg: int8(rng.IntN(256) - 128), Ratio: randFloat(rng), Inner: inner{A: float32(randFloat(rng)), ID: rng.IntN(1000) - 500},
		Any: randValue(rng, 2), Fixed: [3]uint8{1, 2, byte(rng.Uint32())}, JSONName: rng.IntN(2) == 1}
	if rng.IntN(2) == 0 {
		o.Tags = []string{randText(rng), randText(rng)}
		o.PInner = &inner{B: []byte{1, 2}}
		o.Metrics = map[string]float64{"loss": randFloat(rng), "accuracy": 0.5, "z": math.Inf(1)}
		o.ByID = map[int]string{3: "c", -1: "m", 100: "h"}
		o.List = []inner{{A: 1}, {B: []byte{}}}
		o.Omit = "x"
	}
	if math.IsNaN(o.Ratio) {
		o.Ratio = 1
	}
	if math.IsNaN(float64(o.Inner.A)) {
		o.Inner.A = 2
	}
	return o
}

// TestReflectionAgainstFxamacker checks the reflection fallback on tagged
// structs both ways.
func TestReflectionAgainstFxamacker(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		v := randOuter(rng)
		ours, err := Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := fxEnc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("value %d:\nours   %x\ntheirs %x", i, ours, theirs)
		}
		var a, b outer
		if err := Unmarshal(theirs, &a); err != nil {
			t.Fatalf("value %d: ours: %v", i, err)
		}
		if err := fxDec.Unmarshal(ours, &b); err != nil {
			t.Fatalf("value %d: fxamacker: %v", i, err)
		}
		ra, _ := Marshal(a)
		rb, _ := Marshal(b)
		if !bytes.Equal(ra, ours) || !bytes.Equal(rb, ours) {
			t.Fatalf("value %d: decoded values differ:\n%+v\n%+v", i, a, b)
		}
	}
	// Unknown fields are skipped, keys match case-insensitively as a
	// fallback, and an overflowing integer names its field.
	var o outer
	b, _ := fxEnc.Marshal(map[string]any{"NAME": "n", "extra": []any{1, map[string]any{"q": 2}}, "count": 7})
	if err := Unmarshal(b, &o); err != nil || o.Name != "n" || o.Count != 7 {
		t.Fatalf("%+v %v", o, err)
	}
	b, _ = fxEnc.Marshal(map[string]any{"inner": map[string]any{"a": 1.5}, "count": 70000})
	if err := Unmarshal(b, &o); err == nil || !strings.Contains(err.Error(), "count: offset") || !strings.Contains(err.Error(), "overflows uint16") {
		t.Fatalf("overflow: %v", err)
	}
	if err := Unmarshal(b, o); err == nil {
		t.Fatal("decoding into a non-pointer succeeded")
	}
	if _, err := Marshal(map[string]any{"f": func() {}}); err == nil {
		t.Fatal("a func value encoded")
	}
}

// point implements Marshaler and Unmarshaler.
type point struct{ X, Y float64 }

func (p *point) EncodeCBOR(e *Encoder) {
	e.Array(2)
	e.Float64(p.X)
	e.Float64(p.Y)
}

func (p *point) DecodeCBOR(d *Decoder) error {
	n, err := d.Array()
	if err != nil {
		return err
	}
	if n != 2 {
		return d.Fail(d.Offset(), "want [x, y]")
	}
	if p.X, err = d.Float(); err != nil {
		return err
	}
	p.Y, err = d.Float()
	return err
}

func TestMarshalerInsideReflection(t *testing.T) {
	type shape struct {
		Pts []point `cbor:"pts"`
		P   *point  `cbor:"p"`
		V   point   `cbor:"v"`
	}
	s := shape{Pts: []point{{1, 2}, {3.5, -1}}, V: point{0, 1}}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a36170f6617682f90000f93c006370747382" + "82f93c00f94000" + "82f94300f9bc00"; hexOf(b) != want {
		t.Fatalf("got %x\nwant %s", b, want)
	}
	var back shape
	if err := Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("%+v %v", back, err)
	}
	var p *point
	if err := Unmarshal([]byte{0x82, 1, 2}, p); err == nil {
		t.Fatal("decoding into a nil *point succeeded")
	}
}
