//go:build cuda

package cuda

import (
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"gorgonia.org/cu"
)

func benchTensor(b *testing.B, be *Backend, shape []int) gpu.Tensor {
	b.Helper()
	t, err := be.New(gpu.F32, shape)
	if err != nil {
		b.Fatal(err)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17)/17 - 0.5
	}
	if err := be.Write(t, gpu.F32ToBytes(v)); err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkMatMul4096 is the tensor host function's GEMM: Backend.MatMul
// on 4096x4096 f32 tensors in device memory, exact f32 (cuBLAS SGEMM), one
// synchronised call per iteration as a guest's call is.
func BenchmarkMatMul4096(b *testing.B) {
	be := backend(b)
	const n = 4096
	x, y, o := benchTensor(b, be, []int{n, n}), benchTensor(b, be, []int{n, n}), benchTensor(b, be, []int{n, n})
	defer func() { be.Free(x); be.Free(y); be.Free(o) }()
	if err := be.MatMul(o, x, y, false, false); err != nil { // warm up
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := be.MatMul(o, x, y, false, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
}

// BenchmarkMatMul4096TF32 is the same call on a backend with Config.TF32.
func BenchmarkMatMul4096TF32(b *testing.B) {
	backend(b)
	be, err := New(Config{TF32: true, Streams: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n = 4096
	x, y, o := benchTensor(b, be, []int{n, n}), benchTensor(b, be, []int{n, n}), benchTensor(b, be, []int{n, n})
	if err := be.MatMul(o, x, y, false, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := be.MatMul(o, x, y, false, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
}

// BenchmarkGemm4096BF16 is cuBLAS GEMM on bf16 data (f32 accumulation),
// the comparison point for torch.matmul in bf16; fennec's ABI has no bf16
// tensors, so this measures the library under the backend, not a host call.
func BenchmarkGemm4096BF16(b *testing.B) {
	be := backend(b)
	const n = 4096
	// bf16 buffers of n*n 2-byte elements inside f32 tensors of half the count
	x, y, o := benchTensor(b, be, []int{n * n / 2}), benchTensor(b, be, []int{n * n / 2}), benchTensor(b, be, []int{n * n / 2})
	defer func() { be.Free(x); be.Free(y); be.Free(o) }()
	run := func() error {
		return be.do(func(s *slot) error {
			return gemmEx(s.blas, gemmBF16, n, x.(*tensor).ptr, y.(*tensor).ptr, o.(*tensor).ptr)
		})
	}
	if err := run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
}

// BenchmarkConcurrentInstances runs 8 goroutines (instances) of small
// dependent op chains; with a stream per call they overlap on the device.
func BenchmarkConcurrentInstances(b *testing.B) {
	be := backend(b)
	const g = 8
	var ts [g][3]gpu.Tensor
	for i := range ts {
		ts[i] = [3]gpu.Tensor{benchTensor(b, be, []int{512, 512}), benchTensor(b, be, []int{512, 512}), benchTensor(b, be, []int{512, 512})}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		for j := 0; j < g; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := ts[j]
				for k := 0; k < 10; k++ {
					be.MatMul(t[2], t[0], t[1], false, false)
					be.Unary(gpu.Tanh, t[2], t[2], 0)
				}
			}()
		}
		wg.Wait()
	}
}

var _ = cu.DevicePtr(0)
