package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulpDiff is the distance in float32 ulps between got and the float64 value
// want rounded to float32 (subnormals count in their own spacing).
func ulpDiff(got float32, want float64) int64 {
	w := float32(want)
	if got == w {
		return 0
	}
	d := int64(math.Float32bits(got)&^(1<<31)) - int64(math.Float32bits(w)&^(1<<31))
	if (got < 0) != (w < 0) {
		d = int64(math.Float32bits(got)&^(1<<31)) + int64(math.Float32bits(w)&^(1<<31))
	}
	if d < 0 {
		d = -d
	}
	return d
}

// mathInputs returns n values in [lo, hi) plus the edge cases, in an order
// that puts the edge cases in the vector body, the tail and between.
func mathInputs(lo, hi float64, n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

var specialInputs = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, 1e-30, -1e-30, 0.0625, -0.0625, 0.06249999, 9.1, -9.1,
	88.72283, 88.72284, 88.8, 89, 100, -87.3, -87.4, -100, -103.2, -103.9, -104, -105, -200,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32,
	math.SmallestNonzeroFloat32, 1.17549435e-38,
}

type vecCase struct {
	name     string
	vec, go_ func(o, a []float32)
	ref      func(float64) float64
	maxUlp   int64
	absTol   float64 // accept |got-want| <= absTol as well (cancellation-prone regions)
	lo, hi   float64
}

func vecCases() []vecCase {
	return []vecCase{
		{"exp", expSlice, expSliceGo, math.Exp, 2, 0, -110, 90},
		{"exp-small", expSlice, expSliceGo, math.Exp, 2, 0, -1, 1},
		{"sigmoid", sigmoidSlice, sigmoidSliceGo, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, 3, 0, -100, 100},
		{"tanh", tanhSlice, tanhSliceGo, math.Tanh, 2, 0, -12, 12},
		{"tanh-small", tanhSlice, tanhSliceGo, math.Tanh, 2, 0, -0.8, 0.8},
	}
}

// TestVecMath checks the vector kernels (and their scalar versions) against
// float64 math in ulps over random inputs and every special value, at every
// length modulo 16 so that the two-register body, the one-register step
// and the padded tail all run.
func TestVecMath(t *testing.T) {
	for _, c := range vecCases() {
		for _, impl := range []struct {
			name string
			f    func(o, a []float32)
		}{{"dispatch", c.vec}, {"go", c.go_}} {
			for n := 0; n < 40; n++ {
				x := mathInputs(c.lo, c.hi, n+4000)
				for i, v := range specialInputs {
					x[(i*37)%len(x)] = v
				}
				x = x[:n+4000-n%3]
				o := make([]float32, len(x))
				impl.f(o, x)
				for i, v := range x {
					want := c.ref(float64(v))
					got := o[i]
					if math.IsNaN(want) {
						if !math.IsNaN(float64(got)) {
							t.Fatalf("%s/%s(%v) = %v, want NaN", c.name, impl.name, v, got)
						}
						continue
					}
					if u := ulpDiff(got, want); u > c.maxUlp && math.Abs(float64(got)-want) > c.absTol {
						t.Fatalf("%s/%s(%v) = %v, want %v (%d ulp)", c.name, impl.name, v, got, want, u)
					}
				}
				// in place
				y := append([]float32(nil), x...)
				impl.f(y, y)
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(o[i]) && !(y[i] != y[i] && o[i] != o[i]) {
						t.Fatalf("%s/%s in place [%d]: %v, out of place %v", c.name, impl.name, i, y[i], o[i])
					}
				}
			}
		}
	}
}

func TestExpBiasSum(t *testing.T) {
	for n := 0; n < 40; n++ {
		x := mathInputs(-20, 5, n)
		for _, f := range []func(o, a []float32, b float32) float64{expBiasSum, expBiasSumGo} {
			o := make([]float32, n)
			s := f(o, x, -3.5)
			var want float64
			for i, v := range x {
				e := math.Exp(float64(v - 3.5))
				want += float64(o[i])
				if u := ulpDiff(o[i], e); u > 2 {
					t.Fatalf("expBiasSum n=%d [%d]: %v, want %v", n, i, o[i], e)
				}
			}
			if math.Abs(s-want) > 1e-12*(1+want) {
				t.Fatalf("expBiasSum n=%d: sum %v, want %v", n, s, want)
			}
		}
	}
}

func BenchmarkExp(b *testing.B) {
	x := mathInputs(-10, 10, 4096)
	o := make([]float32, len(x))
	for _, c := range vecCases()[:3] {
		for _, impl := range []struct {
			name string
			f    func(o, a []float32)
		}{{"dispatch", c.vec}, {"go", c.go_}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				for b.Loop() {
					impl.f(o, x)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/elem")
			})
		}
	}
}
