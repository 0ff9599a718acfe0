package instrument_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime/internal/instrument"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var i32 = []byte{wasmtest.I32}

// seeds are small valid modules of different shapes: no globals, imported
// globals, defined globals, no code, custom sections before and after.
func seeds(t testing.TB) [][]byte {
	plain := wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: wasmtest.Sig{Params: i32, Results: i32}, Body: wasmtest.LocalGet(0), Export: "id"},
	}}.Encode()
	imports := wasmtest.Forwarder(1, wasmtest.Import{Module: "env", Name: "f", Sig: wasmtest.Sig{Params: i32, Results: i32}})
	out := [][]byte{plain, imports, withGlobals(t), wasmtest.Module{MemoryPages: 1}.Encode()}
	// Custom sections around the others, as toolchains write them.
	custom := func(name string) []byte {
		p := append([]byte{byte(len(name))}, name...)
		p = append(p, 1, 2, 3)
		return append([]byte{0, byte(len(p))}, p...)
	}
	c := append(append([]byte{}, plain[:8]...), custom("first")...)
	c = append(c, plain[8:]...)
	c = append(c, custom("last")...)
	out = append(out, c)
	if p := probeWasm(t); p != nil {
		out = append(out, p)
	}
	return out
}

// withGlobals returns a module with one imported and one defined global
// that its function reads and writes.
func withGlobals(t testing.TB) []byte {
	hdr := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	sec := func(id byte, p ...byte) []byte { return append([]byte{id, byte(len(p))}, p...) }
	m := append([]byte{}, hdr...)
	m = append(m, sec(1, 1, 0x60, 1, 0x7f, 1, 0x7f)...)                                 // type (i32)->i32
	m = append(m, sec(2, 1, 1, 'e', 1, 'g', 3, 0x7f, 0)...)                             // import env.g: i32
	m = append(m, sec(3, 1, 0)...)                                                      // func
	m = append(m, sec(6, 1, 0x7f, 1, 0x41, 7, 0x0b)...)                                 // global 1: mut i32 = 7
	m = append(m, sec(7, 1, 1, 'f', 0, 0)...)                                           // export f
	m = append(m, sec(10, 1, 11, 0, 0x23, 0, 0x23, 1, 0x6a, 0x24, 1, 0x20, 0, 0x0b)...) // g0 + g1 -> g1; local 0
	return m
}

var probeOnce []byte

func probeWasm(t testing.TB) []byte {
	if probeOnce != nil {
		return probeOnce
	}
	path, err := guestbuild.Go(context.Background(), "../../testdata/probe", filepath.Join(os.TempDir(), "fennec-test-guests"))
	if err != nil {
		if errors.Is(err, guestbuild.ErrNoGo) {
			return nil
		}
		t.Fatalf("building the probe guest: %v", err)
	}
	probeOnce, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return probeOnce
}

func validator() wazero.Runtime {
	return wazero.NewRuntimeWithConfig(context.Background(),
		wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
}

func valid(r wazero.Runtime, wasm []byte) error {
	cm, err := r.CompileModule(context.Background(), wasm)
	if err == nil {
		cm.Close(context.Background())
	}
	return err
}

func TestBudgetKeepsModulesValid(t *testing.T) {
	r := validator()
	defer r.Close(context.Background())
	for i, s := range seeds(t) {
		if err := valid(r, s); err != nil {
			t.Fatalf("seed %d is not valid: %v", i, err)
		}
		out, err := instrument.Budget(s, 0)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if err := valid(r, out); err != nil {
			t.Fatalf("seed %d: instrumented module is invalid: %v", i, err)
		}
		cm, _ := r.CompileModule(context.Background(), s)
		cm2, _ := r.CompileModule(context.Background(), out)
		if len(cm.ExportedFunctions()) != len(cm2.ExportedFunctions()) || len(cm.ImportedFunctions()) != len(cm2.ImportedFunctions()) {
			t.Fatalf("seed %d: exports or imports changed", i)
		}
		for name, f := range cm.ExportedFunctions() {
			if g := cm2.ExportedFunctions()[name]; g == nil || g.Name() != f.Name() {
				t.Fatalf("seed %d: export %s lost its name %q", i, name, f.Name())
			}
		}
	}
}

func TestBudgetRunsGuestCode(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	out, err := instrument.Budget(seeds(t)[0], 3) // refill 3: a check every call
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		res, err := mod.ExportedFunction("id").Call(ctx, uint64(i))
		if err != nil || res[0] != uint64(i) {
			t.Fatalf("id(%d) = %v, %v", i, res, err)
		}
	}
}

func TestBudgetRejectsMalformed(t *testing.T) {
	good := seeds(t)[1]
	for _, b := range [][]byte{
		nil, []byte("\x00asm"), []byte("\x00asm\x02\x00\x00\x00"),
		good[:len(good)-1],                                            // truncated code section
		append(append([]byte{}, good...), 10),                         // section without size
		append(append([]byte{}, good[:8]...), 42, 0),                  // unknown section
		[]byte("\x00asm\x01\x00\x00\x00\x07\x05\xff\xff\xff\xff\x0f"), // 2^32-1 exports in 0 bytes
	} {
		if _, err := instrument.Budget(b, 0); !errors.Is(err, instrument.ErrMalformed) {
			t.Errorf("Budget(%x...) = %v, want ErrMalformed", b[:min(len(b), 12)], err)
		}
	}
}

// FuzzBudget mutates valid modules: Budget must not panic, must reject
// what it cannot read with ErrMalformed, and must turn every module wazero
// accepts into one wazero accepts. (What Budget rejects is not handed to
// wazero: its decoder spends tens of seconds on some 30-byte binaries with
// huge declared counts, which would stall the fuzzer.)
func FuzzBudget(f *testing.F) {
	for _, s := range seeds(f) {
		if len(s) < 64<<10 { // the probe is too large to mutate usefully
			f.Add(s)
		}
	}
	r := validator()
	f.Add([]byte("\x00asm\x01\x00\x00\x00\a\x1e\xff\xff\xffv_f\x00\x01\x04noop\x00\x02\n\r\x02\x06\x00 \x00\x10\x00\v\x04\x00A\x00\r"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument.Budget(wasm, 100)
		if err != nil {
			if !errors.Is(err, instrument.ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		if valid(r, wasm) == nil {
			if err := valid(r, out); err != nil {
				t.Fatalf("instrumented module is invalid: %v\nin  %x\nout %x", err, wasm, out)
			}
		}
	})
}
