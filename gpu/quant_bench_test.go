package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkInt8Linear compares one fully connected layer in f32 (SGEMM) and
// int8 (QLinear, every kernel) at inference batch sizes:
//
//	go test -run '^$' -bench Int8Linear -count 5 ./gpu/
func BenchmarkInt8Linear(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	cpu, _ := NewCPUWithConfig(CPUConfig{})
	for _, sz := range [][3]int{{1, 784, 256}, {64, 784, 256}, {1, 1024, 1024}, {64, 1024, 1024}, {256, 1024, 1024}} {
		batch, in, out := sz[0], sz[1], sz[2]
		w := randF32(r, in*out, 0.05)
		x := randF32(r, batch*in, 1)
		y := make([]float32, batch*out)
		q, _ := QuantizeLinear(w, in, out, nil)
		_ = q.Calibrate(x, 1)
		macs := float64(batch * in * out)
		name := fmt.Sprintf("%dx%dx%d", batch, in, out)
		b.Run(name+"/f32", func(b *testing.B) {
			for b.Loop() {
				_ = cpu.Sgemm(false, false, batch, out, in, x, w, y)
			}
			b.ReportMetric(2*macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
		})
		for _, k := range Int8Kernels() {
			q.Kernel = k
			b.Run(name+"/int8-"+k, func(b *testing.B) {
				for b.Loop() {
					_ = q.Forward(y, x, batch)
				}
				b.ReportMetric(2*macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
			})
		}
	}
}
