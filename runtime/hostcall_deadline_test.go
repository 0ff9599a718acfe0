package runtime_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// backToBack is a hostile guest whose entrypoint "run" makes n 512x512
// matmuls in straight-line code: no loop and no call of a guest function,
// so none of wazero's termination checks (at loop headers and function
// entries) ever runs; only the host calls can stop it.
func backToBack(n int, inInit bool) []byte {
	i32 := wasmtest.I32
	store := func(addr, v int32) []byte { // i32.store align=2 offset=0
		return wasmtest.Cat(wasmtest.I32Const(addr), wasmtest.I32Const(v), []byte{0x36, 0x02, 0x00})
	}
	newT := func(local byte) []byte { // new(f32, shape@0, rank 2, no data) -> local
		return wasmtest.Cat(wasmtest.I32Const(1), wasmtest.I32Const(0), wasmtest.I32Const(2),
			wasmtest.I32Const(0), wasmtest.I32Const(0), wasmtest.Call(0), []byte{0x21, local})
	}
	// 512x512 products (268 MFLOP each, ~1.5-3 ms on one core): 1000 of
	// them outlast the 300 ms deadline on the fastest CPU here (AVX-512 at
	// ~190 GFLOP/s on two threads finished 1000 of 256x256 in 295 ms), and
	// one is short enough for the stop to land well within 2x.
	body := wasmtest.Cat(store(0, 512), store(4, 512), newT(1), newT(2), newT(3))
	for range n {
		body = wasmtest.Cat(body, wasmtest.LocalGet(1), wasmtest.LocalGet(2), wasmtest.I32Const(0),
			wasmtest.LocalGet(3), wasmtest.Call(1), []byte{wasmtest.OpDrop})
	}
	entry := wasmtest.Func{
		Sig:    wasmtest.Sig{Params: []byte{i32}, Results: []byte{i32}},
		Locals: []byte{i32, i32, i32},
		Body:   wasmtest.Cat(body, wasmtest.I32Const(0)),
		Export: "run",
	}
	funcs := []wasmtest.Func{entry}
	if inInit {
		funcs = []wasmtest.Func{
			{Sig: wasmtest.Sig{}, Locals: []byte{i32, i32, i32, i32}, Body: body, Export: "_initialize"},
			{Sig: entry.Sig, Body: wasmtest.I32Const(0), Export: "run"},
		}
	}
	return wasmtest.Module{
		MemoryPages: 1,
		Imports: []wasmtest.Import{
			{Module: "fennec_tensor", Name: "new", Sig: wasmtest.Sig{Params: []byte{i32, i32, i32, i32, i32}, Results: []byte{i32}}},
			{Module: "fennec_tensor", Name: "matmul", Sig: wasmtest.Sig{Params: []byte{i32, i32, i32, i32}, Results: []byte{i32}}},
		},
		Funcs: funcs,
	}.Encode()
}

// back-to-back and in-init variants share this manifest.
const backToBackManifest = `
name = "backtoback"
version = "1.0.0"
entrypoints = ["run"]
capabilities = ["tensor"]

[limits]
call_timeout = "300ms"
tensor_bytes = 4194304
`

// TestBackToBackHostCallsStopAtDeadline: 1000 matmuls in a row under a
// 300 ms deadline used to run for seconds and then be reported as
// "stopped after 300ms". Every host call now checks the deadline, so the
// call stops within 2x of it, and the error reports the time it really
// took.
func TestBackToBackHostCallsStopAtDeadline(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	man := manifest(t, backToBackManifest)
	mod, err := eng.Compile(context.Background(), backToBack(1000, false), man)
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 300 * time.Millisecond
	start := time.Now()
	_, err = mod.Call(context.Background(), "run", nil)
	took := time.Since(start)
	if !errors.Is(err, runtime.ErrDeadline) {
		t.Fatalf("1000 matmuls under a %v deadline: err %v after %v", deadline, err, took)
	}
	if took > 2*deadline {
		t.Fatalf("stopped %v after the call began, more than 2x its deadline of %v (%v)", took, deadline, err)
	}
	m := regexp.MustCompile(`deadline 300ms, stopped after ([0-9.]+m?s)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error does not report the deadline and the real time: %v", err)
	}
	reported, perr := time.ParseDuration(m[1])
	if perr != nil {
		t.Fatal(perr)
	}
	// The message rounds to the millisecond.
	if reported < deadline || reported > took+time.Millisecond {
		t.Fatalf("error reports %v, the call took %v with a deadline of %v", reported, took, deadline)
	}
	if s := mod.Stats(); s.Deadlines != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBackToBackHostCallsInInitStop: the module's _initialize is guest code
// bounded like a call; straight-line host calls there stop at the deadline
// too, and the instantiation fails as a trap.
func TestBackToBackHostCallsInInitStop(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	mod, err := eng.Compile(context.Background(), backToBack(1000, true), manifest(t, backToBackManifest))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = mod.Call(context.Background(), "run", nil)
	took := time.Since(start)
	if !errors.Is(err, runtime.ErrTrap) {
		t.Fatalf("1000 matmuls in _initialize: err %v after %v", err, took)
	}
	if took > 600*time.Millisecond+stopSlack {
		t.Fatalf("_initialize stopped after %v, more than 2x the 300ms deadline (%v)", took, err)
	}
}
