package gpu_test

import (
	"fmt"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// BenchmarkElementwise reports GB/s (bytes read + written) of elementwise
// ops, reductions and softmax through the Backend, beside a plain Go copy
// loop and the builtin copy (memmove) over the same bytes:
//
//	go test -run '^$' -bench Elementwise -count 5 ./gpu/
func BenchmarkElementwise(b *testing.B) {
	be := gpu.NewCPU()
	for _, n := range []int{1 << 16, 1 << 20, 1 << 24} {
		x, _ := be.New(gpu.F32, []int{n / 1024, 1024})
		y, _ := be.New(gpu.F32, []int{n / 1024, 1024})
		out, _ := be.New(gpu.F32, []int{n / 1024, 1024})
		row, _ := be.New(gpu.F32, []int{1024})
		red, _ := be.New(gpu.F32, []int{n / 1024})
		labels, _ := be.New(gpu.I32, []int{n / 1024})
		_ = be.Write(x, gpu.F32ToBytes(randSlice(n, 5)))
		_ = be.Write(y, gpu.F32ToBytes(randSlice(n, 6)))
		src, dst := randSlice(n, 7), make([]float32, n)
		gb := func(b *testing.B, bytesPerElem int) {
			b.ReportMetric(float64(bytesPerElem)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		}
		cases := []struct {
			name  string
			bytes int
			f     func() error
		}{
			{"copyloop", 8, func() error {
				for i := range dst {
					dst[i] = src[i]
				}
				return nil
			}},
			{"memmove", 8, func() error { copy(dst, src); return nil }},
			{"add", 12, func() error { return be.Binary(gpu.Add, out, x, y) }},
			{"mul_row_broadcast", 8, func() error { return be.Binary(gpu.Mul, out, x, row) }},
			{"scale", 8, func() error { return be.Unary(gpu.Scale, out, x, 0.5) }},
			{"relu", 8, func() error { return be.Unary(gpu.ReLU, out, x, 0) }},
			{"exp", 8, func() error { return be.Unary(gpu.Exp, out, x, 0) }},
			{"sigmoid", 8, func() error { return be.Unary(gpu.Sigmoid, out, x, 0) }},
			{"tanh", 8, func() error { return be.Unary(gpu.Tanh, out, x, 0) }},
			{"sigmoid_grad", 12, func() error { return be.UnaryGrad(gpu.Sigmoid, out, x, y, 0) }},
			{"axpy", 12, func() error { return be.Axpy(out, x, 0.1) }},
			{"sum_rows", 4, func() error { return be.Reduce(gpu.Sum, red, x, 1) }},
			{"softmax_rows", 8, func() error { return be.Softmax(out, x, 1, false) }},
			{"logsoftmax_rows", 8, func() error { return be.Softmax(out, x, 1, true) }},
			{"softmax_cols", 8, func() error { return be.Softmax(out, x, 0, false) }},
			// cross-entropy over [n/1024, 1024] logits with class indices:
			// read logits, write the gradient
			{"ce_loss_grad", 8, func() error { _, err := be.Loss(gpu.SoftmaxCrossEntropy, out, x, labels); return err }},
			{"bce_loss_grad", 12, func() error { _, err := be.Loss(gpu.BinaryCrossEntropy, out, x, y); return err }},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("n=%d/%s", n, c.name), func(b *testing.B) {
				for b.Loop() {
					if err := c.f(); err != nil {
						b.Fatal(err)
					}
				}
				gb(b, c.bytes)
			})
		}
	}
}
