package runtime_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

var (
	probeWasm []byte
	probeErr  error
	buildOnce sync.Once
)

// probe returns the hostile test guest, built once per test binary (and
// cached across runs by source hash).
func probe(t testing.TB) []byte {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "fennec-test-guests")
		var path string
		path, probeErr = guestbuild.Go(context.Background(), "testdata/probe", dir)
		if probeErr == nil {
			probeWasm, probeErr = os.ReadFile(path)
		}
	})
	if errors.Is(probeErr, guestbuild.ErrNoGo) {
		t.Skipf("no Go toolchain to build the test guest: %v", probeErr)
	}
	if probeErr != nil {
		t.Fatalf("building testdata/probe: %v", probeErr)
	}
	return probeWasm
}

const probeManifest = `
name = "probe"
version = "1.0.0"
entrypoints = ["echo", "spin", "spinhost", "grow", "recurse", "crash", "oob", "forge", "quota", "leak", "fail",
  "noop_loop", "rank_loop", "count_loop", "matmul_go", "matmul_go_naive", "matmul_host", "readdata", "getenv", "spinbrief"]
capabilities = ["tensor"]

[limits]
memory_pages = 512
call_timeout = "500ms"
tensor_bytes = 65536
instances = 4
`

// testutil.Buffer collects slog output for assertions.
func newEngine(t testing.TB, cfg runtime.Config) (*runtime.Engine, *testutil.Buffer) {
	t.Helper()
	logs := &testutil.Buffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(os.TempDir(), "fennec-test-cache")
	}
	eng, err := runtime.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng, logs
}

func manifest(t testing.TB, src string) runtime.Manifest {
	t.Helper()
	m, err := runtime.ParseManifest([]byte(src), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compileProbe(t testing.TB, eng *runtime.Engine, man string) *runtime.Module {
	t.Helper()
	mod, err := eng.Compile(context.Background(), probe(t), manifest(t, man))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func ints(t testing.TB, b []byte) []int32 {
	t.Helper()
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func TestEchoAndPoolReuse(t *testing.T) {
	eng, logs := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, probeManifest)
	if strings.Contains(logs.String(), "function bodies kept") {
		t.Fatalf("the compiled Go guest kept its function bodies: %s", logs)
	}
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		in := []byte(fmt.Sprintf("call %d", i))
		out, err := mod.Call(ctx, "echo", in)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("echo %d = %q, %v", i, out, err)
		}
	}
	if s := mod.Stats(); s.Instantiations != 1 || s.Calls != 20 {
		t.Fatalf("sequential calls should reuse one warm instance: %+v", s)
	}
	mod.Drain()
	if s := mod.Stats(); s.Idle != 0 {
		t.Fatalf("Drain left %d idle instances", s.Idle)
	}
	if _, err := mod.Call(ctx, "echo", nil); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, probeManifest)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				in := []byte(fmt.Sprintf("g%d-%d", g, i))
				out, err := mod.Call(context.Background(), "echo", in)
				if err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("%s: got %q, %v", in, out, err)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := mod.Stats(); s.Instantiations > 4 {
		t.Fatalf("pool exceeded its 4 instances: %+v", s)
	}
}

// TestHostileGuests runs each misbehaving entrypoint and checks that it
// fails with a clear error, the host keeps serving other modules, and the
// next call on the same module succeeds within a second.
func TestHostileGuests(t *testing.T) {
	eng, logs := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, probeManifest)
	other := compileProbe(t, eng, strings.Replace(probeManifest, `"probe"`, `"bystander"`, 1))
	ctx := context.Background()
	cases := []struct {
		entry string
		kind  error
		msg   string
	}{
		{"spin", runtime.ErrDeadline, "500ms"},
		{"grow", runtime.ErrTrap, "out of memory"},
		{"recurse", runtime.ErrTrap, ""},
		{"crash", runtime.ErrTrap, "assignment to entry in nil map"},
		{"oob", runtime.ErrTrap, "out of bounds"},
		{"fail", runtime.ErrGuest, "not running as a wasm guest"},
	}
	for _, c := range cases {
		t.Run(c.entry, func(t *testing.T) {
			var bystander sync.WaitGroup
			bystander.Add(1)
			go func() { // another module keeps serving meanwhile
				defer bystander.Done()
				if out, err := other.Call(ctx, "echo", []byte("still here")); err != nil || string(out) != "still here" {
					t.Errorf("bystander: %q, %v", out, err)
				}
			}()
			start := time.Now()
			_, err := mod.Call(ctx, c.entry, nil)
			if !errors.Is(err, c.kind) {
				t.Fatalf("%s: got %v, want %v", c.entry, err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "probe") {
				t.Fatalf("%s: error %q does not say %q and name the module", c.entry, err, c.msg)
			}
			t.Logf("%s: %v after %v", c.entry, err, time.Since(start).Round(time.Millisecond))
			start = time.Now()
			if out, err := mod.Call(ctx, "echo", []byte("ok")); err != nil || string(out) != "ok" {
				t.Fatalf("next call after %s: %q, %v", c.entry, out, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("next call after %s took %v", c.entry, d)
			}
			bystander.Wait()
		})
	}
	if s := mod.Stats(); s.Deadlines != 1 || s.Traps != 4 {
		t.Errorf("stats %+v", s)
	}
	if !strings.Contains(logs.String(), "module=probe") || !strings.Contains(logs.String(), "assignment to entry in nil map") {
		t.Errorf("guest stderr was not logged with the module's name:\n%s", logs.String())
	}
}

func TestForgedHandlesAndPointers(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	b := compileProbe(t, eng, probeManifest)
	ctx := context.Background()
	out, err := b.Call(ctx, "forge", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ints(t, out)
	const (
		ehandle = -3
		emem    = -2
		eshape  = -4
	)
	want := []int32{got[0], ehandle, ehandle, ehandle, emem, emem, eshape, emem, 0, ehandle}
	if got[0] <= 0 {
		t.Fatalf("forge could not create its tensor: %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("forge results %v, want %v (index %d)", got, want, i)
		}
	}
}

func TestForeignHandleFromAnotherInstance(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	a := compileProbe(t, eng, probeManifest)
	b := compileProbe(t, eng, probeManifest)
	ctx := context.Background()
	out, err := a.Call(ctx, "leak", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := ints(t, out)[0]
	// forge uses its input length as the handle to probe.
	out, err = b.Call(ctx, "forge", make([]byte, h))
	if err != nil {
		t.Fatal(err)
	}
	if got := ints(t, out)[3]; got != -3 {
		t.Fatalf("a handle of another module's instance was accepted: rank = %d", got)
	}
}

func TestTensorQuota(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, probeManifest) // tensor_bytes = 64 KiB
	out, err := mod.Call(context.Background(), "quota", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ints(t, out)
	if got[0] != 64 || got[1] != -6 {
		t.Fatalf("quota: created %d tensors of 1 KiB, then code %d; want 64 then EQUOTA (-6)", got[0], got[1])
	}
	// The tensors were freed: the quota is available again.
	out, _ = mod.Call(context.Background(), "quota", nil)
	if ints(t, out)[0] != 64 {
		t.Fatal("quota not released after free")
	}
}

func TestCallerCancellation(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, strings.Replace(probeManifest, `"500ms"`, `"1m"`, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := mod.Call(ctx, "spin", nil)
	if !errors.Is(err, runtime.ErrDeadline) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
}

func TestUnknownEntrypointAndClose(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod := compileProbe(t, eng, probeManifest)
	if _, err := mod.Call(context.Background(), "nope", nil); !errors.Is(err, runtime.ErrNoEntrypoint) {
		t.Fatalf("got %v", err)
	}
	mod.Close(context.Background())
	if _, err := mod.Call(context.Background(), "echo", nil); !errors.Is(err, runtime.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCapabilities(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	ctx := context.Background()
	noTensor := strings.Replace(probeManifest, `capabilities = ["tensor"]`, ``, 1)
	_, err := eng.Compile(ctx, probe(t), manifest(t, noTensor))
	if !errors.Is(err, runtime.ErrCapability) {
		t.Fatalf("ungranted imports: %v", err)
	}
	for _, want := range []string{"fennec_tensor.new", "fennec_tensor.rank", `"tensor"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not list %s", err, want)
		}
	}
	// The operator can refuse a capability the manifest requests.
	strict, _ := newEngine(t, runtime.Config{Allow: []string{}})
	_, err = strict.Compile(ctx, probe(t), manifest(t, probeManifest))
	if !errors.Is(err, runtime.ErrCapability) || !strings.Contains(err.Error(), "does not allow") {
		t.Fatalf("operator refusal: %v", err)
	}
	// host-calls preemption needs the operator's consent.
	_, err = eng.Compile(ctx, probe(t), manifest(t, strings.Replace(probeManifest, "[limits]", "[limits]\npreemption = \"host-calls\"", 1)))
	if !errors.Is(err, runtime.ErrCapability) {
		t.Fatalf("host-calls preemption without consent: %v", err)
	}
}

func TestInvalidModules(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	ctx := context.Background()
	man := manifest(t, "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n")
	entry := wasmtest.Func{Sig: wasmtest.Sig{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Body: wasmtest.I32Const(0), Export: "run"}
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "not a WebAssembly binary"},
		{"text file", []byte("#!/bin/sh\necho hello\n"), "not a WebAssembly binary"},
		{"truncated", probe(t)[:len(probe(t))/3], "invalid module"},
		{"no memory", wasmtest.Module{Funcs: []wasmtest.Func{entry}}.Encode(), `does not export its memory`},
		{"command", wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{entry,
			{Sig: wasmtest.Sig{}, Body: nil, Export: "_start"}}}.Encode(), "is a WASI command"},
		{"missing entrypoint", wasmtest.Module{MemoryPages: 1}.Encode(), `entrypoint "run" in the manifest is not exported`},
		{"entrypoint type", wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{{Sig: wasmtest.Sig{}, Export: "run"}}}.Encode(), "want (i32) -> i32"},
		{"unknown import", wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{entry},
			Imports: []wasmtest.Import{{Module: "fennec", Name: "launch_missiles", Sig: wasmtest.Sig{}}}}.Encode(), "fennec.launch_missiles"},
		{"foreign import module", wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{entry},
			Imports: []wasmtest.Import{{Module: "env", Name: "system", Sig: wasmtest.Sig{}}}}.Encode(), "env.system"},
		{"wrong import type", wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{entry},
			Imports: []wasmtest.Import{{Module: "fennec", Name: "abi_version", Sig: wasmtest.Sig{Params: []byte{wasmtest.I64}}}}}.Encode(), "has type (i64) -> ()"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := eng.Compile(ctx, c.wasm, man)
			if !errors.Is(err, runtime.ErrInvalidModule) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalidModule saying %q", err, c.want)
			}
		})
	}
}

// TestRawTraps uses hand-assembled modules for traps that Go guests cannot
// produce directly: a wasm stack overflow and an unreachable instruction.
// (The overflow takes a few hundred milliseconds on a quiet machine: wazero
// grows the stack to its 400 MB ceiling by copying.)
func TestRawTraps(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	ctx := context.Background()
	sig := wasmtest.Sig{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}
	m := wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		// recurse: calls itself forever (function index 0).
		{Sig: sig, Body: wasmtest.Cat(wasmtest.LocalGet(0), wasmtest.Call(0)), Export: "recurse"},
		{Sig: sig, Body: []byte{wasmtest.OpUnreachable}, Export: "unreachable"},
		// loop: br 0 inside a loop, forever.
		{Sig: sig, Body: []byte{wasmtest.OpLoop, 0x40, wasmtest.OpBr, 0, wasmtest.OpEnd, wasmtest.OpUnreachable}, Export: "loop"},
		{Sig: sig, Body: wasmtest.I32Const(0), Export: "ok"},
	}}
	man := manifest(t, "name = \"raw\"\nversion = \"0.1.0\"\nentrypoints = [\"recurse\", \"unreachable\", \"loop\", \"ok\"]\n[limits]\ncall_timeout = \"1s\"\n")
	mod, err := eng.Compile(ctx, m.Encode(), man)
	if err != nil {
		t.Fatal(err)
	}
	// The overflow gets a deadline that a loaded machine cannot reach first.
	slow := manifest(t, "name = \"raw-slow\"\nversion = \"0.1.0\"\nentrypoints = [\"recurse\", \"ok\"]\n[limits]\ncall_timeout = \"20s\"\n")
	smod, err := eng.Compile(ctx, m.Encode(), slow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smod.Call(ctx, "recurse", nil); err == nil || !strings.Contains(err.Error(), "stack overflow") {
		t.Errorf("recurse: %v, want a stack overflow", err)
	}
	for entry, want := range map[string]string{"unreachable": "unreachable", "loop": "1s"} {
		_, err := mod.Call(ctx, entry, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", entry, err, want)
		}
		if _, err := mod.Call(ctx, "ok", nil); err != nil {
			t.Errorf("after %s: %v", entry, err)
		}
	}
}

func TestWASIGrants(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("from the operator"), 0o644)
	t.Setenv("HOME", "/root")
	ctx := context.Background()
	eng, _ := newEngine(t, runtime.Config{DataDir: dir})

	// Without grants: no files, no environment (not even the host's).
	plain := compileProbe(t, eng, probeManifest)
	if _, err := plain.Call(ctx, "readdata", nil); !errors.Is(err, runtime.ErrGuest) {
		t.Fatalf("read without wasi:data: %v", err)
	}
	if out, err := plain.Call(ctx, "getenv", nil); err != nil || string(out) != "" {
		t.Fatalf("env without wasi:env: %q %v", out, err)
	}
	// With grants: the read-only data directory and the manifest's env only.
	granted := strings.Replace(probeManifest, `capabilities = ["tensor"]`, `capabilities = ["tensor", "wasi:data", "wasi:env"]`, 1) + "\n[env]\nGREETING = \"hello\"\n"
	g := compileProbe(t, eng, granted)
	if out, err := g.Call(ctx, "readdata", nil); err != nil || string(out) != "from the operator" {
		t.Fatalf("read with wasi:data: %q %v", out, err)
	}
	if out, err := g.Call(ctx, "getenv", nil); err != nil || string(out) != "hello" {
		t.Fatalf("env with wasi:env: %q %v", out, err)
	}
}

func TestWASIIsolation(t *testing.T) {
	// A module sees no environment unless granted, and its [env] only.
	t.Setenv("FENNEC_SECRET", "host-only")
	man := `
name = "env"
version = "1.0.0"
entrypoints = ["run"]
`
	if _, err := runtime.ParseManifest([]byte(man+"[env]\nA = \"1\"\n"), "m.toml"); err == nil || !strings.Contains(err.Error(), "wasi:env") {
		t.Fatalf("env without capability: %v", err)
	}
}

func TestSharedCompiledModule(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	ctx := context.Background()
	a := compileProbe(t, eng, probeManifest)
	b := compileProbe(t, eng, strings.Replace(probeManifest, `"probe"`, `"probe-b"`, 1))
	if _, err := a.Call(ctx, "echo", []byte("a")); err != nil {
		t.Fatal(err)
	}
	// Closing one module must not close the code the other shares.
	a.Close(ctx)
	if out, err := b.Call(ctx, "echo", []byte("b")); err != nil || string(out) != "b" {
		t.Fatalf("after closing a module sharing its code: %q, %v", out, err)
	}
	// A third compile of the same bytes works after the first is gone.
	c := compileProbe(t, eng, probeManifest)
	b.Close(ctx)
	if out, err := c.Call(ctx, "echo", []byte("c")); err != nil || string(out) != "c" {
		t.Fatalf("%q, %v", out, err)
	}
}

// A negative field of Config.Limits is an error naming it (before, it
// silently meant the default); zero takes the default.
func TestConfigLimitsNegative(t *testing.T) {
	for _, tc := range []struct {
		field string
		lim   runtime.HostLimits
	}{
		{"MaxCallTimeout", runtime.HostLimits{MaxCallTimeout: -time.Second}},
		{"MaxTensorBytes", runtime.HostLimits{MaxTensorBytes: -1}},
		{"MaxInstances", runtime.HostLimits{MaxInstances: -1}},
		{"MaxOutputBytes", runtime.HostLimits{MaxOutputBytes: -1}},
		{"DefaultCallTimeout", runtime.HostLimits{DefaultCallTimeout: -1}},
		{"DefaultTensorHandles", runtime.HostLimits{DefaultTensorHandles: -1}},
	} {
		e, err := runtime.New(context.Background(), runtime.Config{NoDiskCache: true, Limits: tc.lim})
		if err == nil {
			e.Close(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s negative: %v, want an error naming it", tc.field, err)
		}
	}
}

// Modules of one binary compiled and called from many goroutines at once,
// with the code in the disk cache but no module of it loaded: wazero
// (v1.12) put a module read from its file cache in memory before making its
// entry preambles, and a concurrent compile and call of the same binary
// panicked in NewFunction (the dashboard's rollout test in CI). The engine
// compiles one binary at a time.
func TestConcurrentCompileFromDiskCache(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	warm, _ := newEngine(t, runtime.Config{CacheDir: dir})
	compileProbe(t, warm, probeManifest).Close(ctx) // fills the disk cache
	warm.Close(ctx)
	for round := range 5 {
		eng, _ := newEngine(t, runtime.Config{CacheDir: dir})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := eng.Compile(ctx, probe(t), manifest(t, strings.Replace(probeManifest, `"probe"`, fmt.Sprintf(`"probe-%d"`, i), 1)))
				if err != nil {
					errs <- err
					return
				}
				defer m.Close(ctx)
				if out, err := m.Call(ctx, "echo", []byte("x")); err != nil || string(out) != "x" {
					errs <- fmt.Errorf("round %d, module %d: %q, %v", round, i, out, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		eng.Close(ctx)
	}
}
