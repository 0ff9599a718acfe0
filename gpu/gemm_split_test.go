package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/internal/par"
)

// TestSgemmSplits checks products split over 2 and 3 threads (by rows and
// by columns, in chunks claimed by the caller and its helpers) against the
// same product on one thread, for all four transposes and sizes that do
// not fill the last register strip.
func TestSgemmSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 10))
	one, err := NewCPUWithConfig(CPUConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{2, 3} {
		cpu, err := NewCPUWithConfig(CPUConfig{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][3]int{{384, 100, 384}, {96, 480, 288}, {2000, 20, 400}, {24, 9000, 72}, {13, 5000, 250}, {1250, 37, 200}} {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				m, n, k := sz[0], sz[1], sz[2]
				a, b := make([]float32, m*k), make([]float32, k*n)
				for i := range a {
					a[i] = float32(rng.NormFloat64())
				}
				for i := range b {
					b[i] = float32(rng.NormFloat64())
				}
				got, want := make([]float32, m*n), make([]float32, m*n)
				before := par.Splits()
				if err := cpu.Sgemm(tr[0], tr[1], m, n, k, a, b, got); err != nil {
					t.Fatal(err)
				}
				if par.Splits() == before {
					t.Fatalf("threads %d %v trans %v: the product did not split", threads, sz, tr)
				}
				if err := one.Sgemm(tr[0], tr[1], m, n, k, a, b, want); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s: [%d] = %v, want %v", fmt.Sprintf("threads %d %v trans %v", threads, sz, tr), i, got[i], want[i])
					}
				}
			}
		}
	}
}
