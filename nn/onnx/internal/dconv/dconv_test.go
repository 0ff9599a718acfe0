package dconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRun: the AVX-512 tiles against the definition for every chunk mix
// (16-80 channels), tap counts and positions that end inside a tile, with
// each tap's run ending at the input's last element (nothing past it is
// read: a slice that ends there would fault in Check, and the guard
// around out stays untouched).
func TestRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, mp := range []int{16, 32, 48, 64, 80, 96, 112, 128} {
		for _, kk := range []int{1, 3, 9, 27, 147} {
			for _, npos := range []int{1, 5, 6, 7, 16, 17, 24, 31, 100} {
				t.Run(fmt.Sprintf("mp%d_kk%d_n%d", mp, kk, npos), func(t *testing.T) {
					rows := Rows(npos, mp)
					span := 3 * kk
					x := make([]float32, span+rows)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					offs := make([]int32, kk)
					for k := range offs {
						offs[k] = int32(rng.IntN(span + 1))
					}
					offs[kk-1] = int32(span) // reads x's last element
					wt := make([]float32, kk*mp)
					for i := range wt {
						wt[i] = float32(rng.NormFloat64())
					}
					const guard = 64
					got := make([]float32, rows*mp+guard)
					for i := range got {
						got[i] = float32(math.NaN())
					}
					want := make([]float32, rows*mp)
					if err := Check(x, offs, wt, mp, got[:rows*mp], npos); err != nil {
						t.Fatal(err)
					}
					Run(x, offs, wt, mp, got[:rows*mp], npos)
					runGo(x, offs, wt, mp, want, npos)
					if npos > Unit { // the same in two parts, as a split over threads runs it
						split := make([]float32, rows*mp)
						Run(x, offs, wt, mp, split, Unit)
						Run(x[Unit:], offs, wt, mp, split[Unit*mp:], npos-Unit)
						for i := 0; i < npos*mp; i++ {
							if split[i] != got[i] {
								t.Fatalf("split [%d] = %v, whole %v", i, split[i], got[i])
							}
						}
					}
					for i := 0; i < npos*mp; i++ {
						if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-4*(1+math.Abs(float64(want[i])))) {
							t.Fatalf("[%d] (position %d, channel %d) = %v, want %v", i, i/mp, i%mp, got[i], want[i])
						}
					}
					for i := rows * mp; i < len(got); i++ {
						if !math.IsNaN(float64(got[i])) {
							t.Fatalf("wrote past out at %d", i)
						}
					}
				})
			}
		}
	}
}

// TestCheck: Run refuses arguments that would read or write outside its
// slices.
func TestCheck(t *testing.T) {
	x := make([]float32, 40)
	wt := make([]float32, 2*16)
	out := make([]float32, Rows(10, 16)*16)
	if err := Check(x, []int32{0, 24}, wt, 16, out, 10); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"tap past x":      func() error { return Check(x, []int32{0, 25}, wt, 16, out, 10) },
		"negative tap":    func() error { return Check(x, []int32{-1, 0}, wt, 16, out, 10) },
		"short weights":   func() error { return Check(x, []int32{0, 1, 2}, wt, 16, out, 10) },
		"short out":       func() error { return Check(x, []int32{0, 1}, wt, 16, out[:len(out)-1], 10) },
		"channels not 16": func() error { return Check(x, []int32{0, 1}, wt, 8, out, 10) },
		"no channels":     func() error { return Check(x, []int32{0, 1}, wt, 0, out, 10) },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Run with a tap past x did not panic")
		}
	}()
	Run(x, []int32{0, 25}, wt, 16, out, 10)
}

func BenchmarkRun(b *testing.B) {
	for _, tc := range []struct{ mp, kk, npos int }{{16, 147, 1120}, {16, 144, 288}, {32, 288, 80}, {64, 576, 24}, {64, 288, 20}} {
		b.Run(fmt.Sprintf("mp%d_kk%d_n%d", tc.mp, tc.kk, tc.npos), func(b *testing.B) {
			rows := Rows(tc.npos, tc.mp)
			x := make([]float32, 4*tc.kk+rows)
			offs := make([]int32, tc.kk)
			for k := range offs {
				offs[k] = int32(4 * k)
			}
			wt := make([]float32, tc.kk*tc.mp)
			out := make([]float32, rows*tc.mp)
			for b.Loop() {
				Run(x, offs, wt, tc.mp, out, tc.npos)
			}
			b.ReportMetric(float64(tc.mp*tc.kk*tc.npos)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
