// Package guests gives the fennec command the example guest modules it uses
// itself (the demo, the benchmarks, `fennec guests build`). In a fennec
// source tree with the toolchains at hand they are built from source
// (internal/guestbuild) and cached by source hash in the user's cache
// directory, so an edit to a guest takes effect at once. Anywhere else (an
// installed binary, no Go toolchain, no clang for the C guest) the prebuilt
// copies embedded in the binary are used: reproducible builds of the same
// sources, committed under prebuilt/ with their sha256 and source digest,
// refreshed by `go generate ./internal/guests` and checked up to date by
// this package's tests.
package guests

//go:generate go run ./gen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/runtime"
)

// Sources maps a guest's name to its directory, relative to the root of the
// fennec source tree.
var Sources = map[string]string{
	"vitals-preprocess": "modules/vitals-preprocess",
	"risk-infer":        "modules/risk-infer",
	"risk-train":        "modules/risk-train",
	"probe":             "runtime/testdata/probe",
	"c-zscore":          "modules/c-zscore/zscore.c", // C, built with clang
	"c-wasinn":          "modules/c-wasinn/wasinn.c", // C, a wasi-nn command module
	"vad":               "modules/vad",               // takes raw audio bytes; needs the model "vad"
	"wakeword-embed":    "modules/wakeword-embed",    // takes raw audio bytes; needs "melspec", "embedding"
	"ocr":               "modules/ocr",               // takes raw image bytes; needs "ocr-det", "ocr-cls", "ocr-rec"
}

// Names lists the guests in a stable order.
func Names() []string {
	return []string{"vitals-preprocess", "risk-infer", "risk-train", "c-zscore", "c-wasinn", "probe", "vad", "wakeword-embed", "ocr"}
}

// notYetPrebuilt lists guests added since prebuilt/ was last generated:
// they build from a source tree, and away from one they are unavailable
// (Prebuilt answers ErrNoSource). `go generate ./internal/guests` adds
// them to prebuilt/; then empty this list (TestPrebuiltAll fails while a
// guest listed here has a prebuilt copy).
var notYetPrebuilt = map[string]bool{}

// HasPrebuilt reports whether this binary embeds a prebuilt copy of the
// named guest.
func HasPrebuilt(name string) bool {
	if notYetPrebuilt[name] {
		return false
	}
	_, ok := Sources[name]
	return ok
}

// ErrNoSource means the fennec source tree (or the toolchain a guest needs)
// is not available to build the guest from source.
var ErrNoSource = errors.New("guest sources not available")

// Origin says where a guest's bytes came from.
type Origin string

const (
	// FromSource: built from the source tree (or found in the build cache
	// under its source hash).
	FromSource Origin = "built from source"
	// FromPrebuilt: the copy embedded in this binary.
	FromPrebuilt Origin = "prebuilt"
)

// Guest is a guest module ready to compile.
type Guest struct {
	Name         string
	Wasm         []byte
	Manifest     runtime.Manifest
	ManifestTOML []byte // the fennec.toml the manifest was read from
	Origin       Origin
	// Why says, for a prebuilt guest, why it was not built from source.
	Why string
}

const modulePath = "github.com/fennec-edge/fennec"

// Root returns the root of the fennec source tree: $FENNEC_SRC, or the first
// directory at or above the working directory whose go.mod declares the
// fennec module.
func Root() (string, error) {
	if d := os.Getenv("FENNEC_SRC"); d != "" {
		if !isRoot(d) {
			return "", fmt.Errorf("%w: FENNEC_SRC=%s is not a fennec source tree (no go.mod declaring %s)", ErrNoSource, d, modulePath)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoSource, err)
	}
	for {
		if isRoot(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no fennec source tree at or above the working directory; run from a checkout or set FENNEC_SRC", ErrNoSource)
		}
		dir = parent
	}
}

func isRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == modulePath
		}
	}
	return false
}

// CacheDir is where built guests are kept.
func CacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "fennec", "guests")
}

var mu sync.Mutex

// Get returns the named guest: built from the source tree when there is one
// and the toolchain the guest needs is on PATH, the prebuilt copy embedded
// in the binary otherwise. A guest whose sources are there but do not build
// is an error, not a silent fallback to the prebuilt copy.
func Get(ctx context.Context, name string) (Guest, error) {
	g, err := Build(ctx, name)
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, ErrNoSource) && !errors.Is(err, guestbuild.ErrNoGo) && !errors.Is(err, guestbuild.ErrNoClang) {
		return Guest{}, err
	}
	p, perr := Prebuilt(name)
	if perr != nil {
		return Guest{}, fmt.Errorf("%w; and the prebuilt copy: %v", err, perr)
	}
	p.Why = err.Error()
	return p, nil
}

// Load is Get returning the bytes and the manifest.
func Load(ctx context.Context, name string) ([]byte, runtime.Manifest, error) {
	g, err := Get(ctx, name)
	return g.Wasm, g.Manifest, err
}

// Build builds the named guest from the source tree (or finds it in the
// build cache), never falling back to the prebuilt copy. The error wraps
// ErrNoSource when there is no source tree, guestbuild.ErrNoGo or
// guestbuild.ErrNoClang when the toolchain is missing.
func Build(ctx context.Context, name string) (Guest, error) {
	rel, ok := Sources[name]
	if !ok {
		return Guest{}, fmt.Errorf("unknown guest %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	root, err := Root()
	if err != nil {
		return Guest{}, err
	}
	src := filepath.Join(root, rel)
	dir := src
	isC := strings.HasSuffix(rel, ".c")
	if isC {
		dir = filepath.Dir(src)
	}
	manPath := filepath.Join(dir, "fennec.toml")
	toml, err := os.ReadFile(manPath)
	if err != nil {
		return Guest{}, fmt.Errorf("guest %s: %w", name, err)
	}
	man, err := runtime.ParseManifest(toml, manPath)
	if err != nil {
		return Guest{}, err
	}
	mu.Lock()
	var path string
	if isC && man.Command {
		path, err = guestbuild.CCommand(ctx, src, CacheDir())
	} else if isC {
		path, err = guestbuild.C(ctx, src, CacheDir())
	} else {
		path, err = guestbuild.Go(ctx, src, CacheDir())
	}
	mu.Unlock()
	if errors.Is(err, guestbuild.ErrNoGo) {
		return Guest{}, fmt.Errorf("%w: building %s needs the Go toolchain on PATH: %w", ErrNoSource, name, err)
	}
	if err != nil {
		return Guest{}, err
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return Guest{}, err
	}
	return Guest{Name: name, Wasm: wasm, Manifest: man, ManifestTOML: toml, Origin: FromSource}, nil
}

// Compile loads the named guest and compiles it in eng.
func Compile(ctx context.Context, eng *runtime.Engine, name string) (*runtime.Module, error) {
	wasm, man, err := Load(ctx, name)
	if err != nil {
		return nil, err
	}
	return eng.Compile(ctx, wasm, man)
}
