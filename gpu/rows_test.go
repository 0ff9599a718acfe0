package gpu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// TestMatMulRows: computing a product in row blocks (as the host ABI does
// to check deadlines between blocks) gives the product computed at once, for every transpose combination, and refuses bad ranges.
func TestMatMulRows(t *testing.T) {
	cpu := gpu.NewCPU().(*gpu.CPU)
	r := rand.New(rand.NewPCG(1, 2))
	randT := func(shape ...int) gpu.Tensor {
		x, _ := cpu.New(gpu.F32, shape)
		f, _ := cpu.F32Data(x)
		for i := range f {
			f[i] = r.Float32()*2 - 1
		}
		return x
	}
	const m, k, n = 37, 29, 23
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		as, bs := []int{m, k}, []int{k, n}
		if tr[0] {
			as = []int{k, m}
		}
		if tr[1] {
			bs = []int{n, k}
		}
		a, b := randT(as...), randT(bs...)
		whole, _ := cpu.New(gpu.F32, []int{m, n})
		blocks, _ := cpu.New(gpu.F32, []int{m, n})
		if err := cpu.MatMul(whole, a, b, tr[0], tr[1]); err != nil {
			t.Fatal(err)
		}
		for r0 := 0; r0 < m; r0 += 5 {
			if err := cpu.MatMulRows(blocks, a, b, tr[0], tr[1], r0, min(m, r0+5)); err != nil {
				t.Fatal(err)
			}
		}
		wf, _ := cpu.F32Data(whole)
		bf, _ := cpu.F32Data(blocks)
		for i := range wf {
			// Blocks of one or two rows take another kernel path, which
			// may round differently.
			if d := wf[i] - bf[i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("trans %v: element %d: blocks %v, whole %v", tr, i, bf[i], wf[i])
			}
		}
		for _, bad := range [][2]int{{-1, 3}, {4, 3}, {0, m + 1}} {
			if err := cpu.MatMulRows(blocks, a, b, tr[0], tr[1], bad[0], bad[1]); err == nil {
				t.Errorf("rows %v accepted", bad)
			}
		}
	}
	// int8: rows of x are independent.
	x := randT(m, k)
	w, _ := cpu.New(gpu.I8, []int{k, n})
	sc, _ := cpu.New(gpu.F32, []int{1})
	if err := cpu.Write(sc, []byte{0, 0, 0x80, 0x3c}); err != nil { // 1/64
		t.Fatal(err)
	}
	wb := make([]byte, k*n)
	for i := range wb {
		wb[i] = byte(r.IntN(255) - 127)
	}
	if err := cpu.Write(w, wb); err != nil {
		t.Fatal(err)
	}
	whole, _ := cpu.New(gpu.F32, []int{m, n})
	blocks, _ := cpu.New(gpu.F32, []int{m, n})
	if err := cpu.MatMulInt8(whole, x, w, sc); err != nil {
		t.Fatal(err)
	}
	for r0 := 0; r0 < m; r0 += 6 {
		if err := cpu.MatMulInt8Rows(blocks, x, w, sc, r0, min(m, r0+6)); err != nil {
			t.Fatal(err)
		}
	}
	wf, _ := cpu.F32Data(whole)
	bf, _ := cpu.F32Data(blocks)
	for i := range wf {
		if wf[i] != bf[i] {
			t.Fatalf("int8: element %d: blocks %v, whole %v", i, bf[i], wf[i])
		}
	}
	if err := cpu.MatMulInt8Rows(blocks, x, w, sc, 3, 2); err == nil {
		t.Error("int8 rows [3, 2) accepted")
	}
}
