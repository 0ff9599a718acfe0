package runtime_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// treeGuest is a module with no loop at all whose entrypoint "tree" makes a
// call tree of 2^depth calls: f(d) calls f(d-1) twice. wazero compiles
// termination checks at loop headers only.
func treeGuest(depth int32) []byte {
	i32 := []byte{wasmtest.I32}
	half := wasmtest.Cat(wasmtest.LocalGet(0), wasmtest.I32Const(1), []byte{0x6b}, wasmtest.Call(0))    // f(d-1)
	f := wasmtest.Cat(wasmtest.LocalGet(0), []byte{0x45, 0x04, 0x40, 0x0f, wasmtest.OpEnd}, half, half) // if d == 0 return
	return wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: wasmtest.Sig{Params: i32}, Body: f},
		{Sig: wasmtest.Sig{Params: i32, Results: i32}, Body: wasmtest.Cat(wasmtest.I32Const(depth), wasmtest.Call(0), wasmtest.I32Const(0)), Export: "tree"},
	}}.Encode()
}

const treeManifest = `
name = "tree"
version = "1.0.0"
entrypoints = ["tree"]
[limits]
call_timeout = "300ms"
`

// TestLooplessRecursionIsStopped runs a 2^48-call tree without loops in a
// child process (a frozen process cannot fail its own test): the call must
// stop at its deadline, and a garbage collection forced while it runs must
// finish, with the test's timers ticking throughout.
func TestLooplessRecursionIsStopped(t *testing.T) {
	if os.Getenv("FENNEC_TREE_CHILD") == "1" {
		looplessRecursionChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLooplessRecursionIsStopped$", "-test.v")
	cmd.Env = append(os.Environ(), "FENNEC_TREE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the process froze (killed after 20s):\n%s", out)
	}
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
}

func looplessRecursionChild(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod, err := eng.Compile(context.Background(), treeGuest(48), manifest(t, treeManifest))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := mod.Call(ctx, "tree", nil)
		done <- err
	}()
	// Collect while the guest runs: wait until its instance exists (the
	// call starts on it at once), not for a guessed head start.
	for mod.Stats().Instantiations == 0 {
		select {
		case err := <-done:
			t.Fatalf("tree returned before it was seen running: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	gcDone := make(chan struct{})
	go func() { goruntime.GC(); close(gcDone) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case err := <-done:
			took := time.Since(start)
			if !errors.Is(err, runtime.ErrDeadline) {
				t.Fatalf("tree: %v after %v", err, took)
			}
			if took > 600*time.Millisecond+stopSlack {
				t.Fatalf("tree stopped after %v, more than twice its 300ms deadline", took)
			}
			select {
			case <-gcDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the forced collection did not finish")
			}
			if ticks < 3 {
				t.Fatalf("only %d timer ticks while the guest ran for %v", ticks, took)
			}
			return
		case <-tick.C:
			ticks++
		}
	}
}

// TestBudgetGlobalIsNotReachable: a binary whose code names the global one
// past its own (invalid as it stands, valid once the call budget is
// appended there) is refused, so no guest can refill its own budget, also
// when a later engine finds the validation of other binaries cached.
func TestBudgetGlobalIsNotReachable(t *testing.T) {
	i32 := []byte{wasmtest.I32}
	refill := wasmtest.Cat(wasmtest.I32Const(1<<30), []byte{0x24, 0x00}, wasmtest.I32Const(0)) // global.set 0
	evil := wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: wasmtest.Sig{Params: i32, Results: i32}, Body: refill, Export: "tree"},
	}}.Encode()
	dir := t.TempDir()
	for run := range 2 {
		eng, _ := newEngine(t, runtime.Config{CacheDir: dir})
		if _, err := eng.Compile(context.Background(), treeGuest(4), manifest(t, treeManifest)); err != nil {
			t.Fatalf("run %d: a valid module: %v", run, err)
		}
		_, err := eng.Compile(context.Background(), evil, manifest(t, treeManifest))
		if !errors.Is(err, runtime.ErrInvalidModule) {
			t.Fatalf("run %d: a module naming the budget's global compiled: %v", run, err)
		}
	}
	// The valid binary's validation is remembered on disk; the invalid
	// one's is not.
	entries, err := os.ReadDir(filepath.Join(dir, "validated"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("validation markers: %v %v", entries, err)
	}
}
