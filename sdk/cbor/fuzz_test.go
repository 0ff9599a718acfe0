package cbor

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, h := range []string{"00", "a26161016162820203", "9f018202039f0405ffff", "bf6346756ef563416d7421ff",
		"5f42010243030405ff", "7f657374726561646d696e67ff", "fb3ff199999999999a", "f97bff", "fa47c35000",
		"c11a514b67b0", "f8ff", "83f6f7f4"} {
		b, _ := hexDecode(h)
		f.Add(b)
	}
	rngVals := []any{map[string]any{"records": []any{map[string]any{"patient": "a", "hr": 70.5, "t": uint64(1)}}},
		[]any{1.5, -3, "x", []byte{1}, nil, true}}
	for _, v := range rngVals {
		b, _ := Marshal(v)
		f.Add(b)
	}
}

func hexDecode(h string) ([]byte, error) {
	b := make([]byte, len(h)/2)
	for i := range b {
		var v byte
		for _, c := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b, nil
}

// hasOpaque reports whether v holds values the two decoders represent
// differently on purpose (tags, which fxamacker interprets, and simple
// values).
func hasOpaque(v any) bool {
	switch x := v.(type) {
	case Tag, Simple:
		return true
	case []any:
		for _, e := range x {
			if hasOpaque(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasOpaque(e) {
				return true
			}
		}
	}
	return false
}

// hasTag reports whether the item at d contains a tag anywhere (a later
// duplicate map key may have overwritten it in the decoded value).
func hasTag(d *Decoder) bool {
	switch d.Peek() {
	case KindTag:
		return true
	case KindArray, KindMap:
		per := 1
		if d.Peek() == KindMap {
			per = 2
		}
		var n int
		if d.Peek() == KindMap {
			n, _ = d.Map()
		} else {
			n, _ = d.Array()
		}
		for d.More(&n) {
			for range per {
				if hasTag(d) {
					return true
				}
			}
		}
		return false
	}
	_ = d.Skip()
	return false
}

// FuzzDecode drives the generic decoder and Skip with arbitrary bytes: no
// panic, errors are *Error within the input, Skip and Any agree on where an
// item ends, and what we accept fxamacker/cbor accepts as the same value.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(in)
		v, err := d.Any()
		var ce *Error
		if err != nil {
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > len(in) {
				t.Fatalf("error %v is not a *cbor.Error within the input", err)
			}
			return
		}
		end := d.Offset()
		s := NewDecoder(in)
		if err := s.Skip(); err != nil || s.Offset() != end {
			t.Fatalf("Skip: %v at %d, Any ended at %d", err, s.Offset(), end)
		}
		if hasOpaque(v) || hasTag(NewDecoder(in[:end])) {
			return
		}
		var w any
		if err := fxDec.Unmarshal(in[:end], &w); err != nil {
			// The nesting limits are counted differently.
			if strings.Contains(err.Error(), "exceeded max nested level") {
				return
			}
			t.Fatalf("we decoded %x as %#v, fxamacker: %v", in[:end], v, err)
		}
		ours, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := fxEnc.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("input %x: we read %#v, fxamacker %#v", in[:end], v, w)
		}
	})
}

// FuzzTypedReaders reads arbitrary input with the typed readers the
// hand-written decoders use, in a data-driven order: nothing may panic or
// read past the input.
func FuzzTypedReaders(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(in)
		for i := 0; i < 64 && d.Remaining() > 0; i++ {
			var err error
			switch d.Peek() {
			case KindMap:
				var n int
				if n, err = d.Map(); err == nil {
					for j := 0; d.More(&n) && j < 8; j++ {
						if _, err = d.Key(); err != nil {
							break
						}
						if _, err = d.Float(); err != nil {
							break
						}
					}
				}
			case KindArray:
				_, err = d.Float64s(nil)
			case KindText:
				_, err = d.Text()
			case KindBytes:
				_, err = d.Bytes()
			case KindUint, KindNegInt:
				_, err = d.Int()
			case KindBool:
				_, err = d.Bool()
			default:
				err = d.Skip()
			}
			if d.Offset() > len(in) {
				t.Fatalf("offset %d past the input (%d)", d.Offset(), len(in))
			}
			if err != nil {
				return
			}
		}
	})
}
