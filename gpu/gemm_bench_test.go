package gpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/gpu/internal/openblasref"
)

func randSlice(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.Float64()*2 - 1)
	}
	return v
}

// BenchmarkSgemm measures square SGEMM on every kernel this CPU has and, when
// built with -tags openblas, OpenBLAS's cblas_sgemm side by side:
//
//	go test -tags openblas -run '^$' -bench 'Sgemm$' -count 5 ./gpu/
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512, 1024, 2048} {
		a, bb, c := randSlice(n*n, 1), randSlice(n*n, 2), make([]float32, n*n)
		flops := 2 * float64(n) * float64(n) * float64(n)
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		for _, k := range gpu.AvailableKernels() {
			if k == "go" && n > 512 {
				continue // minutes per op; the 256/512 figures suffice
			}
			cpu, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Kernel: k})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, k), func(b *testing.B) {
				for b.Loop() {
					_ = cpu.Sgemm(false, false, n, n, n, a, bb, c)
				}
				report(b)
			})
		}
		if openblasref.Available {
			b.Run(fmt.Sprintf("n=%d/openblas", n), func(b *testing.B) {
				for b.Loop() {
					openblasref.Sgemm(false, false, n, n, n, a, bb, c)
				}
				report(b)
			})
		}
	}
}

// BenchmarkSgemmTrans measures the transposed variants at n=512.
func BenchmarkSgemmTrans(b *testing.B) {
	n := 512
	a, bb, c := randSlice(n*n, 1), randSlice(n*n, 2), make([]float32, n*n)
	cpu, _ := gpu.NewCPUWithConfig(gpu.CPUConfig{})
	for _, t := range [][2]bool{{false, true}, {true, false}, {true, true}} {
		b.Run(fmt.Sprintf("ta=%v,tb=%v/fennec", t[0], t[1]), func(b *testing.B) {
			for b.Loop() {
				_ = cpu.Sgemm(t[0], t[1], n, n, n, a, bb, c)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		if openblasref.Available {
			b.Run(fmt.Sprintf("ta=%v,tb=%v/openblas", t[0], t[1]), func(b *testing.B) {
				for b.Loop() {
					openblasref.Sgemm(t[0], t[1], n, n, n, a, bb, c)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSkinny measures small layer-sized products where call overhead
// dominates: batch x 30 features times 30 x 16 hidden, through the Backend
// interface (as the host calls it) and on raw slices.
func BenchmarkSkinny(b *testing.B) {
	be := gpu.NewCPU()
	for _, batch := range []int{1, 32, 64, 256} {
		x, _ := be.New(gpu.F32, []int{batch, 30})
		w, _ := be.New(gpu.F32, []int{30, 16})
		y, _ := be.New(gpu.F32, []int{batch, 16})
		_ = be.Write(x, gpu.F32ToBytes(randSlice(batch*30, 3)))
		_ = be.Write(w, gpu.F32ToBytes(randSlice(30*16, 4)))
		b.Run(fmt.Sprintf("%dx30x16/fennec", batch), func(b *testing.B) {
			for b.Loop() {
				if err := be.MatMul(y, x, w, false, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		if openblasref.Available {
			xs, ws, ys := randSlice(batch*30, 3), randSlice(30*16, 4), make([]float32, batch*16)
			b.Run(fmt.Sprintf("%dx30x16/openblas", batch), func(b *testing.B) {
				for b.Loop() {
					openblasref.Sgemm(false, false, batch, 16, 30, xs, ws, ys)
				}
			})
		}
	}
}

// BenchmarkSgemmShapes measures the products the shared ONNX models make
// (m x n x k of their convolutions: embedding_model, PP-OCR cls and det), one
// thread, the AVX2/auto kernel:
//
//	go test -run '^$' -bench 'SgemmShapes' -count 5 ./gpu/
func BenchmarkSgemmShapes(b *testing.B) {
	cpu, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range [][3]int{{96, 48, 288}, {72, 300, 216}, {48, 612, 144}, {24, 2516, 72}, {24, 288, 864}, {200, 192, 32}, {8, 2304, 8}} {
		m, n, k := s[0], s[1], s[2]
		a, bb, c := randSlice(m*k, 1), randSlice(k*n, 2), make([]float32, m*n)
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			for b.Loop() {
				_ = cpu.Sgemm(false, false, m, n, k, a, bb, c)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
