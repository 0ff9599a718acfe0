package gpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// TestCPUAdam checks the CPU backend's fused Adam against AdamSlices run
// serially, bit for bit, on a tensor large enough to be split across
// threads, and its refusals.
func TestCPUAdam(t *testing.T) {
	be := gpu.NewCPU()
	ad := be.(gpu.Adamer)
	const n = 300_001
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(shape []int, d []float32) gpu.Tensor {
		x, err := be.New(gpu.F32, shape)
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			if err := be.Write(x, gpu.F32ToBytes(d)); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	vals := func() []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	p0, g0 := vals(), vals()
	p, g, m, v := mk([]int{n}, p0), mk([]int{n}, g0), mk([]int{n}, nil), mk([]int{n}, nil)
	rp, rm, rv := append([]float32(nil), p0...), make([]float32, n), make([]float32, n)
	for step := 1; step <= 2; step++ {
		h := gpu.AdamParams{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: step}
		if err := ad.Adam(p, g, m, v, h); err != nil {
			t.Fatal(err)
		}
		gpu.AdamSlices(rp, g0, rm, rv, h)
	}
	b := make([]byte, p.Bytes())
	if err := be.Read(p, b); err != nil {
		t.Fatal(err)
	}
	for i, x := range gpu.BytesToF32(b) {
		if math.Float32bits(x) != math.Float32bits(rp[i]) {
			t.Fatalf("p[%d] = %v, serial %v", i, x, rp[i])
		}
	}
	ok := gpu.AdamParams{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}
	small := mk([]int{3}, nil)
	i32, err := be.New(gpu.I32, []int{n})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]func() error{
		"alias":      func() error { return ad.Adam(p, g, m, m, ok) },
		"shape":      func() error { return ad.Adam(p, g, small, v, ok) },
		"dtype":      func() error { return ad.Adam(p, i32, m, v, ok) },
		"step 0":     func() error { h := ok; h.Step = 0; return ad.Adam(p, g, m, v, h) },
		"beta2 1":    func() error { h := ok; h.Beta2 = 1; return ad.Adam(p, g, m, v, h) },
		"eps NaN":    func() error { h := ok; h.Eps = float32(math.NaN()); return ad.Adam(p, g, m, v, h) },
		"lr -1":      func() error { h := ok; h.LR = -1; return ad.Adam(p, g, m, v, h) },
		"lr Inf":     func() error { h := ok; h.LR = float32(math.Inf(1)); return ad.Adam(p, g, m, v, h) },
		"beta1 -0.5": func() error { h := ok; h.Beta1 = -0.5; return ad.Adam(p, g, m, v, h) },
	} {
		if err := c(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
