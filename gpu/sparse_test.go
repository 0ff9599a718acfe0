package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestPrune(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, sp := range []float64{0, 0.5, 0.9, 0.99} {
		w := randF32(r, 10007, 1)
		orig := append([]float32(nil), w...)
		th, err := Prune(w, sp)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sparsity(w); got < sp || got > sp+0.001 {
			t.Errorf("Prune(%v): sparsity %v", sp, got)
		}
		for i := range w {
			if w[i] != 0 && w[i] != orig[i] {
				t.Fatalf("Prune changed a kept weight")
			}
			if w[i] == 0 && abs32(orig[i]) > th {
				t.Fatalf("Prune removed %v above the threshold %v", orig[i], th)
			}
			if w[i] != 0 && abs32(w[i]) <= th {
				t.Fatalf("Prune kept %v at or below the threshold %v", w[i], th)
			}
		}
	}
	for _, bad := range []float64{-0.1, 1, math.NaN()} {
		if _, err := Prune([]float32{1}, bad); err == nil {
			t.Errorf("Prune(%v) succeeded", bad)
		}
	}
}

func TestSparseLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	cpu, _ := NewCPUWithConfig(CPUConfig{})
	for _, sz := range [][4]int{{1, 30, 16, 50}, {3, 7, 5, 0}, {16, 33, 9, 90}, {64, 784, 256, 90}, {100, 257, 31, 99}} {
		batch, in, out := sz[0], sz[1], sz[2]
		w := randF32(r, in*out, 1)
		if _, err := Prune(w, float64(sz[3])/100); err != nil {
			t.Fatal(err)
		}
		bias := randF32(r, out, 1)
		s, err := NewSparseLinear(w, in, out, bias)
		if err != nil {
			t.Fatal(err)
		}
		x := randF32(r, batch*in, 1)
		got := make([]float32, batch*out)
		if err := s.Forward(got, x, batch); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, batch*out)
		_ = cpu.Sgemm(false, false, batch, out, in, x, w, want)
		for b := 0; b < batch; b++ {
			for o := 0; o < out; o++ {
				var scale float64
				for k := 0; k < in; k++ {
					scale += math.Abs(float64(x[b*in+k] * w[k*out+o]))
				}
				wv := float64(want[b*out+o] + bias[o])
				if d := math.Abs(float64(got[b*out+o]) - wv); d > 1e-5*(scale+math.Abs(float64(bias[o]))) {
					t.Fatalf("%v: [%d,%d] = %v, dense %v", sz, b, o, got[b*out+o], wv)
				}
			}
		}
		if s.NNZ() != int(math.Round((1-Sparsity(w))*float64(in*out))) {
			t.Errorf("%v: NNZ %d for sparsity %v", sz, s.NNZ(), Sparsity(w))
		}
	}
	if _, err := NewSparseLinear(make([]float32, 5), 2, 3, nil); err == nil {
		t.Error("wrong weight count accepted")
	}
}

func TestKLDistillSlices(t *testing.T) {
	s := []float32{1, 2, 3, 0, 0, 0}
	g := make([]float32, 6)
	l, err := KLDistill(g, s, s, 2, 3, 2)
	if err != nil || math.Abs(float64(l)) > 1e-7 {
		t.Fatalf("KL(self) = %v, %v", l, err)
	}
	for _, v := range g {
		if math.Abs(float64(v)) > 1e-7 {
			t.Fatalf("gradient of KL(self) = %v", g)
		}
	}
	if _, err := KLDistill(nil, s, s[:3], 2, 3, 1); err == nil {
		t.Error("short teacher accepted")
	}
	if _, err := KLDistill(nil, s, s, 2, 3, float32(math.Inf(1))); err == nil {
		t.Error("infinite temperature accepted")
	}
}

// BenchmarkSparseLinear compares dense SGEMM with the pruned sparse layer
// at several sparsities:
//
//	go test -run '^$' -bench SparseLinear -count 5 ./gpu/
func BenchmarkSparseLinear(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 11))
	cpu, _ := NewCPUWithConfig(CPUConfig{})
	for _, sz := range [][3]int{{1, 784, 256}, {64, 784, 256}, {64, 1024, 1024}} {
		batch, in, out := sz[0], sz[1], sz[2]
		w := randF32(r, in*out, 1)
		x := randF32(r, batch*in, 1)
		y := make([]float32, batch*out)
		name := fmt.Sprintf("%dx%dx%d", batch, in, out)
		b.Run(name+"/dense", func(b *testing.B) {
			for b.Loop() {
				_ = cpu.Sgemm(false, false, batch, out, in, x, w, y)
			}
		})
		for _, sp := range []float64{0.5, 0.8, 0.9, 0.95} {
			wp := append([]float32(nil), w...)
			_, _ = Prune(wp, sp)
			s, _ := NewSparseLinear(wp, in, out, nil)
			b.Run(fmt.Sprintf("%s/sparse%.0f%%", name, sp*100), func(b *testing.B) {
				for b.Loop() {
					_ = s.Forward(y, x, batch)
				}
			})
		}
	}
}
