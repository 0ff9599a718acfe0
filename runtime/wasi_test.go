package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

const wasiMod = "wasi_snapshot_preview1"

var (
	i32x1 = []byte{wasmtest.I32}
	entry = wasmtest.Sig{Params: i32x1, Results: i32x1}
)

func op(b ...byte) []byte { return b }

// fillIovecs stores n iovecs {ptr 0, len l} at 4096 (local 1 counts).
func fillIovecs(n, l int32) []byte {
	addr := wasmtest.Cat(wasmtest.LocalGet(1), wasmtest.I32Const(3), op(0x74), wasmtest.I32Const(4096), op(0x6a))
	return wasmtest.Cat(
		op(0x02, 0x40, 0x03, 0x40),                                    // block loop
		wasmtest.LocalGet(1), wasmtest.I32Const(n), op(0x4f, 0x0d, 1), // i >= n: br_if 1
		addr, wasmtest.I32Const(0), op(0x36, 2, 0), // iov.ptr = 0
		addr, wasmtest.I32Const(l), op(0x36, 2, 4), // iov.len = l
		wasmtest.LocalGet(1), wasmtest.I32Const(1), op(0x6a, 0x21, 1), // i++
		op(0x0c, 0, wasmtest.OpEnd, wasmtest.OpEnd), // br 0; end; end
	)
}

// wasiGuest imports poll_oneoff, fd_write and random_get and exports
// hostile entrypoints.
func wasiGuest() []byte {
	four := wasmtest.Sig{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I32}, Results: i32x1}
	two := wasmtest.Sig{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: i32x1}
	const poll, write, random = 0, 1, 2
	fdWrite := func(n int32) []byte { // fd_write(1, 4096, n, 8)
		return wasmtest.Cat(wasmtest.I32Const(1), wasmtest.I32Const(4096), wasmtest.I32Const(n), wasmtest.I32Const(8), wasmtest.Call(write))
	}
	return wasmtest.Module{
		Imports: []wasmtest.Import{
			{Module: wasiMod, Name: "poll_oneoff", Sig: four},
			{Module: wasiMod, Name: "fd_write", Sig: four},
			{Module: wasiMod, Name: "random_get", Sig: two},
		},
		MemoryPages: 300, // the iovecs of "many" need 16 MB
		Funcs: []wasmtest.Func{
			// sleep: one relative clock subscription of 2^63-1 ns at 0.
			{Sig: entry, Export: "sleep", Body: wasmtest.Cat(
				wasmtest.I32Const(24), op(0x42), sleb64(1<<63-1), op(0x37, 3, 0), // i64.store timeout
				wasmtest.I32Const(0), wasmtest.I32Const(64), wasmtest.I32Const(1), wasmtest.I32Const(128), wasmtest.Call(poll))},
			// many: 2,000,000 iovecs over one 2-byte buffer.
			{Sig: entry, Locals: i32x1, Export: "many", Body: wasmtest.Cat(
				wasmtest.I32Const(0), wasmtest.I32Const(0x0a78), op(0x3b, 1, 0), // "x\n" at 0
				fillIovecs(2_000_000, 2), fdWrite(2_000_000))},
			// big: 1024 iovecs of 64 KiB; returns the bytes written.
			{Sig: entry, Locals: i32x1, Export: "big", Body: wasmtest.Cat(
				fillIovecs(1024, 65536), fdWrite(1024), op(0x04, 0x7f), // if (result i32): errno
				wasmtest.I32Const(-1), op(0x05), // else
				wasmtest.I32Const(8), op(0x28, 2, 0), // nwritten
				op(wasmtest.OpEnd))},
			// randloop: random_get of 1 MiB, forever, with no other host call.
			{Sig: entry, Export: "randloop", Body: wasmtest.Cat(
				op(0x03, 0x40), wasmtest.I32Const(0), wasmtest.I32Const(1<<20), wasmtest.Call(random), op(wasmtest.OpDrop, 0x0c, 0, wasmtest.OpEnd),
				wasmtest.I32Const(0))},
		},
	}.Encode()
}

func sleb64(v int64) []byte { return wasmtest.SLEB(v) }

const wasiManifest = `
name = "wasi-hostile"
version = "1.0.0"
entrypoints = ["sleep", "many", "big", "randloop"]
[limits]
memory_pages = 300
call_timeout = "300ms"
`

// wasiBoundsManifest is wasiManifest with a deadline the bounds tests do
// not reach on a loaded machine: they check the iovec limits, not the
// deadline.
const wasiBoundsManifest = `
name = "wasi-hostile"
version = "1.0.0"
entrypoints = ["sleep", "many", "big", "randloop"]
[limits]
memory_pages = 300
call_timeout = "10s"
`

// stopSlack is what the "stopped within twice its deadline" checks allow
// on top for the scheduler of a loaded machine (CI runs many test
// binaries at once on 2 cores): the mechanism is what is checked, and a
// guest the deadline did not stop would run for ever.
const stopSlack = time.Second

// callWithin calls entry and fails the test if the call has not returned
// after limit (leaving the runaway behind).
func callWithin(t *testing.T, mod *runtime.Module, entry string, limit time.Duration) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := mod.Call(context.Background(), entry, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("%s: still running after %v", entry, limit)
		return 0, nil
	}
}

// TestWASIHonoursDeadline: a guest sleeping 2^63 ns in poll_oneoff, or
// spinning on random_get, is stopped at its deadline in both preemption
// modes (a host-calls guest is not abandoned: WASI calls are host calls).
func TestWASIHonoursDeadline(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{AllowHostCallPreemption: true})
	for _, mode := range []string{"strict", "host-calls"} {
		t.Run(mode, func(t *testing.T) {
			man := strings.Replace(wasiManifest, "[limits]", "[limits]\npreemption = \""+mode+"\"", 1)
			man = strings.Replace(man, `"wasi-hostile"`, `"wasi-`+mode+`"`, 1)
			mod, err := eng.Compile(context.Background(), wasiGuest(), manifest(t, man))
			if err != nil {
				t.Fatal(err)
			}
			for _, entry := range []string{"sleep", "randloop"} {
				took, err := callWithin(t, mod, entry, 5*time.Second)
				if !errors.Is(err, runtime.ErrDeadline) || strings.Contains(err.Error(), "abandoned") {
					t.Fatalf("%s: %v after %v, want a deadline stop", entry, err, took)
				}
				if took > 600*time.Millisecond+stopSlack {
					t.Fatalf("%s stopped after %v, more than twice its deadline", entry, took)
				}
			}
			if s := mod.Stats(); s.Abandoned != 0 || s.Deadlines != 2 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestWASIIovecBounds: fd_write with more than 1024 iovecs fails with
// EINVAL, and one call writes at most 1 MiB.
func TestWASIIovecBounds(t *testing.T) {
	eng, logs := newEngine(t, runtime.Config{})
	mod, err := eng.Compile(context.Background(), wasiGuest(), manifest(t, wasiBoundsManifest))
	if err != nil {
		t.Fatal(err)
	}
	_, err = callWithin(t, mod, "many", 15*time.Second)
	var ce *runtime.CallError
	if !errors.As(err, &ce) || ce.Status != 28 {
		t.Fatalf("many: %v, want status 28 (EINVAL)", err)
	}
	if n := strings.Count(logs.String(), "stream=stdout"); n > 0 {
		t.Fatalf("many: %d lines reached stdout", n)
	}
	_, err = callWithin(t, mod, "big", 15*time.Second)
	if !errors.As(err, &ce) || ce.Status <= 0 || ce.Status > 1<<20 {
		t.Fatalf("big: %v, want a short write of at most 1 MiB", err)
	}
}
