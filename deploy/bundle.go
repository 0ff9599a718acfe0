package deploy

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

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
	pins    map[string]string // the manifest's [nn.sha256]
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
	man, ver, err := parseManifest(env.Manifest, "manifest")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", envelope.ErrMalformed, err)
	}
	for _, name := range sortedKeys(env.Models) {
		if _, pinned := man.NN.SHA256[name]; !pinned {
			return nil, fmt.Errorf("%w: model %q is in the bundle but the manifest does not pin it ([nn.sha256] %s)", envelope.ErrMalformed, name, name)
		}
	}
	return &Bundle{env: env, name: man.Name, version: ver, pins: man.NN.SHA256}, nil
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
func manifestIdentityFrom(man []byte, source string) (string, semver.Version, error) {
	m, v, err := parseManifest(man, source)
	return m.Name, v, err
}

func parseManifest(man []byte, source string) (runtime.Manifest, semver.Version, error) {
	m, err := runtime.ParseManifest(man, source)
	if err != nil {
		return runtime.Manifest{}, semver.Version{}, err
	}
	v, err := semver.Parse(m.Version)
	if err != nil {
		return runtime.Manifest{}, semver.Version{}, fmt.Errorf("%s: version: %v", source, err)
	}
	return m, v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// PackModels is Pack for a module that ships its models: models (ONNX
// files by name, each granted by the manifest's [nn] models) travel in the
// bundle, and the manifest is rewritten with each one's SHA-256 pinned in
// its [nn.sha256] table (PinModels), so the bundle's signature covers
// them through the manifest.
func PackModels(manifest, wasm []byte, models map[string][]byte) (*Bundle, error) {
	if len(models) > envelope.MaxModels {
		return nil, fmt.Errorf("%d models in one bundle exceed the limit of %d (ship the others in bundles of their own modules)", len(models), envelope.MaxModels)
	}
	man, err := PinModels(manifest, models)
	if err != nil {
		return nil, err
	}
	d := envelope.Digest(man, wasm)
	env := &envelope.Envelope{Format: envelope.Format, Manifest: man, Wasm: wasm, Digest: d[:], Models: models}
	if len(models) == 0 {
		env.Models = nil
	}
	raw, err := envelope.Encode(env)
	if err != nil {
		return nil, err
	}
	return DecodeBundle(raw, Limits{})
}

// PinModels returns manifest text with [nn.sha256] NAME = "HEX" set for
// each model (replacing a stale pin, adding the table when there is none);
// the rest of the text, comments included, is kept. Each model must be
// granted by the manifest's [nn] models.
func PinModels(manifest []byte, models map[string][]byte) ([]byte, error) {
	if len(models) == 0 {
		return manifest, nil
	}
	m, err := runtime.ParseManifest(manifest, "manifest")
	if err != nil {
		return nil, err
	}
	want := map[string]string{}
	for _, name := range sortedKeys(models) {
		if !slices.Contains(m.NN.Models, name) {
			return nil, fmt.Errorf("model %q is not granted by the manifest: add it to [nn] models (granted: %q)", name, m.NN.Models)
		}
		sum := sha256.Sum256(models[name])
		want[name] = hex.EncodeToString(sum[:])
	}
	lines := strings.Split(strings.TrimRight(string(manifest), "\n"), "\n")
	header, end := -1, len(lines)
	for i, l := range lines {
		t := tomlLine(l)
		if strings.HasPrefix(t, "[") {
			if header >= 0 {
				end = i
				break
			}
			if strings.TrimSpace(strings.Trim(t, "[]")) == "nn.sha256" {
				header = i
			}
		}
	}
	var out []string
	if header < 0 {
		out = append(lines, "", "[nn.sha256]")
		for _, name := range sortedKeys(want) {
			out = append(out, fmt.Sprintf("%s = %q", name, want[name]))
		}
	} else {
		done := map[string]bool{}
		body := slices.Clone(lines[header+1 : end])
		for i, l := range body {
			k, _, ok := strings.Cut(tomlLine(l), "=")
			if !ok {
				continue
			}
			k = strings.TrimSpace(k)
			if uq, err := strconv.Unquote(k); err == nil {
				k = uq
			}
			if h, pin := want[k]; pin {
				body[i] = fmt.Sprintf("%s = %q", k, h)
				done[k] = true
			}
		}
		out = append(out, lines[:header+1]...)
		for _, name := range sortedKeys(want) {
			if !done[name] {
				out = append(out, fmt.Sprintf("%s = %q", name, want[name]))
			}
		}
		out = append(out, body...)
		out = append(out, lines[end:]...)
	}
	res := []byte(strings.Join(out, "\n") + "\n")
	m2, err := runtime.ParseManifest(res, "manifest with model pins")
	if err != nil {
		return nil, fmt.Errorf("pinning the models: %w", err)
	}
	for name, h := range want {
		if m2.NN.SHA256[name] != h {
			return nil, fmt.Errorf("could not pin model %q: write the manifest's pins as a [nn.sha256] table", name)
		}
	}
	return res, nil
}

// tomlLine is a line without its comment and surrounding space (enough
// for the table headers and simple keys PinModels edits).
func tomlLine(l string) string {
	t := strings.TrimSpace(l)
	if strings.HasPrefix(t, "[") {
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = strings.TrimSpace(t[:i])
		}
	}
	return t
}

// Name is the module's name from its manifest.
func (b *Bundle) Name() string { return b.name }

// Version is the module's semantic version from its manifest.
func (b *Bundle) Version() string { return b.version.String() }

// Manifest returns the manifest text. The caller must not modify it.
func (b *Bundle) Manifest() []byte { return b.env.Manifest }

// Models returns the model files the bundle carries, by name (nil when
// none). The caller must not modify them.
func (b *Bundle) Models() map[string][]byte { return b.env.Models }

// modelsDesc lists the carried models as NAME@PIN for the audit log.
func (b *Bundle) modelsDesc() string {
	var parts []string
	for _, name := range sortedKeys(b.env.Models) {
		parts = append(parts, name+"@"+b.pins[name])
	}
	return strings.Join(parts, ",")
}

// checkModels checks every carried model against the manifest's pin.
func (b *Bundle) checkModels() error {
	for _, name := range sortedKeys(b.env.Models) {
		sum := sha256.Sum256(b.env.Models[name])
		if got := hex.EncodeToString(sum[:]); got != b.pins[name] {
			return fmt.Errorf("model %q (%d bytes) has SHA-256 %s; the manifest of %s %s pins %s: it was changed or truncated after packing", name, len(b.env.Models[name]), got, b.name, b.Version(), b.pins[name])
		}
	}
	return nil
}

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
