package guestbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// callExport instantiates a reactor with WASI, runs _initialize, and calls
// fn(arg), checking the module is a reactor (no _start).
func callExport(t *testing.T, wasmPath, fn string, arg uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile %s: %v", wasmPath, err)
	}
	exp := cm.ExportedFunctions()
	if _, ok := exp["_start"]; ok {
		t.Fatalf("%s exports _start: built as a command, not a reactor", wasmPath)
	}
	if _, ok := exp["_initialize"]; !ok {
		t.Fatalf("%s does not export _initialize", wasmPath)
	}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	res, err := mod.ExportedFunction(fn).Call(ctx, arg)
	if err != nil {
		t.Fatalf("call %s: %v", fn, err)
	}
	return res[0]
}

func TestGoBuildsReactorAndCaches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go wasm module (several seconds); skipped with -short")
	}
	ctx := context.Background()
	out := t.TempDir()
	p1, err := Go(ctx, "testdata/hello", out)
	if err != nil {
		t.Fatal(err)
	}
	if got := callExport(t, p1, "twice", 21); uint32(got) != 42 {
		t.Fatalf("twice(21) = %d, want 42", got)
	}
	st1, _ := os.Stat(p1)
	start := time.Now()
	p2, err := Go(ctx, "testdata/hello", out)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Fatalf("unchanged sources gave a new path: %s vs %s", p1, p2)
	}
	st2, _ := os.Stat(p2)
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatalf("cached module was rebuilt")
	}
	t.Logf("cached lookup took %v", time.Since(start))
	// No temporary files are left behind.
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 {
		t.Fatalf("out dir holds %d entries, want 1", len(ents))
	}
}

// TestGoKeyFollowsSources copies a guest into its own module, builds it,
// edits the source and checks that a new module with the new behaviour is
// produced under a different name.
func TestGoKeyFollowsSources(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go wasm modules; skipped with -short")
	}
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "g")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/g\n\ngo 1.24\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const prog = "package main\n\n//go:wasmexport f\nfunc f(x int32) int32 { return x + %s }\n\nfunc main() {}\n"
	out := t.TempDir()
	write(strings.Replace(prog, "%s", "1", 1))
	p1, err := Go(ctx, src, out)
	if err != nil {
		t.Fatal(err)
	}
	write(strings.Replace(prog, "%s", "100", 1))
	p2, err := Go(ctx, src, out)
	if err != nil {
		t.Fatal(err)
	}
	if p1 == p2 {
		t.Fatal("edited source kept the same cache key")
	}
	if got := callExport(t, p1, "f", 1); got != 2 {
		t.Fatalf("old f(1) = %d", got)
	}
	if got := callExport(t, p2, "f", 1); got != 101 {
		t.Fatalf("new f(1) = %d", got)
	}
}

func TestGoBuildErrorIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain; skipped with -short")
	}
	src := filepath.Join(t.TempDir(), "bad")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/bad\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644)
	_, err := Go(context.Background(), src, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "undefinedThing") {
		t.Fatalf("err = %v, want the compiler's message naming undefinedThing", err)
	}
}

func TestGoMissingDir(t *testing.T) {
	_, err := Go(context.Background(), filepath.Join(t.TempDir(), "nope"), t.TempDir())
	if err == nil {
		t.Fatal("no error for a missing source directory")
	}
}

func TestCBuildsReactor(t *testing.T) {
	ctx := context.Background()
	if err := CAvailable(ctx); err != nil {
		if !errors.Is(err, ErrNoClang) {
			t.Fatalf("CAvailable error does not wrap ErrNoClang: %v", err)
		}
		t.Skipf("C guests cannot be built here: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "sq.c")
	os.WriteFile(src, []byte(`#include "local.h"
__attribute__((export_name("sq"))) int sq(int x) { return x * x + OFFSET; }
`), 0o644)
	os.WriteFile(filepath.Join(dir, "local.h"), []byte("#define OFFSET 1\n"), 0o644)
	out := t.TempDir()
	p1, err := C(ctx, src, out)
	if err != nil {
		t.Fatal(err)
	}
	if got := callExport(t, p1, "sq", 7); got != 50 {
		t.Fatalf("sq(7) = %d, want 50", got)
	}
	// A header change is a new key.
	os.WriteFile(filepath.Join(dir, "local.h"), []byte("#define OFFSET 2\n"), 0o644)
	p2, err := C(ctx, src, out)
	if err != nil {
		t.Fatal(err)
	}
	if p1 == p2 {
		t.Fatal("header edit kept the same cache key")
	}
	if got := callExport(t, p2, "sq", 7); got != 51 {
		t.Fatalf("sq(7) = %d, want 51", got)
	}
	// A compile error names the problem.
	os.WriteFile(src, []byte("int broken( {\n"), 0o644)
	if _, err := C(ctx, src, out); err == nil || errors.Is(err, ErrNoClang) {
		t.Fatalf("bad C source: err = %v, want a compile error (not ErrNoClang)", err)
	}
}
