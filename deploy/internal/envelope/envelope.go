// Package envelope is the wire format of a fennec bundle: a CBOR map that
// carries a module's manifest (TOML text) and Wasm binary, the SHA-256 digest
// of both, and Ed25519 signatures over that digest.
//
//	bundle    = {"format": 1, "manifest": bstr, "wasm": bstr, "digest": bstr .size 32,
//	             ? "models": {+ tstr => bstr}, ? "signatures": [+ signature]}
//	signature = {"kind": "publish" / "rollback", "key": bstr .size 32, "sig": bstr .size 64}
//
// Decoding is strict: definite lengths only, no tags, no duplicate or
// unknown keys, no trailing bytes, and every size is bounded before any
// allocation that depends on it.
package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/internal/config"
)

// Format is the only envelope format version understood.
const Format = 1

// Signature kinds.
const (
	KindPublish  = "publish"  // a publisher vouches for the bundle's content
	KindRollback = "rollback" // an operator allows installing it over a newer version
)

// Limits bound what Decode accepts. A zero field takes its default; a
// negative one is an error.
type Limits struct {
	MaxBundle   int // whole envelope, bytes (default 64 MiB)
	MaxManifest int // manifest text, bytes (default 64 KiB)
	MaxSigs     int // signatures (default 16)
}

// withDefaults fills the zero fields; a negative one is an error naming it.
func (l Limits) withDefaults() (Limits, error) {
	err := errors.Join(
		config.Default("deploy: Limits.MaxBundle", &l.MaxBundle, 64<<20),
		config.Default("deploy: Limits.MaxManifest", &l.MaxManifest, 64<<10),
		config.Default("deploy: Limits.MaxSigs", &l.MaxSigs, 16),
	)
	return l, err
}

// Envelope is a decoded bundle.
type Envelope struct {
	Format   uint64 `cbor:"format"`
	Manifest []byte `cbor:"manifest"`
	Wasm     []byte `cbor:"wasm"`
	Digest   []byte `cbor:"digest"`
	// Models are ONNX model files by name. The digest does not cover them:
	// the manifest (which it covers) pins each by SHA-256 ([nn.sha256]),
	// and the device checks every model against its pin.
	Models     map[string][]byte `cbor:"models,omitempty"`
	Signatures []Signature       `cbor:"signatures,omitempty"`
}

// Signature is one Ed25519 signature over SignedMessage(Kind, Digest).
type Signature struct {
	Kind string `cbor:"kind"`
	Key  []byte `cbor:"key"`
	Sig  []byte `cbor:"sig"`
}

var (
	decMode cbor.DecMode
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,
		MaxArrayElements:  64,
		MaxMapPairs:       MaxModels, // the models map is the largest; the envelope has 6 keys
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
}

// MaxModels bounds the models one bundle carries (a module opens at most
// 16 graphs at a time, hostfuncs' NNConfig default). Encode refuses more,
// so a packer never writes a bundle no device would decode.
const MaxModels = 16

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed bundle")

// Digest returns the SHA-256 digest that identifies a bundle's content and
// that signatures cover. Both parts are length-prefixed so that bytes cannot
// move between manifest and Wasm without changing the digest.
func Digest(manifest, wasm []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("fennec-bundle-v1\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(manifest)))
	h.Write(n[:])
	h.Write(manifest)
	binary.BigEndian.PutUint64(n[:], uint64(len(wasm)))
	h.Write(n[:])
	h.Write(wasm)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// SignedMessage is the byte string an Ed25519 key signs for a signature of
// kind over digest. The kind is part of the message, so a publisher's
// signature can never be replayed as a rollback authorisation or the reverse.
func SignedMessage(kind string, digest []byte) []byte {
	m := make([]byte, 0, 64+len(digest))
	m = append(m, "fennec bundle signature v1\x00"...)
	m = append(m, kind...)
	m = append(m, 0)
	return append(m, digest...)
}

// Encode serialises e in CBOR core deterministic encoding.
func Encode(e *Envelope) ([]byte, error) {
	if len(e.Models) > MaxModels {
		return nil, fmt.Errorf("%d models in one bundle exceed the limit of %d", len(e.Models), MaxModels)
	}
	return encMode.Marshal(e)
}

// Decode parses and structurally validates a bundle. It checks sizes,
// field shapes and the Wasm header but not the digest or any signature: that
// is the caller's policy (so that "tampered" and "malformed" stay distinct).
func Decode(b []byte, lim Limits) (*Envelope, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(b) > lim.MaxBundle {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrMalformed, len(b), lim.MaxBundle)
	}
	var e Envelope
	if err := decMode.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := e.validate(lim); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &e, nil
}

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

func (e *Envelope) validate(lim Limits) error {
	if e.Format != Format {
		return fmt.Errorf("format %d, want %d", e.Format, Format)
	}
	if len(e.Manifest) == 0 {
		return errors.New("manifest is missing")
	}
	if len(e.Manifest) > lim.MaxManifest {
		return fmt.Errorf("manifest of %d bytes exceeds the %d byte limit", len(e.Manifest), lim.MaxManifest)
	}
	if !utf8.Valid(e.Manifest) || bytes.IndexByte(e.Manifest, 0) >= 0 {
		return errors.New("manifest is not UTF-8 text")
	}
	if !bytes.HasPrefix(e.Wasm, wasmHeader) {
		return errors.New("wasm does not start with the WebAssembly 1.0 header")
	}
	if len(e.Digest) != sha256.Size {
		return fmt.Errorf("digest is %d bytes, want %d", len(e.Digest), sha256.Size)
	}
	for name, m := range e.Models {
		if !validModelName(name) {
			return fmt.Errorf("model name %q is not 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'", name)
		}
		if len(m) == 0 {
			return fmt.Errorf("model %q is empty", name)
		}
	}
	if len(e.Signatures) > lim.MaxSigs {
		return fmt.Errorf("%d signatures exceed the limit of %d", len(e.Signatures), lim.MaxSigs)
	}
	for i, s := range e.Signatures {
		if s.Kind != KindPublish && s.Kind != KindRollback {
			return fmt.Errorf("signature %d: unknown kind %q", i, s.Kind)
		}
		if len(s.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("signature %d: key is %d bytes, want %d", i, len(s.Key), ed25519.PublicKeySize)
		}
		if len(s.Sig) != ed25519.SignatureSize {
			return fmt.Errorf("signature %d: signature is %d bytes, want %d", i, len(s.Sig), ed25519.SignatureSize)
		}
		for j := range i {
			p := e.Signatures[j]
			if p.Kind == s.Kind && bytes.Equal(p.Key, s.Key) {
				return fmt.Errorf("signature %d repeats signature %d (same key and kind)", i, j)
			}
		}
	}
	return nil
}

func validModelName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
