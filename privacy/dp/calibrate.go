package dp

import (
	"fmt"
	"math"
)

// logPhi returns log(Phi(x)) for the standard normal CDF, accurate in the
// far left tail (Phi(x) = erfc(-x/sqrt2)/2).
func logPhi(x float64) float64 {
	return math.Log(0.5) + logErfc(-x/math.Sqrt2)
}

// GaussianDelta returns the exact delta of the Gaussian mechanism with noise
// standard deviation sigma and L2 sensitivity sens at epsilon (Balle and
// Wang, "Improving the Gaussian Mechanism for Differential Privacy: Analytical
// Calibration and Optimal Denoising", ICML 2018, Theorem 8):
//
//	delta = Phi(sens/(2 sigma) - eps sigma/sens) - e^eps Phi(-sens/(2 sigma) - eps sigma/sens)
//
// computed in log space so that small deltas keep their relative precision.
func GaussianDelta(eps, sigma, sens float64) float64 {
	a := sens/(2*sigma) - eps*sigma/sens
	b := -sens/(2*sigma) - eps*sigma/sens
	la, lb := logPhi(a), logPhi(b)
	d := math.Exp(la) * -math.Expm1(eps+lb-la)
	return math.Max(d, 0)
}

func checkEpsDelta(eps, delta, sens float64) error {
	switch {
	case !(eps > 0) || math.IsInf(eps, 0):
		return fmt.Errorf("%w: epsilon must be positive and finite, got %v", ErrParam, eps)
	case !(delta > 0 && delta < 1):
		return fmt.Errorf("%w: delta must be in (0,1), got %v", ErrParam, delta)
	case !(sens > 0) || math.IsInf(sens, 0):
		return fmt.Errorf("%w: sensitivity must be positive and finite, got %v", ErrParam, sens)
	}
	return nil
}

// maxBisect bounds every bisection in this package.
const maxBisect = 4096

// GaussianSigma returns the smallest noise standard deviation for which the
// Gaussian mechanism with L2 sensitivity sens is (eps, delta)-DP: the
// analytic Gaussian mechanism of Balle and Wang (2018), solved by bisection
// on the exact condition GaussianDelta(eps, sigma, sens) = delta to relative
// precision 1e-12. Valid for every eps > 0; it never exceeds the classic
// bound.
func GaussianSigma(eps, delta, sens float64) (float64, error) {
	if err := checkEpsDelta(eps, delta, sens); err != nil {
		return 0, err
	}
	// GaussianDelta decreases in sigma; bracket then bisect in log sigma.
	lo, hi := sens, sens
	for GaussianDelta(eps, lo, sens) <= delta {
		lo /= 2
		if lo < 1e-300 {
			return lo, nil
		}
	}
	for GaussianDelta(eps, hi, sens) > delta {
		hi *= 2
		if hi > 1e300 {
			return 0, fmt.Errorf("%w: no finite sigma for epsilon %v delta %v", ErrParam, eps, delta)
		}
	}
	// At most ~2100 halvings separate [1e-300, 1e300] from relative width
	// 1e-13; the cap makes the bound explicit rather than a consequence of
	// floating-point progress.
	for it := 0; hi-lo > 1e-13*hi && it < maxBisect; it++ {
		mid := lo + (hi-lo)/2
		if GaussianDelta(eps, mid, sens) > delta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// GaussianSigmaClassic returns the classic calibration
// sigma = sens*sqrt(2 ln(1.25/delta))/eps (Dwork and Roth, "The Algorithmic
// Foundations of Differential Privacy", Theorem A.1), which is only a
// theorem for eps < 1; larger eps is refused.
func GaussianSigmaClassic(eps, delta, sens float64) (float64, error) {
	if err := checkEpsDelta(eps, delta, sens); err != nil {
		return 0, err
	}
	if eps >= 1 {
		return 0, fmt.Errorf("%w: the classic Gaussian bound holds only for epsilon < 1 (got %v); use the analytic calibration", ErrParam, eps)
	}
	return sens * math.Sqrt(2*math.Log(1.25/delta)) / eps, nil
}

// LaplaceScale returns the Laplace scale b = sens/eps for L1 sensitivity
// sens and pure eps-DP.
func LaplaceScale(eps, sens float64) (float64, error) {
	if !(eps > 0) || math.IsInf(eps, 0) {
		return 0, fmt.Errorf("%w: epsilon must be positive and finite, got %v", ErrParam, eps)
	}
	if !(sens > 0) || math.IsInf(sens, 0) {
		return 0, fmt.Errorf("%w: sensitivity must be positive and finite, got %v", ErrParam, sens)
	}
	return sens / eps, nil
}
