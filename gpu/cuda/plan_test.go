package cuda

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// naiveOffsets is NumPy broadcasting written out: the offsets into a and b
// of output element i.
func naiveOffsets(out, a, b []int, i int) (int, int) {
	r := len(out)
	idx := make([]int, r)
	for d := r - 1; d >= 0; d-- {
		idx[d] = i % out[d]
		i /= out[d]
	}
	off := func(s []int) int {
		o := 0
		for j, d := range s {
			x := idx[r-len(s)+j]
			if d == 1 {
				x = 0
			}
			o = o*d + x
		}
		return o
	}
	return off(a), off(b)
}

func TestPlanBroadcast(t *testing.T) {
	pairs := [][2][]int{
		{{7, 33}, {}}, {{}, {7, 33}}, {{7, 33}, {1}}, {{1}, {5}}, {{7, 33}, {33}}, {{33}, {7, 33}},
		{{7, 33}, {7, 1}}, {{7, 1}, {7, 33}}, {{7, 1}, {1, 33}}, {{2, 1, 3}, {4, 1}},
		{{2, 3, 4, 5}, {3, 1, 5}}, {{5, 1, 7, 1}, {1, 6, 1, 9}}, {{0, 3}, {3}}, {{2, 0}, {2, 1}},
		{{1, 1, 1, 1, 1, 1, 1, 2}, {2, 1, 2, 1, 2, 1, 2, 1}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		rank := 1 + r.IntN(gpu.MaxRank)
		full := make([]int, rank)
		for d := range full {
			full[d] = 1 + r.IntN(4)
		}
		mask := func() []int {
			s := append([]int(nil), full[r.IntN(rank):]...)
			for d := range s {
				if r.IntN(3) == 0 {
					s[d] = 1
				}
			}
			return s
		}
		pairs = append(pairs, [2][]int{mask(), mask()})
	}
	for _, p := range pairs {
		out, err := gpu.BroadcastShape(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		plan, err := planBroadcast(out, p[0], p[1])
		if err != nil {
			t.Fatalf("planBroadcast(%v, %v): %v", p[0], p[1], err)
		}
		n := 1
		for _, d := range out {
			n *= d
		}
		prod := 1
		for _, d := range plan.dims {
			prod *= d
		}
		if prod != n {
			t.Fatalf("%v %v: plan dims %v cover %d elements, want %d", p[0], p[1], plan.dims, prod, n)
		}
		for i := 0; i < n; i++ {
			ga, gb := plan.offsets(i)
			wa, wb := naiveOffsets(out, p[0], p[1], i)
			if ga != wa || gb != wb {
				t.Fatalf("%v %v element %d: plan offsets (%d,%d), want (%d,%d); plan %+v", p[0], p[1], i, ga, gb, wa, wb, plan)
			}
		}
	}
	// coalescing: a row broadcast over a matrix needs two dimensions, a
	// same-shape pair one.
	p, _ := planBroadcast([]int{7, 33}, []int{7, 33}, []int{33})
	if p.dims[maxDims-3] != 1 || p.dims[maxDims-2] != 7 || p.dims[maxDims-1] != 33 {
		t.Errorf("[7,33]+[33] plan dims %v, want [..1 7 33]", p.dims)
	}
	p, _ = planBroadcast([]int{2, 3, 4}, []int{2, 3, 4}, []int{2, 3, 4})
	if p.dims[maxDims-2] != 1 || p.dims[maxDims-1] != 24 {
		t.Errorf("same-shape plan dims %v, want one dimension of 24", p.dims)
	}
	if _, err := planBroadcast([]int{2, 3}, []int{2, 4}, []int{3}); !errors.Is(err, gpu.ErrShape) {
		t.Errorf("incompatible shapes: err %v, want ErrShape", err)
	}
}

// colMajorSgemm is the BLAS definition of SGEMM with alpha 1, beta 0 on
// column-major storage: C(m x n) = op(X)(m x k) op(Y)(k x n).
func colMajorSgemm(c gemmCall, x, y, out []float32) {
	at := func(mat []float32, op, ld, i, j int) float32 { // element (i, j) of op(mat)
		if op == opT {
			return mat[j+i*ld]
		}
		return mat[i+j*ld]
	}
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			var s float32
			for p := 0; p < c.k; p++ {
				s += at(x, c.opX, c.ldx, i, p) * at(y, c.opY, c.ldy, p, j)
			}
			out[i+j*c.ldc] = s
		}
	}
}

func TestGemmForRowMajor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][3]int{{1, 1, 1}, {2, 3, 4}, {7, 1, 33}, {1, 7, 1}, {5, 8, 3}, {16, 9, 1}, {3, 4, 0}} {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a := make([]float32, m*k) // row major, [m,k] or [k,m] when ta
				b := make([]float32, k*n)
				for i := range a {
					a[i] = float32(r.IntN(9) - 4)
				}
				for i := range b {
					b[i] = float32(r.IntN(9) - 4)
				}
				opA := func(i, p int) float32 {
					if ta {
						return a[p*m+i]
					}
					return a[i*k+p]
				}
				opB := func(p, j int) float32 {
					if tb {
						return b[j*k+p]
					}
					return b[p*n+j]
				}
				c, err := gemmFor(m, n, k, ta, tb)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]float32, m*n)
				x, y := a, b
				if c.swap {
					x, y = b, a
				}
				colMajorSgemm(c, x, y, got)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var w float32
						for p := 0; p < k; p++ {
							w += opA(i, p) * opB(p, j)
						}
						if got[i*n+j] != w {
							t.Fatalf("m=%d n=%d k=%d ta=%v tb=%v: out[%d,%d] = %v, want %v (call %+v)", m, n, k, ta, tb, i, j, got[i*n+j], w, c)
						}
					}
				}
				// leading dimensions must satisfy cuBLAS's checks
				rowsX, rowsY := c.m, c.k
				if c.opX == opT {
					rowsX = c.k
				}
				if c.opY == opT {
					rowsY = c.n
				}
				if c.ldx < max(1, rowsX) || c.ldy < max(1, rowsY) || c.ldc < max(1, c.m) {
					t.Errorf("m=%d n=%d k=%d ta=%v tb=%v: leading dimensions %+v too small", m, n, k, ta, tb, c)
				}
			}
		}
	}
	if _, err := gemmFor(1, 1<<31, 1, false, false); !errors.Is(err, gpu.ErrUnsupported) {
		t.Errorf("n = 2^31: err %v, want ErrUnsupported", err)
	}
}

func TestLaunchGeometry(t *testing.T) {
	for _, tc := range []struct{ n, sms, want int }{
		{0, 132, 1}, {1, 132, 1}, {256, 132, 1}, {257, 132, 2}, {1 << 20, 132, 132 * maxWaves},
		{1 << 20, 0, maxWaves}, {10000, 132, 40},
	} {
		if got := elemGrid(tc.n, tc.sms); got != tc.want {
			t.Errorf("elemGrid(%d, %d) = %d, want %d", tc.n, tc.sms, got, tc.want)
		}
	}
	for _, tc := range []struct{ L, want int }{{0, 32}, {1, 32}, {32, 32}, {33, 64}, {100, 128}, {257, 256}, {1 << 20, 256}} {
		if got := rowBlock(tc.L); got != tc.want {
			t.Errorf("rowBlock(%d) = %d, want %d", tc.L, got, tc.want)
		}
		if b := rowBlock(tc.L); b&(b-1) != 0 || b%32 != 0 {
			t.Errorf("rowBlock(%d) = %d is not a power-of-two multiple of the warp", tc.L, b)
		}
	}
	if rowGrid(0, 1024) != 1 || rowGrid(5000, 1024) != 1024 || rowGrid(7, 1024) != 7 {
		t.Error("rowGrid bounds")
	}
}

func TestAxisLayout(t *testing.T) {
	o, l, i := axisLayout([]int{2, 3, 5, 7}, 1)
	if o != 2 || l != 3 || i != 35 {
		t.Errorf("axisLayout = %d %d %d", o, l, i)
	}
	o, l, i = axisLayout([]int{4}, 0)
	if o != 1 || l != 4 || i != 1 {
		t.Errorf("axisLayout rank 1 = %d %d %d", o, l, i)
	}
}
