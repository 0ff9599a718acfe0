package modules_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/runtime"
)

// Guests are built once per test binary (and cached across runs by source
// hash) and run through one shared engine.
var (
	buildDir string
	engine   *runtime.Engine

	buildMu sync.Mutex
	built   = map[string]string{}
	errs    = map[string]error{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	buildDir = filepath.Join(os.TempDir(), "fennec-guestbuild-cache")
	ctx := context.Background()
	var err error
	engine, err = runtime.New(ctx, runtime.Config{
		CacheDir: filepath.Join(os.TempDir(), "fennec-test-wazero-cache"),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "runtime.New:", err)
		os.Exit(1)
	}
	code := m.Run()
	engine.Close(ctx)
	os.Exit(code)
}

// wasmFor builds a guest directory (Go) or .c file once.
func wasmFor(t testing.TB, src string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs wasm guests; skipped with -short")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[src]; ok {
		return p
	}
	if err, ok := errs[src]; ok {
		t.Fatal(err)
	}
	var p string
	var err error
	if filepath.Ext(src) == ".c" {
		p, err = guestbuild.C(context.Background(), src, buildDir)
	} else {
		p, err = guestbuild.Go(context.Background(), src, buildDir)
	}
	if err != nil {
		errs[src] = err
		t.Fatal(err)
	}
	built[src] = p
	return p
}

// load compiles a guest with its fennec.toml.
func load(t testing.TB, src, manifest string) *runtime.Module {
	t.Helper()
	p := wasmFor(t, src)
	bin, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	man, err := runtime.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := engine.Compile(context.Background(), bin, man)
	if err != nil {
		t.Fatalf("compile %s: %v", src, err)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	return mod
}
