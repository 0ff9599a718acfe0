package serve

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// FuzzDecodeRequest feeds request bodies, as JSON and as CBOR, to the
// decoder every binding uses: it must not panic, must fail with
// ErrMalformed or return one well-formed CBOR item, and must pass valid
// CBOR through unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5, "x", null, true]}`, `[]`, `1e400`, `{"a":1,"a":2}`, "\xa1\x61\x61\x01", "\x9f\x01\xff", "\xbf"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, format := range []string{FormatJSON, FormatCBOR} {
			out, err := DecodeRequest(format, body)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: error %v does not wrap ErrMalformed", format, err)
				}
				continue
			}
			if err := cbor.Wellformed(out); err != nil {
				t.Fatalf("%s: output %x is not well-formed: %v", format, out, err)
			}
			if format == FormatCBOR && !bytes.Equal(out, body) {
				t.Fatal("CBOR was changed")
			}
			if _, err := EncodeResponse(FormatJSON, out); err != nil && format == FormatJSON {
				t.Fatalf("JSON round trip: %v", err)
			}
		}
	})
}
