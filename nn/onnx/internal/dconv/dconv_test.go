package dconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRunRows: RunRows against its definition over row widths around
// every tile width (a last tile that runs past the row), row strides past
// the width, every chunk mix, a tap reading x's last element and nothing
// written past RowsSpan.
func TestRunRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mp := range []int{16, 32, 48, 64, 80} {
		for _, kk := range []int{1, 9, 147} {
			for _, shape := range [][3]int{{1, 1, 1}, {3, 4, 6}, {4, 4, 6}, {8, 8, 10}, {2, 5, 5}, {3, 7, 9}, {16, 16, 18}, {2, 32, 35}, {5, 13, 13}, {2, 17, 20}} {
				oh, ow, w2 := shape[0], shape[1], shape[2]
				t.Run(fmt.Sprintf("mp%d_kk%d_%dx%d_w2%d", mp, kk, oh, ow, w2), func(t *testing.T) {
					read, write := RowsSpan(oh, ow, w2, mp)
					span := 3 * kk
					x := make([]float32, span+read)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					offs := make([]int32, kk)
					for k := range offs {
						offs[k] = int32(rng.IntN(span + 1))
					}
					offs[kk-1] = int32(span)
					wt := make([]float32, kk*mp)
					for i := range wt {
						wt[i] = float32(rng.NormFloat64())
					}
					bias := make([]float32, mp)
					if kk != 9 { // kk 9 runs with a zero bias
						for i := range bias {
							bias[i] = float32(rng.NormFloat64())
						}
					}
					const guard = 64
					got := make([]float32, write*mp+guard)
					for i := range got {
						got[i] = float32(math.NaN())
					}
					want := make([]float32, oh*ow*mp)
					relu := kk == 147 || oh == 3
					if relu && mp == 16 {
						x[offs[0]] = float32(math.NaN()) // position 0 of every channel: NaN kept
					}
					RunRows(x, offs, wt, bias, mp, got[:write*mp], oh, ow, w2, relu)
					rowsGo(x, offs, wt, bias, mp, want, oh, ow, w2, relu)
					for i, w := range want {
						if math.IsNaN(float64(w)) && math.IsNaN(float64(got[i])) {
							continue
						}
						if d := math.Abs(float64(got[i] - w)); !(d <= 1e-4*(1+math.Abs(float64(w)))) {
							t.Fatalf("[%d] (position %d, channel %d) = %v, want %v", i, i/mp, i%mp, got[i], w)
						}
					}
					if relu && mp == 16 && !math.IsNaN(float64(got[0])) {
						t.Fatalf("relu dropped a NaN: %v", got[0])
					}
					for i := write * mp; i < len(got); i++ {
						if !math.IsNaN(float64(got[i])) {
							t.Fatalf("wrote past out at %d", i)
						}
					}
					if CheckRows(x[:len(x)-1], offs, wt, bias, mp, got[:write*mp], oh, ow, w2) == nil {
						t.Fatal("an input one short accepted")
					}
					if CheckRows(x, offs, wt, bias, mp, got[:write*mp-1], oh, ow, w2) == nil {
						t.Fatal("an out one short accepted")
					}
					if CheckRows(x, offs, wt, bias[:mp-1], mp, got[:write*mp], oh, ow, w2) == nil {
						t.Fatal("a bias one short accepted")
					}
				})
			}
		}
	}
}

func BenchmarkRunRows(b *testing.B) {
	for _, tc := range []struct{ mp, kk, oh, ow, w2 int }{{16, 147, 32, 32, 35}, {16, 144, 16, 16, 18}, {32, 144, 8, 8, 9}, {32, 288, 8, 8, 10}, {64, 576, 4, 4, 6}, {64, 288, 4, 4, 5}} {
		b.Run(fmt.Sprintf("mp%d_kk%d_%dx%d", tc.mp, tc.kk, tc.oh, tc.ow), func(b *testing.B) {
			read, write := RowsSpan(tc.oh, tc.ow, tc.w2, tc.mp)
			x := make([]float32, 4*tc.kk+read)
			offs := make([]int32, tc.kk)
			for k := range offs {
				offs[k] = int32(4 * k)
			}
			wt := make([]float32, tc.kk*tc.mp)
			out := make([]float32, write*tc.mp)
			bias := make([]float32, tc.mp)
			for b.Loop() {
				RunRows(x, offs, wt, bias, tc.mp, out, tc.oh, tc.ow, tc.w2, false)
			}
			b.ReportMetric(float64(tc.mp*tc.kk*tc.oh*tc.ow)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}

// TestCheckRows: RunRows refuses arguments that would read or write
// outside its slices, and panics on them.
func TestCheckRows(t *testing.T) {
	read, write := RowsSpan(2, 5, 7, 16)
	x := make([]float32, 10+read)
	wt := make([]float32, 2*16)
	bias := make([]float32, 16)
	out := make([]float32, write*16)
	if err := CheckRows(x, []int32{0, 10}, wt, bias, 16, out, 2, 5, 7); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"tap past x":      func() error { return CheckRows(x, []int32{0, 11}, wt, bias, 16, out, 2, 5, 7) },
		"negative tap":    func() error { return CheckRows(x, []int32{-1, 0}, wt, bias, 16, out, 2, 5, 7) },
		"short weights":   func() error { return CheckRows(x, []int32{0, 1, 2}, wt, bias, 16, out, 2, 5, 7) },
		"short out":       func() error { return CheckRows(x, []int32{0, 1}, wt, bias, 16, out[:len(out)-1], 2, 5, 7) },
		"channels not 16": func() error { return CheckRows(x, []int32{0, 1}, wt, bias, 8, out, 2, 5, 7) },
		"stride under ow": func() error { return CheckRows(x, []int32{0, 1}, wt, bias, 16, out, 2, 5, 4) },
		"no rows":         func() error { return CheckRows(x, []int32{0, 1}, wt, bias, 16, out, 0, 5, 7) },
		"short bias":      func() error { return CheckRows(x, []int32{0, 1}, wt, bias[:15], 16, out, 2, 5, 7) },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("RunRows with a tap past x did not panic")
		}
	}()
	RunRows(x, []int32{0, 11}, wt, bias, 16, out, 2, 5, 7, false)
}
