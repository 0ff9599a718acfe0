package deploy

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fennec-edge/fennec/deploy/internal/envelope"
	"github.com/fennec-edge/fennec/deploy/internal/semver"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/runtime"
)

// Limits bound the bundles this package decodes. The zero value means the
// defaults: 64 MiB per bundle, 64 KiB of manifest, 16 signatures.
type Limits = envelope.Limits

// Bundle is a module's manifest and Wasm binary with the digest and
// signatures of its envelope. A Bundle returned by DecodeBundle has only
// been checked for shape; Trust.Verify decides whether it may run.
type Bundle struct {
	env     *envelope.Envelope
	name    string
	version semver.Version
}

// Signature describes one signature of a bundle.
type Signature struct {
	Kind string // "publish" or "rollback"
	Key  ed25519.PublicKey
}

// Pack builds an unsigned bundle from a manifest (TOML text) and a Wasm
// binary. The manifest must name the module and give a semantic version.
func Pack(manifest, wasm []byte) (*Bundle, error) {
	d := envelope.Digest(manifest, wasm)
	env := &envelope.Envelope{Format: envelope.Format, Manifest: manifest, Wasm: wasm, Digest: d[:]}
	// Round-trip through the strict decoder so that Pack never produces a
	// bundle that devices would refuse as malformed.
	raw, err := envelope.Encode(env)
	if err != nil {
		return nil, err
	}
	return DecodeBundle(raw, Limits{})
}

// DecodeBundle parses a bundle's bytes. It checks structure, sizes and the
// manifest's name and version, not the digest or signatures.
func DecodeBundle(raw []byte, lim Limits) (*Bundle, error) {
	env, err := envelope.Decode(raw, lim)
	if err != nil {
		return nil, err
	}
	name, ver, err := manifestIdentity(env.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", envelope.ErrMalformed, err)
	}
	return &Bundle{env: env, name: name, version: ver}, nil
}

// ReadBundle reads and decodes a bundle file.
func ReadBundle(path string, lim Limits) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	max := lim.MaxBundle
	if err := config.Default("deploy: Limits.MaxBundle", &max, 64<<20); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	b, err := DecodeBundle(raw, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ErrMalformed is wrapped by every error about a bundle's encoding.
var ErrMalformed = envelope.ErrMalformed

// manifestIdentity validates manifest text with the runtime's parser
// (the same one that will compile the module) and returns the module's
// name and version.
func manifestIdentity(man []byte) (string, semver.Version, error) {
	return manifestIdentityFrom(man, "manifest")
}

func manifestIdentityFrom(man []byte, source string) (string, semver.Version, error) {
	m, err := runtime.ParseManifest(man, source)
	if err != nil {
		return "", semver.Version{}, err
	}
	v, err := semver.Parse(m.Version)
	if err != nil {
		return "", semver.Version{}, fmt.Errorf("%s: version: %v", source, err)
	}
	return m.Name, v, nil
}

// Name is the module's name from its manifest.
func (b *Bundle) Name() string { return b.name }

// Version is the module's semantic version from its manifest.
func (b *Bundle) Version() string { return b.version.String() }

// Manifest returns the manifest text. The caller must not modify it.
func (b *Bundle) Manifest() []byte { return b.env.Manifest }

// Wasm returns the module binary. The caller must not modify it.
func (b *Bundle) Wasm() []byte { return b.env.Wasm }

// Digest returns the SHA-256 digest of the manifest and Wasm, in hex, as
// recorded in the envelope (Trust.Verify checks that it matches).
func (b *Bundle) Digest() string { return hex.EncodeToString(b.env.Digest) }

// Signatures lists the bundle's signatures (unverified).
func (b *Bundle) Signatures() []Signature {
	out := make([]Signature, len(b.env.Signatures))
	for i, s := range b.env.Signatures {
		out[i] = Signature{Kind: s.Kind, Key: ed25519.PublicKey(s.Key)}
	}
	return out
}

// Encode serialises the bundle.
func (b *Bundle) Encode() ([]byte, error) { return envelope.Encode(b.env) }

// Sign adds k's signature. A publisher key signs the bundle's content
// ("publish"); an operator key can only authorise a rollback ("rollback").
// Signing recomputes the digest from the content, so a bundle whose content
// no longer matches its digest cannot be signed by mistake.
func (b *Bundle) Sign(k *PrivateKey, rollback bool) error {
	kind := envelope.KindPublish
	switch {
	case rollback && k.Role != RoleOperator:
		return fmt.Errorf("key %q is a %s key; only an operator key can sign a rollback", k.Name, k.Role)
	case !rollback && k.Role != RolePublisher:
		return fmt.Errorf("key %q is an %s key; it can only sign rollbacks (--rollback), a publisher key signs content", k.Name, k.Role)
	case rollback:
		kind = envelope.KindRollback
	}
	d := envelope.Digest(b.env.Manifest, b.env.Wasm)
	if hex.EncodeToString(d[:]) != b.Digest() {
		return errors.New("bundle content does not match its digest (tampered); refusing to sign")
	}
	pub := k.Key.Public().(ed25519.PublicKey)
	sig := envelope.Signature{Kind: kind, Key: pub, Sig: ed25519.Sign(k.Key, envelope.SignedMessage(kind, d[:]))}
	for i, s := range b.env.Signatures {
		if s.Kind == kind && pub.Equal(ed25519.PublicKey(s.Key)) {
			b.env.Signatures[i] = sig // re-signing replaces
			return nil
		}
	}
	if len(b.env.Signatures) >= 16 {
		return errors.New("bundle already has 16 signatures")
	}
	b.env.Signatures = append(b.env.Signatures, sig)
	return nil
}

// CheckManifest validates manifest text before packing: it must name the
// module and carry a semantic version. source names the file in errors.
func CheckManifest(man []byte, source string) error {
	_, _, err := manifestIdentityFrom(man, source)
	return err
}

// contentMatches reports whether the content hashes to the envelope's digest.
func (b *Bundle) contentMatches() bool {
	d := envelope.Digest(b.env.Manifest, b.env.Wasm)
	return hex.EncodeToString(d[:]) == b.Digest()
}
