package instrument_test

import (
	"context"
	"testing"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime/internal/instrument"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// tree returns a loop-free module whose export "tree" (i32) makes 2^d calls;
// entryLoop puts an empty loop (a termination check) at the entry of f.
func tree(entryLoop bool) []byte {
	half := wasmtest.Cat(wasmtest.LocalGet(0), wasmtest.I32Const(1), []byte{0x6b}, wasmtest.Call(0))
	f := wasmtest.Cat(wasmtest.LocalGet(0), []byte{0x45, 0x04, 0x40, 0x0f, wasmtest.OpEnd}, half, half)
	if entryLoop {
		f = append([]byte{wasmtest.OpLoop, 0x40, wasmtest.OpEnd}, f...)
	}
	return wasmtest.Module{Funcs: []wasmtest.Func{{Sig: wasmtest.Sig{Params: i32}, Body: f, Export: "tree"}}}.Encode()
}

// BenchmarkCallTree measures the cost per guest call of each way to make
// calls preemptible; ns/op is per call (a tree of 2^16 calls per op).
func BenchmarkCallTree(b *testing.B) {
	budgeted, err := instrument.Budget(tree(false), 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		wasm   []byte
		checks bool
	}{
		{"no-checks", tree(false), false},       // host-calls preemption
		{"loop-checks-only", tree(false), true}, // strict as found: never checks here
		{"budget", budgeted, true},              // strict with the call budget
		{"check-every-call", tree(true), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(c.checks).WithCoreFeatures(api.CoreFeaturesV2))
			defer r.Close(ctx)
			mod, err := r.Instantiate(ctx, c.wasm)
			if err != nil {
				b.Fatal(err)
			}
			fn := mod.ExportedFunction("tree")
			b.ResetTimer()
			for range b.N {
				if _, err := fn.Call(ctx, 16); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(1<<17-1), "ns/call")
		})
	}
}

// BenchmarkValidate is the extra cost of validating a module with the
// interpreter before instrumenting it (the probe: a Go guest).
func BenchmarkValidate(b *testing.B) {
	wasm := probeWasm(b)
	if wasm == nil {
		b.Skip("no Go toolchain")
	}
	r := validator()
	defer r.Close(context.Background())
	for range b.N {
		if err := valid(r, wasm); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wasm)), "bytes")
}

// BenchmarkBudget is the cost of the rewrite itself on the probe.
func BenchmarkBudget(b *testing.B) {
	wasm := probeWasm(b)
	if wasm == nil {
		b.Skip("no Go toolchain")
	}
	for range b.N {
		if _, err := instrument.Budget(wasm, 0); err != nil {
			b.Fatal(err)
		}
	}
}
