package discrete

import (
	"math"
	"math/rand/v2"
	"testing"
)

func testRand() *rand.Rand {
	return rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
}

// checkPMF draws n samples and checks every value's frequency against pmf
// within 5 standard deviations of a binomial count (plus a small floor).
func checkPMF(t *testing.T, name string, n int, draw func() int64, pmf func(int64) float64, span int64) {
	t.Helper()
	counts := map[int64]int{}
	for i := 0; i < n; i++ {
		counts[draw()]++
	}
	for y := -span; y <= span; y++ {
		p := pmf(y)
		exp := p * float64(n)
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if d := math.Abs(float64(counts[y]) - exp); d > 5*sd+3 {
			t.Errorf("%s: value %d: count %d, expected %.1f (sd %.1f)", name, y, counts[y], exp, sd)
		}
	}
}

func TestBernoulliExp(t *testing.T) {
	r := testRand()
	for _, c := range []struct{ n, d uint64 }{{0, 1}, {1, 1}, {1, 3}, {5, 2}, {7, 7}, {3, 100}, {1 << 40, 1 << 40}} {
		const trials = 200000
		hits := 0
		for i := 0; i < trials; i++ {
			if BernoulliExp(r, c.n, c.d) {
				hits++
			}
		}
		p := math.Exp(-float64(c.n) / float64(c.d))
		sd := math.Sqrt(trials * p * (1 - p))
		if d := math.Abs(float64(hits) - p*trials); d > 5*sd+1 {
			t.Errorf("exp(-%d/%d): %d hits, want %.0f +- %.0f", c.n, c.d, hits, p*trials, sd)
		}
	}
	if BernoulliExp(r, 10000, 1) {
		t.Error("exp(-10000) returned true")
	}
}

func TestLaplacePMF(t *testing.T) {
	r := testRand()
	for _, scale := range []uint64{1, 3, 10} {
		s := float64(scale)
		norm := (1 - math.Exp(-1/s)) / (1 + math.Exp(-1/s))
		pmf := func(y int64) float64 { return norm * math.Exp(-math.Abs(float64(y))/s) }
		checkPMF(t, "laplace", 200000, func() int64 { return Laplace(r, scale) }, pmf, int64(6*scale))
	}
}

func TestGaussianPMF(t *testing.T) {
	r := testRand()
	for _, sigma := range []uint64{1, 2, 5} {
		s := float64(sigma)
		var z float64
		for y := -60 * s; y <= 60*s; y++ {
			z += math.Exp(-y * y / (2 * s * s))
		}
		pmf := func(y int64) float64 { return math.Exp(-float64(y*y)/(2*s*s)) / z }
		checkPMF(t, "gaussian", 200000, func() int64 { return Gaussian(r, sigma) }, pmf, int64(5*sigma))
	}
}

func TestGaussianLargeSigmaMoments(t *testing.T) {
	r := testRand()
	const sigma = MaxGaussianSigma
	const n = 100000
	var sum, sum2 float64
	for i := 0; i < n; i++ {
		y := float64(Gaussian(r, sigma))
		sum += y
		sum2 += y * y
	}
	mean := sum / n
	sd := math.Sqrt(sum2/n - mean*mean)
	if math.Abs(mean) > 5*sigma/math.Sqrt(n) {
		t.Errorf("mean %.1f, want 0 +- %.1f", mean, 5*sigma/math.Sqrt(n))
	}
	if math.Abs(sd/sigma-1) > 0.02 {
		t.Errorf("sd %.1f, want %d", sd, sigma)
	}
}

func BenchmarkGaussian(b *testing.B) {
	r := rand.New(rand.NewChaCha8([32]byte{}))
	for i := 0; i < b.N; i++ {
		Gaussian(r, MaxGaussianSigma)
	}
}

func BenchmarkLaplace(b *testing.B) {
	r := rand.New(rand.NewChaCha8([32]byte{}))
	for i := 0; i < b.N; i++ {
		Laplace(r, 1<<40)
	}
}
