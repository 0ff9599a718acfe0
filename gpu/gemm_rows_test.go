package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSgemmRows: B's rows taken from anywhere give the product of the
// gathered matrix, on one and two threads and across the kernels' blocks;
// rows outside b are refused.
func TestSgemmRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for _, threads := range []int{1, 2} {
		cpu, err := NewCPUWithConfig(CPUConfig{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][3]int{{1, 5, 3}, {7, 33, 300}, {24, 300, 72}, {64, 64, 64}} {
			m, n, k := sz[0], sz[1], sz[2]
			a := make([]float32, m*k)
			b := make([]float32, n*k+50)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64())
			}
			rows := make([]int, k)
			dense := make([]float32, k*n)
			for p := range rows {
				rows[p] = rng.IntN(len(b) - n + 1)
				copy(dense[p*n:(p+1)*n], b[rows[p]:])
			}
			got, want := make([]float32, m*n), make([]float32, m*n)
			if err := cpu.SgemmRows(m, n, k, a, b, rows, got); err != nil {
				t.Fatal(err)
			}
			if err := cpu.Sgemm(false, false, m, n, k, a, dense, want); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("threads %d %v: [%d] = %v, want %v", threads, sz, i, got[i], want[i])
				}
			}
			// SgemmRowsLd: rows of c 3 apart past n, the gaps untouched
			ldc := n + 3
			strided := make([]float32, (m-1)*ldc+n)
			for i := range strided {
				strided[i] = -7
			}
			if err := cpu.SgemmRowsLd(m, n, k, a, b, rows, strided, ldc); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < m; i++ {
				for j := 0; j < ldc && i*ldc+j < len(strided); j++ {
					v := strided[i*ldc+j]
					if j >= n {
						if v != -7 {
							t.Fatalf("threads %d %v: ldc gap [%d,%d] written: %v", threads, sz, i, j, v)
						}
						continue
					}
					if w := want[i*n+j]; math.Abs(float64(v-w)) > 1e-4*(1+math.Abs(float64(w))) {
						t.Fatalf("threads %d %v ldc %d: [%d,%d] = %v, want %v", threads, sz, ldc, i, j, v, w)
					}
				}
			}
		}
		if err := cpu.SgemmRowsLd(2, 4, 1, []float32{1, 1}, make([]float32, 5), []int{0}, make([]float32, 8), 5); err == nil {
			t.Fatal("a c shorter than (m-1)*ldc+n was accepted")
		}
		if err := cpu.SgemmRowsLd(1, 4, 1, []float32{1}, make([]float32, 5), []int{0}, make([]float32, 8), 3); err == nil {
			t.Fatal("ldc < n was accepted")
		}
		if err := cpu.SgemmRows(1, 4, 1, []float32{1}, make([]float32, 5), []int{2}, make([]float32, 4)); err == nil {
			t.Fatal("a row past the end of b was accepted")
		}
		if err := cpu.SgemmRows(1, 4, 1, []float32{1}, make([]float32, 5), []int{-1}, make([]float32, 4)); err == nil {
			t.Fatal("a negative row offset was accepted")
		}
	}
}

// TestSgemmStripTails: every count of rows left over after the register
// strips (m = 1..2*mr+1), full and partial column strips, one k block and
// two (the second accumulates), on each kernel, against a float64 product.
func TestSgemmStripTails(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range AvailableKernels() {
		cpu, err := NewCPUWithConfig(CPUConfig{Kernel: name, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		mr := cpu.kern.mr
		for m := 1; m <= 2*mr+1; m++ {
			for _, n := range []int{16, 37} {
				for _, k := range []int{5, 300} {
					a, b := make([]float32, m*k), make([]float32, k*n)
					for i := range a {
						a[i] = float32(rng.NormFloat64())
					}
					for i := range b {
						b[i] = float32(rng.NormFloat64())
					}
					got := make([]float32, m*n)
					for i := range got {
						got[i] = float32(math.NaN()) // overwritten, never read
					}
					if err := cpu.Sgemm(false, false, m, n, k, a, b, got); err != nil {
						t.Fatal(err)
					}
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							var want float64
							for p := 0; p < k; p++ {
								want += float64(a[i*k+p]) * float64(b[p*n+j])
							}
							if d := math.Abs(float64(got[i*n+j]) - want); !(d <= 1e-4*(1+math.Abs(want))) {
								t.Fatalf("%s %dx%dx%d: [%d,%d] = %v, want %v", name, m, n, k, i, j, got[i*n+j], want)
							}
						}
					}
				}
			}
		}
	}
}
