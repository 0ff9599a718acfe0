// Package guestbuild compiles fennec guest modules from source: Go packages
// with the standard toolchain (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared,
// a reactor module) and single C files with clang for wasm32-wasi
// (-mexec-model=reactor). Results are cached in an output directory under a
// name keyed by a hash of everything that goes into the build (sources of
// every non-standard package the guest depends on, headers, toolchain
// version and flags), so a second build of unchanged sources costs one
// `go list` (Go) or a few file reads (C) instead of a compile and link.
//
// It is used by tests, by hostile-guest tests and by the CLI demo; it is not
// part of the runtime, which only ever sees finished .wasm bytes.
package guestbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// ErrNoGo is returned (wrapped) when no Go toolchain is on PATH.
var ErrNoGo = errors.New("guestbuild: go toolchain not found on PATH")

// ErrNoClang is returned (wrapped, with the reason) when clang cannot build
// wasm32-wasi reactors here: clang, wasm-ld, the WASI sysroot or the wasm32
// compiler-rt builtins are missing. On Debian 12 (clang 14) install them with
// `apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32`.
var ErrNoClang = errors.New("guestbuild: clang cannot build wasm32-wasi modules (on Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")

// goFlags are the build flags of every Go guest; they are part of the cache key.
var goFlags = []string{"build", "-buildmode=c-shared", "-trimpath"}

// Go builds the Go main package in srcDir as a wasip1 reactor module and
// returns the path of the .wasm file in outDir (created if needed). srcDir
// must lie inside a Go module whose go.mod resolves its imports.
func Go(ctx context.Context, srcDir, outDir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoGo, err)
	}
	srcDir, err = filepath.Abs(srcDir)
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	if fi, err := os.Stat(srcDir); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("guestbuild: %s is not a directory", srcDir)
	}
	env := goEnv()
	src, err := goSourceDigest(ctx, gobin, srcDir, env)
	if err != nil {
		return "", err
	}
	ver, err := output(ctx, srcDir, env, gobin, "env", "GOVERSION")
	if err != nil {
		return "", fmt.Errorf("guestbuild: go env: %w", err)
	}
	key := shortKey("go "+ver, src)
	out := filepath.Join(outDir, filepath.Base(srcDir)+"-"+key+".wasm")
	if ok, err := exists(out); err != nil || ok {
		return out, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	tmp, err := tempName(outDir, filepath.Base(out))
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	args := append(slices.Clone(goFlags), "-o", tmp, ".")
	if err := run(ctx, srcDir, env, gobin, args...); err != nil {
		return "", fmt.Errorf("guestbuild: go build %s: %w", srcDir, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	return out, nil
}

// listedPackage is the subset of `go list -json` output used for the key.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Replace *struct{ Path, Version string }
	}
	Error *struct{ Err string }
}

func goEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// shortKey is the cache key: the toolchain and the source digest.
func shortKey(toolchain, source string) string {
	h := sha256.Sum256([]byte(toolchain + "\n" + source + "\n"))
	return hex.EncodeToString(h[:])[:16]
}

// GoVersion is the version of the Go toolchain on PATH (`go env GOVERSION`),
// the one Go builds with.
func GoVersion(ctx context.Context) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoGo, err)
	}
	ver, err := output(ctx, "", goEnv(), gobin, "env", "GOVERSION")
	if err != nil {
		return "", fmt.Errorf("guestbuild: go env: %w", err)
	}
	return ver, nil
}

// GoSourceDigest is the hex sha256 of everything but the toolchain that goes
// into Go's build of the guest in srcDir: the build flags and the sources of
// every non-standard package it depends on (by import path and file name, so
// the digest does not depend on where the tree is checked out). With the
// same toolchain the same digest gives the same .wasm bytes.
func GoSourceDigest(ctx context.Context, srcDir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoGo, err)
	}
	return goSourceDigest(ctx, gobin, srcDir, goEnv())
}

// goSourceDigest hashes the flags and the sources of every non-standard
// package in the build. Packages from a versioned module are hashed by module
// path@version (the module cache is immutable).
func goSourceDigest(ctx context.Context, gobin, srcDir string, env []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gobin, "list", "-deps", "-json=ImportPath,Dir,Standard,GoFiles,EmbedFiles,Module,Error", ".")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = srcDir, env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("guestbuild: go list %s: %v: %s", srcDir, err, strings.TrimSpace(stderr.String()))
	}
	h := sha256.New()
	fmt.Fprintf(h, "goflags %q\n", goFlags)
	dec := json.NewDecoder(&stdout)
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("guestbuild: go list output: %w", err)
		}
		if p.Error != nil {
			return "", fmt.Errorf("guestbuild: package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Standard {
			continue
		}
		if p.Module != nil && p.Module.Version != "" && p.Module.Replace == nil {
			fmt.Fprintf(h, "pkg %s %s@%s\n", p.ImportPath, p.Module.Path, p.Module.Version)
			continue
		}
		fmt.Fprintf(h, "pkg %s\n", p.ImportPath)
		files := append(slices.Clone(p.GoFiles), p.EmbedFiles...)
		for _, f := range files {
			if err := hashFile(h, filepath.Join(p.Dir, f), f); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// C builds the single C source srcFile as a wasm32-wasi reactor module with
// clang and returns the path of the .wasm file in outDir. The source's own
// directory and the SDK header directory (sdk/c of the enclosing Go module,
// found by walking up to go.mod) are on the include path, so a module can
// `#include "fennec.h"`. Entrypoints are exported with
// __attribute__((export_name("name"))). When clang cannot build wasm here the
// error wraps ErrNoClang.
func C(ctx context.Context, srcFile, outDir string) (string, error) {
	return cBuild(ctx, srcFile, outDir, "reactor")
}

// CCommand is C for a WASI command module (-mexec-model=command): a C
// program with main, as wasi-sdk builds it for wasmtime and WasmEdge.
func CCommand(ctx context.Context, srcFile, outDir string) (string, error) {
	return cBuild(ctx, srcFile, outDir, "command")
}

func cBuild(ctx context.Context, srcFile, outDir, model string) (string, error) {
	tc, err := probeClang(ctx)
	if err != nil {
		return "", err
	}
	srcFile, err = filepath.Abs(srcFile)
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	incs := cIncludes(srcFile)
	src, err := cSourceDigest(srcFile, incs)
	if err != nil {
		return "", err
	}
	args := cArgs(tc, incs)
	args[1] = "-mexec-model=" + model
	tool := "clang " + tc.version + "\nsysroot " + tc.sysroot
	if model != "reactor" {
		tool += "\nexec-model " + model
	}
	key := shortKey(tool, src)
	base := strings.TrimSuffix(filepath.Base(srcFile), filepath.Ext(srcFile))
	out := filepath.Join(outDir, base+"-"+key+".wasm")
	if ok, err := exists(out); err != nil || ok {
		return out, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	tmp, err := tempName(outDir, filepath.Base(out))
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := run(ctx, filepath.Dir(srcFile), nil, tc.clang, append(args, "-o", tmp, srcFile)...); err != nil {
		return "", fmt.Errorf("guestbuild: clang %s: %w", srcFile, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	return out, nil
}

// cIncludes is the include path of a C guest: its own directory and sdk/c
// of the enclosing Go module.
func cIncludes(srcFile string) []string {
	incs := []string{filepath.Dir(srcFile)}
	if root, ok := moduleRoot(filepath.Dir(srcFile)); ok {
		if fi, err := os.Stat(filepath.Join(root, "sdk", "c")); err == nil && fi.IsDir() {
			incs = append(incs, filepath.Join(root, "sdk", "c"))
		}
	}
	return incs
}

// CSourceDigest is the hex sha256 of everything but the toolchain that goes
// into clang's build of the C guest srcFile: the fixed flags, the source and
// the headers on its include path (by position and base name, so the digest
// does not depend on where the tree is checked out). It needs no clang.
func CSourceDigest(srcFile string) (string, error) {
	srcFile, err := filepath.Abs(srcFile)
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	return cSourceDigest(srcFile, cIncludes(srcFile))
}

func cSourceDigest(srcFile string, incs []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "cflags %q\n", cArgs(&toolchain{}, nil))
	if err := hashFile(h, srcFile, filepath.Base(srcFile)); err != nil {
		return "", err
	}
	for i, dir := range incs {
		hs, _ := filepath.Glob(filepath.Join(dir, "*.h"))
		slices.Sort(hs)
		for _, f := range hs {
			if err := hashFile(h, f, fmt.Sprintf("include%d/%s", i, filepath.Base(f))); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ClangVersion is the first line of `clang --version` of the clang that C
// builds with; the error wraps ErrNoClang when there is none that can build
// wasm32-wasi here.
func ClangVersion(ctx context.Context) (string, error) {
	tc, err := probeClang(ctx)
	if err != nil {
		return "", err
	}
	return tc.version, nil
}

func cArgs(tc *toolchain, incs []string) []string {
	args := []string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"}
	if tc.sysroot != "" {
		args = append(args, "--sysroot="+tc.sysroot)
	}
	for _, d := range incs {
		args = append(args, "-I", d)
	}
	return args
}

// CAvailable reports whether C can build modules here; the error wraps
// ErrNoClang and says what is missing. Tests use it to skip.
func CAvailable(ctx context.Context) error {
	_, err := probeClang(ctx)
	return err
}

type toolchain struct {
	clang, sysroot, version string
}

var (
	probeMu   sync.Mutex
	probeDone bool
	probeTC   *toolchain
	probeErr  error
)

// sysroots are tried in order after $WASI_SYSROOT.
var sysroots = []string{"/usr/share/wasi-sysroot", "/opt/wasi-sdk/share/wasi-sysroot", "/usr/local/share/wasi-sysroot"}

// probeClang finds clang and a WASI sysroot and links a trivial reactor once
// per process, which catches a missing wasm-ld or compiler-rt builtins. A
// probe cut short by ctx is not remembered.
func probeClang(ctx context.Context) (*toolchain, error) {
	probeMu.Lock()
	defer probeMu.Unlock()
	if probeDone {
		return probeTC, probeErr
	}
	tc, err := doProbe(ctx)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("guestbuild: clang probe: %w", ctx.Err())
	}
	probeDone, probeTC, probeErr = true, tc, err
	return tc, err
}

func doProbe(ctx context.Context) (*toolchain, error) {
	var clang string
	for _, name := range []string{"clang", "clang-22", "clang-19", "clang-16", "clang-14"} {
		if p, err := exec.LookPath(name); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		return nil, fmt.Errorf("%w: no clang on PATH", ErrNoClang)
	}
	ver, err := output(ctx, "", nil, clang, "--version")
	if err != nil {
		return nil, fmt.Errorf("%w: %s --version: %v", ErrNoClang, clang, err)
	}
	dir, err := os.MkdirTemp("", "guestbuild-probe-")
	if err != nil {
		return nil, fmt.Errorf("guestbuild: %w", err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "probe.c")
	const prog = "#include <stdlib.h>\n#include <string.h>\n__attribute__((export_name(\"f\"))) int f(int n) { char *p = malloc(n + 1); memset(p, 1, n + 1); int r = p[0]; free(p); return r + (int)((long long)n * n / 7); }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		return nil, fmt.Errorf("guestbuild: %w", err)
	}
	// Candidate sysroots: $WASI_SYSROOT, the usual wasi-sdk locations, then
	// none at all (Debian's clang finds wasi-libc in /usr/include/wasm32-wasi
	// and /usr/lib/wasm32-wasi by itself).
	cands := slices.Clone(sysroots)
	if s := os.Getenv("WASI_SYSROOT"); s != "" {
		cands = append([]string{s}, cands...)
	}
	cands = append(cands, "")
	var tried []string
	for _, s := range cands {
		if s != "" {
			if _, err := os.Stat(filepath.Join(s, "include")); err != nil {
				continue
			}
		}
		tc := &toolchain{clang: clang, sysroot: s, version: strings.SplitN(ver, "\n", 2)[0]}
		err := run(ctx, dir, nil, clang, append(cArgs(tc, nil), "-o", filepath.Join(dir, "probe.wasm"), src)...)
		if err == nil {
			return tc, nil
		}
		name := s
		if name == "" {
			name = "(clang's default sysroot)"
		}
		tried = append(tried, fmt.Sprintf("sysroot %s: %v", name, err))
	}
	return nil, fmt.Errorf("%w: probe build failed:\n%s", ErrNoClang, strings.Join(tried, "\n"))
}

func moduleRoot(dir string) (string, bool) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func hashFile(h io.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("guestbuild: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "file %s\n", name)
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("guestbuild: read %s: %w", path, err)
	}
	fmt.Fprintf(h, "\nlen %d\n", n)
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("guestbuild: %w", err)
}

// tempName reserves a unique temporary name in dir for a build output, so
// concurrent builds of the same key (parallel test binaries) never write the
// same file; the final rename is atomic.
func tempName(dir, base string) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("guestbuild: %w", err)
	}
	name := f.Name()
	f.Close()
	return name, nil
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &buf, &buf
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(buf.String())
		if len(msg) > 8<<10 {
			msg = msg[:8<<10] + "\n..."
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("%v\n%s", err, msg)
	}
	return nil
}

func output(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
