package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func sample(t testing.TB) *Envelope {
	man := []byte("name = \"m\"\nversion = \"1.0.0\"\n")
	wasm := append([]byte(nil), wasmHeader...)
	d := Digest(man, wasm)
	pub, priv, _ := ed25519.GenerateKey(nil)
	return &Envelope{Format: Format, Manifest: man, Wasm: wasm, Digest: d[:],
		Signatures: []Signature{{Kind: KindPublish, Key: pub, Sig: ed25519.Sign(priv, SignedMessage(KindPublish, d[:]))}}}
}

func TestRoundTrip(t *testing.T) {
	e := sample(t)
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Decode(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.Manifest, e.Manifest) || !bytes.Equal(g.Wasm, e.Wasm) || len(g.Signatures) != 1 {
		t.Fatalf("round trip mismatch: %+v", g)
	}
}

func TestDigestSeparatesParts(t *testing.T) {
	if Digest([]byte("ab"), []byte("c")) == Digest([]byte("a"), []byte("bc")) {
		t.Fatal("moving a byte between manifest and wasm must change the digest")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := sample(t)
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	goodBytes, _ := Encode(good)
	cases := []struct {
		name string
		in   []byte
		lim  Limits
		want string
	}{
		{"empty", nil, Limits{}, "EOF"},
		{"not a map", enc([]int{1, 2}), Limits{}, "cannot unmarshal"},
		{"trailing bytes", append(append([]byte(nil), goodBytes...), 0), Limits{}, "extraneous"},
		{"too big", goodBytes, Limits{MaxBundle: 10}, "exceeds"},
		{"unknown field", enc(map[string]any{"format": 1, "x": 1}), Limits{}, "unknown field"},
		{"duplicate key", []byte{0xa2, 0x66, 'f', 'o', 'r', 'm', 'a', 't', 0x01, 0x66, 'f', 'o', 'r', 'm', 'a', 't', 0x01}, Limits{}, "duplicate"},
		{"indefinite", []byte{0xbf, 0xff}, Limits{}, "indefinite"},
		{"tag", []byte{0xc1, 0x01}, Limits{}, "tag"},
		{"wrong format", enc(map[string]any{"format": 2}), Limits{}, "format 2"},
		{"no manifest", enc(map[string]any{"format": 1}), Limits{}, "manifest is missing"},
		{"manifest too big", goodBytes, Limits{MaxManifest: 3}, "manifest of"},
		{"manifest binary", enc(map[string]any{"format": 1, "manifest": []byte{0, 1}, "wasm": wasmHeader, "digest": make([]byte, 32)}), Limits{}, "not UTF-8"},
		{"not wasm", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": []byte("ELF"), "digest": make([]byte, 32)}), Limits{}, "header"},
		{"short digest", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": wasmHeader, "digest": make([]byte, 31)}), Limits{}, "digest is 31"},
		{"bad kind", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": wasmHeader, "digest": make([]byte, 32),
			"signatures": []map[string]any{{"kind": "x", "key": make([]byte, 32), "sig": make([]byte, 64)}}}), Limits{}, "unknown kind"},
		{"short key", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": wasmHeader, "digest": make([]byte, 32),
			"signatures": []map[string]any{{"kind": "publish", "key": make([]byte, 3), "sig": make([]byte, 64)}}}), Limits{}, "key is 3"},
		{"short sig", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": wasmHeader, "digest": make([]byte, 32),
			"signatures": []map[string]any{{"kind": "publish", "key": make([]byte, 32), "sig": make([]byte, 6)}}}), Limits{}, "signature is 6"},
		{"repeated sig", enc(map[string]any{"format": 1, "manifest": []byte("a"), "wasm": wasmHeader, "digest": make([]byte, 32),
			"signatures": []map[string]any{{"kind": "publish", "key": make([]byte, 32), "sig": make([]byte, 64)},
				{"kind": "publish", "key": make([]byte, 32), "sig": make([]byte, 64)}}}), Limits{}, "repeats"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in, c.lim)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q and wrap ErrMalformed", err, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(sample(f))
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b, Limits{MaxBundle: 1 << 20})
		if err != nil {
			return
		}
		// Anything accepted must re-encode and decode to the same content.
		re, err := Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		g, err := Decode(re, Limits{MaxBundle: 1 << 20})
		if err != nil {
			t.Fatalf("re-encoded bundle refused: %v", err)
		}
		if !bytes.Equal(g.Manifest, e.Manifest) || !bytes.Equal(g.Wasm, e.Wasm) || !bytes.Equal(g.Digest, e.Digest) || len(g.Signatures) != len(e.Signatures) {
			t.Fatal("re-encoding changed the bundle")
		}
	})
}
