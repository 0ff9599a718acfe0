package modules_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

func loadC(t testing.TB) *runtime.Module {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs wasm guests; skipped with -short")
	}
	if err := guestbuild.CAvailable(context.Background()); err != nil {
		t.Skipf("C guest not built: %v", err)
	}
	return load(t, "c-zscore/zscore.c", "c-zscore/fennec.toml")
}

type zOut struct {
	Values []float64 `cbor:"values"`
	Mean   float64   `cbor:"mean"`
	Std    float64   `cbor:"std"`
	N      uint64    `cbor:"n"`
}

func TestCZScore(t *testing.T) {
	mod := loadC(t)
	vals := []float64{72, 80, 65.5, 90, 1.5, -3, 1e3}
	var mean, ss float64
	for _, v := range vals {
		mean += v
	}
	mean /= float64(len(vals))
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	std := math.Sqrt(ss / float64(len(vals)))
	check := func(name string, in any) {
		out := call[zOut](t, mod, "zscore", in)
		if out.N != uint64(len(vals)) || math.Abs(out.Mean-mean) > 1e-3 || math.Abs(out.Std-std)/std > 1e-5 {
			t.Fatalf("%s: n=%d mean=%v std=%v, want %v %v", name, out.N, out.Mean, out.Std, mean, std)
		}
		for i, v := range vals {
			if want := (v - mean) / std; math.Abs(out.Values[i]-want) > 1e-4 {
				t.Fatalf("%s: z[%d] = %v, want %v", name, i, out.Values[i], want)
			}
		}
	}
	// The SDK's deterministic encoding writes 72 as an int, 65.5 as a
	// half float, 1e3 as an int...: the C reader must take them all.
	check("array", map[string]any{"other": []any{1, "x", map[string]any{"k": true}}, "values": vals})
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
	}
	check("bstr f32", map[string]any{"values": raw})

	c := call[zOut](t, mod, "zscore", map[string]any{"values": []float64{5, 5, 5}})
	if c.Std != 0 || c.Values[0] != 0 || c.Values[2] != 0 {
		t.Fatalf("constant input: %+v", c)
	}
	for name, in := range map[string][]byte{
		"empty":          {},
		"not a map":      {0x83, 1, 2, 3},
		"no values":      mustCBOR(t, map[string]any{"v": 1}),
		"empty values":   mustCBOR(t, map[string]any{"values": []float64{}}),
		"string values":  mustCBOR(t, map[string]any{"values": "abc"}),
		"truncated":      mustCBOR(t, map[string]any{"values": vals})[:20],
		"odd bstr":       mustCBOR(t, map[string]any{"values": []byte{1, 2, 3}}),
		"huge array len": {0xa1, 0x66, 'v', 'a', 'l', 'u', 'e', 's', 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := mod.Call(context.Background(), "zscore", in); !errors.Is(err, runtime.ErrGuest) {
			t.Errorf("%s: err = %v, want a guest failure (not a trap or success)", name, err)
		}
	}
}

// TestCZScoreFreesOnError runs the C module under a small tensor quota so
// that a large input fails part-way (after some tensors exist). The module
// must free them: otherwise the leaked bytes pile up on the reused instance
// and later, small calls fail too.
func TestCZScoreFreesOnError(t *testing.T) {
	loadC(t) // skips without clang
	man, err := runtime.ParseManifest([]byte(`name = "c-zscore"
version = "1.0.0"
entrypoints = ["zscore"]
capabilities = ["tensor"]

[limits]
memory_pages = 256
tensor_bytes = 65536
`), "quota.toml")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(wasmFor(t, "c-zscore/zscore.c"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := engine.Compile(context.Background(), bin, man)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(context.Background())
	// 6000 values: x, d and sq are 24,000 bytes each, so the third tensor
	// exceeds the 65,536-byte quota with two (and the mean) alive.
	big := mustCBOR(t, map[string]any{"values": make([]float64, 6000)})
	small := mustCBOR(t, map[string]any{"values": []float64{1, 2, 3}})
	for i := range 5 {
		_, err := mod.Call(context.Background(), "zscore", big)
		if !errors.Is(err, runtime.ErrGuest) || !strings.Contains(err.Error(), "square") || !strings.Contains(err.Error(), "EQUOTA") {
			t.Fatalf("big call %d: %v, want a quota failure in square", i, err)
		}
		if _, err := mod.Call(context.Background(), "zscore", small); err != nil {
			t.Fatalf("small call after %d failures: %v (tensors leaked?)", i+1, err)
		}
	}
}

func mustCBOR(t testing.TB, v any) []byte {
	b, err := sdk.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCZScore drives the C module's CBOR reader with arbitrary input through
// the runtime: every input must either succeed or fail cleanly, never trap.
func FuzzCZScore(f *testing.F) {
	f.Add(mustCBOR(f, map[string]any{"values": []float64{1, 2.5, 3}}))
	f.Add(mustCBOR(f, map[string]any{"values": []byte{0, 0, 128, 63}}))
	f.Add([]byte{0xa1, 0x66, 'v', 'a', 'l', 'u', 'e', 's', 0x9f, 0xff})
	mod := loadC(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := mod.Call(context.Background(), "zscore", in)
		if err != nil && !errors.Is(err, runtime.ErrGuest) {
			t.Fatalf("input %x: %v", in, err)
		}
	})
}
