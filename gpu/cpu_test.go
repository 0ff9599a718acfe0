package gpu_test

import (
	"fmt"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/gpu/gputest"
)

func TestCPUConformance(t *testing.T) {
	gputest.Run(t, gpu.NewCPU)
}

// TestCPUKernels runs the suite once per SGEMM micro-kernel the CPU has, and
// single-threaded, so that every code path is checked on this machine.
func TestCPUKernels(t *testing.T) {
	for _, k := range gpu.AvailableKernels() {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/threads=%d", k, threads), func(t *testing.T) {
				gputest.Run(t, func() gpu.Backend {
					b, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Kernel: k, Threads: threads})
					if err != nil {
						t.Fatal(err)
					}
					return b
				})
			})
		}
	}
}

func TestCPUConfig(t *testing.T) {
	for _, c := range []gpu.CPUConfig{{Threads: -1}, {MaxBytes: -1}, {Kernel: "nope"}} {
		if _, err := gpu.NewCPUWithConfig(c); err == nil {
			t.Errorf("NewCPUWithConfig(%+v) succeeded", c)
		}
	}
	b, err := gpu.NewCPUWithConfig(gpu.CPUConfig{MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	x, err := b.New(gpu.F32, []int{20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.New(gpu.F32, []int{10}); err == nil {
		t.Error("allocation beyond MaxBytes succeeded")
	}
	b.Free(x)
	b.Free(x)
	if b.LiveBytes() != 0 {
		t.Errorf("LiveBytes after Free = %d", b.LiveBytes())
	}
	if _, err := b.New(gpu.F32, []int{25}); err != nil {
		t.Errorf("allocation after Free: %v", err)
	}
	// tensors of another CPU backend are refused, not used
	other := gpu.NewCPU()
	y, _ := other.New(gpu.F32, []int{5})
	if err := b.Unary(gpu.Copy, y, y, 0); err == nil {
		t.Error("op on another backend's tensor succeeded")
	}
}

func ExampleNewCPU() {
	be := gpu.NewCPU()
	a, _ := be.New(gpu.F32, []int{2, 3})
	b, _ := be.New(gpu.F32, []int{3, 2})
	_ = be.Write(a, gpu.F32ToBytes([]float32{1, 2, 3, 4, 5, 6}))
	_ = be.Write(b, gpu.F32ToBytes([]float32{1, 0, 0, 1, 1, 1}))
	shape, _ := gpu.MatMulShape(a.Shape(), b.Shape(), false, false)
	c, _ := be.New(gpu.F32, shape)
	if err := be.MatMul(c, a, b, false, false); err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, c.Bytes())
	_ = be.Read(c, buf)
	fmt.Println(shape, gpu.BytesToF32(buf))

	idx, _ := be.New(gpu.I32, []int{2})
	_ = be.ArgMax(idx, c, 1)
	ib := make([]byte, idx.Bytes())
	_ = be.Read(idx, ib)
	fmt.Println("argmax:", ib[0], ib[4])
	// Output:
	// [2 2] [4 5 10 11]
	// argmax: 1 1
}
