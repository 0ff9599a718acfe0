package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestKernels: every kernel agrees with its Go loop for lengths around the
// 8-wide blocks, in place and out of place, and keeps NaN where it should.
func TestKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type kernel struct {
		name string
		fast func(dst, x, y []float32)
		ref  func(dst, x, y []float32)
	}
	ks := []kernel{
		{"Axpy", func(d, x, _ []float32) { Axpy(d, x, 0.7) }, func(d, x, _ []float32) { axpyGo(d, x, 0.7) }},
		{"Affine", func(d, x, _ []float32) { Affine(d, x, 1.5, -0.25) }, func(d, x, _ []float32) { affineGo(d, x, 1.5, -0.25) }},
		{"Clamp", func(d, x, _ []float32) { Clamp(d, x, -0.5, 0.5) }, func(d, x, _ []float32) { clampGo(d, x, -0.5, 0.5) }},
		{"Mul", Mul, mulGo},
		{"Add", Add, addGo},
		{"MulAdd", MulAdd, mulAddGo},
		{"Max", Max, maxGo},
		{"Max/swapped", func(d, x, y []float32) { Max(d, y, x) }, func(d, x, y []float32) { maxGo(d, y, x) }},
		{"HardSwish", func(d, x, _ []float32) { HardSwish(d, x) }, func(d, x, _ []float32) { hardSwishGo(d, x) }},
		{"LeakyMax", func(d, x, _ []float32) { LeakyMax(d, x, 0.3, 0.2, -0.5) }, func(d, x, _ []float32) {
			// the unfused steps: bias, LeakyRelu, Max with a constant
			affineGo(d, x, 1, 0.3)
			leakyGo(d, d, 0.2)
			for i, v := range d {
				if v < -0.5 {
					d[i] = -0.5
				}
			}
		}},
		{"LeakyRelu", func(d, x, _ []float32) { LeakyRelu(d, x, 0.2) }, func(d, x, _ []float32) { leakyGo(d, x, 0.2) }},
		{"LeakyRelu/a>1", func(d, x, _ []float32) { LeakyRelu(d, x, 3) }, func(d, x, _ []float32) { leakyGo(d, x, 3) }},
	}
	for _, k := range ks {
		for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 64, 67} {
			x, y := make([]float32, n), make([]float32, n)
			for i := range x {
				x[i], y[i] = float32(rng.NormFloat64()*4), float32(rng.NormFloat64())
			}
			if n > 3 {
				x[3] = float32(math.NaN())
			}
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				a[i] = float32(i)
				b[i] = float32(i)
			}
			k.fast(a, x, y)
			k.ref(b, x, y)
			for i := range a {
				if !(a[i] == b[i] || math.Abs(float64(a[i]-b[i])) <= 1e-6*math.Abs(float64(b[i])) || (a[i] != a[i] && b[i] != b[i])) {
					t.Fatalf("%s n=%d: [%d] = %v, want %v", k.name, n, i, a[i], b[i])
				}
			}
			// in place: dst is x
			c := append([]float32(nil), x...)
			k.fast(c, c, y)
			for i := range c {
				if !(c[i] == a[i] || (c[i] != c[i] && a[i] != a[i])) && k.name != "Axpy" && k.name != "MulAdd" { // those accumulate into dst
					t.Fatalf("%s in place n=%d: [%d] = %v, want %v", k.name, n, i, c[i], a[i])
				}
			}
		}
	}
}

func TestDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 100, 384} {
		x, y := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], y[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		var want float64
		for i := range x {
			want += float64(x[i]) * float64(y[i])
		}
		if got := Dot(x, y); math.Abs(float64(got)-want) > 1e-4*(1+math.Abs(want)) {
			t.Fatalf("n=%d: %v, want %v", n, got, want)
		}
	}
}

func TestSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 100, 1000} {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			want += float64(x[i])
		}
		if got := Sum(x); math.Abs(float64(got)-want) > 1e-4*(1+math.Abs(want)) {
			t.Fatalf("n=%d: %v, want %v", n, got, want)
		}
	}
}

func TestDot4(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{1, 7, 8, 9, 33, 512} {
		for _, ld := range []int{n, n + 3} {
			x, y := make([]float32, n), make([]float32, 3*ld+n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range y {
				y[i] = float32(rng.NormFloat64())
			}
			var got [4]float32
			Dot4(&got, x, y, ld)
			for j := range got {
				want := Dot(x, y[j*ld:j*ld+n])
				if math.Abs(float64(got[j]-want)) > 1e-4*(1+math.Abs(float64(want))) {
					t.Fatalf("n=%d ld=%d: [%d] = %v, want %v", n, ld, j, got[j], want)
				}
			}
		}
	}
}

func TestDot4x2(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, n := range []int{1, 7, 8, 9, 33, 384} {
		for _, ld := range []int{n, n + 3} {
			for _, ldx := range []int{n, n + 5} {
				x, y := make([]float32, ldx+n), make([]float32, 3*ld+n)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				for i := range y {
					y[i] = float32(rng.NormFloat64())
				}
				var got [8]float32
				Dot4x2(&got, x, ldx, y, ld)
				for r := 0; r < 2; r++ {
					for j := 0; j < 4; j++ {
						want := Dot(x[r*ldx:r*ldx+n], y[j*ld:j*ld+n])
						if g := got[r*4+j]; math.Abs(float64(g-want)) > 1e-4*(1+math.Abs(float64(want))) {
							t.Fatalf("n=%d ld=%d ldx=%d: [%d][%d] = %v, want %v", n, ld, ldx, r, j, g, want)
						}
					}
				}
			}
		}
	}
}

func TestGather2(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 40} {
		for _, extra := range []int{-1, 0, 1} {
			if 2*n+extra < 0 || (n > 0 && 2*n+extra < 2*n-1) {
				continue
			}
			src := make([]float32, max(0, 2*n+extra))
			for i := range src {
				src[i] = float32(i)
			}
			dst := make([]float32, n)
			Gather2(dst, src)
			for i, v := range dst {
				if v != float32(2*i) {
					t.Fatalf("n=%d extra=%d: [%d] = %v", n, extra, i, v)
				}
			}
		}
	}
}

// TestTaps: the register-summed taps agree with the Go loop across the 64-
// and 8-wide blocks and the scalar tail, for 1 to 25 taps.
func TestTaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := make([]float32, 600)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	for _, n := range []int{0, 1, 7, 8, 9, 16, 24, 32, 40, 56, 63, 64, 65, 100, 130, 200} {
		for _, nt := range []int{1, 2, 9, 25} {
			offs, wts := make([]int, nt), make([]float32, nt)
			for i := range offs {
				offs[i] = rng.IntN(len(src) - n + 1)
				wts[i] = float32(rng.NormFloat64())
			}
			got, want := make([]float32, n), make([]float32, n)
			for i := range got {
				got[i] = float32(math.NaN()) // overwritten
			}
			Taps(got, src, offs, wts)
			tapsGo(want, src, offs, wts, 0)
			for i := range got {
				var mag float64
				for t, o := range offs {
					mag += math.Abs(float64(wts[t] * src[o+i]))
				}
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*(1+mag)) {
					t.Fatalf("n=%d taps=%d: [%d] = %v, want %v", n, nt, i, got[i], want[i])
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an offset past src did not panic")
		}
	}()
	Taps(make([]float32, 8), src, []int{len(src) - 4}, []float32{1})
}

func TestTranspose(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {3, 5}, {8, 8}, {16, 24}, {9, 17}, {96, 64}, {200, 4}, {4, 200}, {13, 8}} {
		rows, cols := sz[0], sz[1]
		src := make([]float32, rows*cols)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, rows*cols)
		Transpose(dst, src, rows, cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if dst[c*rows+r] != src[r*cols+c] {
					t.Fatalf("%dx%d: [%d,%d] = %v, want %v", rows, cols, c, r, dst[c*rows+r], src[r*cols+c])
				}
			}
		}
	}
}

// TestTransposeLd: the strided transpose against its definition for
// blocks around the 8x8 tiles, with strides past the block, leaving the
// rest of dst alone; a block outside its slices panics.
func TestTransposeLd(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, rows := range []int{1, 7, 8, 9, 16, 23} {
		for _, cols := range []int{1, 5, 8, 16, 17} {
			lds, ldd := cols+3, rows+5
			src := make([]float32, (rows-1)*lds+cols)
			for i := range src {
				src[i] = float32(rng.NormFloat64())
			}
			dst := make([]float32, (cols-1)*ldd+rows)
			for i := range dst {
				dst[i] = -1000
			}
			TransposeLd(dst, src, rows, cols, lds, ldd)
			for i, v := range dst {
				c, r := i/ldd, i%ldd
				want := float32(-1000)
				if r < rows {
					want = src[r*lds+c]
				}
				if v != want {
					t.Fatalf("%dx%d: dst[%d] = %v, want %v", rows, cols, i, v, want)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a block past src did not panic")
		}
	}()
	TransposeLd(make([]float32, 64), make([]float32, 63), 8, 8, 8, 8)
}
