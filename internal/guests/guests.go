// Package guests finds and builds the example guest modules that the fennec
// command uses itself (the demo, the benchmarks). They are built from the
// source tree with the Go toolchain (internal/guestbuild) and cached by
// source hash in the user's cache directory, so only the first run pays
// for the build. A binary run away from the source tree is told so.
package guests

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
}

// Names lists the guests in a stable order.
func Names() []string {
	return []string{"vitals-preprocess", "risk-infer", "risk-train", "c-zscore", "c-wasinn", "probe"}
}

// ErrNoSource means the fennec source tree (or a Go toolchain) is not
// available to build the guest.
var ErrNoSource = errors.New("guest sources not available")

const modulePath = "github.com/fennec-edge/fennec"

// Root returns the root of the fennec source tree: $FENNEC_SRC, or the first
// directory at or above the working directory whose go.mod declares the
// fennec module.
func Root() (string, error) {
	if d := os.Getenv("FENNEC_SRC"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
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

// Load builds (or finds in the cache) the named guest and returns its Wasm
// bytes and its manifest (fennec.toml beside its source).
func Load(ctx context.Context, name string) ([]byte, runtime.Manifest, error) {
	rel, ok := Sources[name]
	if !ok {
		return nil, runtime.Manifest{}, fmt.Errorf("unknown guest %q", name)
	}
	root, err := Root()
	if err != nil {
		return nil, runtime.Manifest{}, err
	}
	src := filepath.Join(root, rel)
	dir := src
	isC := strings.HasSuffix(rel, ".c")
	if isC {
		dir = filepath.Dir(src)
	}
	man, err := runtime.ReadManifest(filepath.Join(dir, "fennec.toml"))
	if err != nil {
		return nil, runtime.Manifest{}, err
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
		return nil, runtime.Manifest{}, fmt.Errorf("%w: building %s needs the Go toolchain on PATH: %v", ErrNoSource, name, err)
	}
	if err != nil {
		return nil, runtime.Manifest{}, err
	}
	wasm, err := os.ReadFile(path)
	return wasm, man, err
}

// Compile loads the named guest and compiles it in eng.
func Compile(ctx context.Context, eng *runtime.Engine, name string) (*runtime.Module, error) {
	wasm, man, err := Load(ctx, name)
	if err != nil {
		return nil, err
	}
	return eng.Compile(ctx, wasm, man)
}
