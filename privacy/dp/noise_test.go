package dp

import (
	"math"
	"testing"
)

func testSource() *Source { return NewSourceFromSeed([32]byte{7}) }

func TestGaussianNoiseOnLatticeAndMoments(t *testing.T) {
	src := testSource()
	const n = 100000
	for _, sigma := range []float64{1e-3, 0.7, 3, 1e6} {
		x := make([]float64, n)
		for i := range x {
			x[i] = 0.123456789
		}
		if err := src.AddGaussian(x, sigma); err != nil {
			t.Fatal(err)
		}
		g := Granularity(sigma, true)
		if g > sigma/(1<<13) || g < sigma/(1<<15) {
			t.Errorf("sigma %v: granularity %v outside [sigma/2^15, sigma/2^13]", sigma, g)
		}
		var sum, sum2 float64
		for _, v := range x {
			if r := v / g; r != math.Trunc(r) {
				t.Fatalf("sigma %v: output %v is not a multiple of %v", sigma, v, g)
			}
			d := v - 0.123456789
			sum += d
			sum2 += d * d
		}
		mean := sum / n
		sd := math.Sqrt(sum2/n - mean*mean)
		if math.Abs(mean) > 5*sigma/math.Sqrt(n)+g {
			t.Errorf("sigma %v: mean offset %v", sigma, mean)
		}
		if math.Abs(sd/sigma-1) > 0.02 {
			t.Errorf("sigma %v: sd %v", sigma, sd)
		}
	}
}

func TestLaplaceNoiseMoments(t *testing.T) {
	src := testSource()
	const n = 100000
	for _, b := range []float64{0.01, 1, 250} {
		x := make([]float64, n)
		if err := src.AddLaplace(x, b); err != nil {
			t.Fatal(err)
		}
		g := Granularity(b, false)
		var mad float64
		for _, v := range x {
			if r := v / g; r != math.Trunc(r) {
				t.Fatalf("b %v: output %v is not a multiple of %v", b, v, g)
			}
			mad += math.Abs(v)
		}
		// E|X| = b for the Laplace distribution.
		if mad /= n; math.Abs(mad/b-1) > 0.02 {
			t.Errorf("b %v: mean absolute value %v", b, mad)
		}
	}
}

// The output must not depend on input bits below the granularity: with the
// same random stream, inputs that round to the same lattice point give
// bit-identical outputs. This is what defeats Mironov's floating-point attack.
func TestNoiseIgnoresLowBits(t *testing.T) {
	const sigma = 1.0
	g := Granularity(sigma, true)
	a := []float64{0.3, -2.5, 1e-9}
	b := []float64{0.3 + g/8, -2.5 - g/7, 1e-9 + g/5}
	sa, sb := testSource(), testSource()
	if err := sa.AddGaussian(a, sigma); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddGaussian(b, sigma); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("element %d: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestNoise32AndErrors(t *testing.T) {
	src := testSource()
	x := []float32{1, 2, float32(math.NaN())}
	if err := src.AddGaussian32(x, 0.5); err != nil {
		t.Fatal(err)
	}
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Errorf("non-finite output %v", v)
		}
	}
	if err := src.AddLaplace32(x, 0.5); err != nil {
		t.Fatal(err)
	}
	for _, s := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if src.AddGaussian(nil, s) == nil || src.AddLaplace(nil, s) == nil {
			t.Errorf("scale %v accepted", s)
		}
	}
	if NewSource() == nil {
		t.Fatal("NewSource returned nil")
	}
}

func BenchmarkGaussianNoise(b *testing.B) {
	src := testSource()
	x := make([]float32, 1024)
	b.SetBytes(4 * 1024)
	for i := 0; i < b.N; i++ {
		_ = src.AddGaussian32(x, 1)
	}
}
