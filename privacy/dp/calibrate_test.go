package dp

import (
	"math"
	"testing"
)

// hockeyStick integrates max(0, p(x) - e^eps q(x)) for p = N(sens, sigma^2)
// and q = N(0, sigma^2) numerically: the definition of the Gaussian
// mechanism's delta at eps, independent of the closed form.
func hockeyStick(eps, sigma, sens float64) float64 {
	lo, hi := -40*sigma, sens+40*sigma
	const n = 2000000
	h := (hi - lo) / n
	var s float64
	for i := 0; i <= n; i++ {
		x := lo + float64(i)*h
		p := math.Exp(-(x-sens)*(x-sens)/(2*sigma*sigma)) / (sigma * math.Sqrt(2*math.Pi))
		q := math.Exp(-x*x/(2*sigma*sigma)) / (sigma * math.Sqrt(2*math.Pi))
		if d := p - math.Exp(eps)*q; d > 0 {
			w := 1.0
			if i == 0 || i == n {
				w = 0.5
			}
			s += w * d * h
		}
	}
	return s
}

func TestGaussianDeltaMatchesDefinition(t *testing.T) {
	for _, c := range []struct{ eps, sigma, sens float64 }{{1, 1, 1}, {0.5, 3, 1}, {2, 0.7, 1}, {1, 4, 2}} {
		got := GaussianDelta(c.eps, c.sigma, c.sens)
		want := hockeyStick(c.eps, c.sigma, c.sens)
		if relErr(got, want) > 1e-5 {
			t.Errorf("%+v: closed form %.10g, integral %.10g", c, got, want)
		}
	}
}

func TestGaussianSigmaAnalytic(t *testing.T) {
	for _, c := range []struct{ eps, delta, sens float64 }{
		{0.1, 1e-5, 1}, {0.5, 1e-5, 1}, {1, 1e-6, 1}, {3, 1e-5, 2}, {10, 1e-10, 1}, {0.01, 0.1, 5},
	} {
		s, err := GaussianSigma(c.eps, c.delta, c.sens)
		if err != nil {
			t.Fatal(err)
		}
		// The defining condition holds with equality.
		if d := GaussianDelta(c.eps, s, c.sens); relErr(d, c.delta) > 1e-9 {
			t.Errorf("%+v: sigma %v gives delta %v", c, s, d)
		}
		// The analytic sigma never exceeds the classic one where that applies.
		if c.eps < 1 {
			cl, err := GaussianSigmaClassic(c.eps, c.delta, c.sens)
			if err != nil || s > cl {
				t.Errorf("%+v: analytic %v > classic %v (%v)", c, s, cl, err)
			}
		}
	}
}

func TestGaussianSigmaClassic(t *testing.T) {
	s, err := GaussianSigmaClassic(0.5, 1e-5, 1)
	if want := math.Sqrt(2*math.Log(1.25e5)) / 0.5; err != nil || s != want {
		t.Errorf("classic %v %v, want %v", s, err, want)
	}
	if _, err := GaussianSigmaClassic(1, 1e-5, 1); err == nil {
		t.Error("classic bound accepted epsilon 1")
	}
}

func TestCalibrationErrors(t *testing.T) {
	bad := []struct{ eps, delta, sens float64 }{{0, 1e-5, 1}, {-1, 1e-5, 1}, {1, 0, 1}, {1, 1, 1}, {1, 1e-5, 0}, {math.Inf(1), 1e-5, 1}, {math.NaN(), 1e-5, 1}}
	for _, c := range bad {
		if _, err := GaussianSigma(c.eps, c.delta, c.sens); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := LaplaceScale(0, 1); err == nil {
		t.Error("laplace eps 0 accepted")
	}
	if b, _ := LaplaceScale(0.5, 2); b != 4 {
		t.Errorf("laplace scale %v", b)
	}
}
