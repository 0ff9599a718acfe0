package dp

import (
	"fmt"
	"math"
)

// This file ports the RDP bound of the Gaussian mechanism on a sample drawn
// uniformly without replacement, of fixed size m = q*n, under the
// replace-one neighbouring relation (n public): Wang, Balle and
// Kasiviswanathan, "Subsampled Renyi Differential Privacy and Analytical
// Moments Accountant" (AISTATS 2019, arXiv:1808.00087), Theorem 27, as
// dp_accounting computes it (rdp_privacy_accountant.py:
// _compute_rdp_sample_wor_gaussian_scalar, _compute_rdp_sample_wor_gaussian_int,
// _get_forward_diffs, _stable_inplace_diff_in_log), function by function.

// logSubSign returns log|e^x - e^y| and whether e^x >= e^y.
func logSubSign(x, y float64) (bool, float64) {
	switch {
	case x > y:
		return true, x + math.Log1p(-math.Exp(y-x))
	case x < y:
		return false, y + math.Log1p(-math.Exp(x-y))
	}
	return true, math.Inf(-1)
}

// diffInLog replaces vec[0:n] (log magnitudes with signs) by the forward
// differences vec[j+1] - vec[j].
func diffInLog(vec []float64, signs []bool, n int) {
	for j := 0; j < n; j++ {
		if signs[j] == signs[j+1] {
			signs[j], vec[j] = logSubSign(vec[j+1], vec[j])
			if !signs[j+1] {
				signs[j] = !signs[j]
			}
		} else {
			vec[j] = logAdd(vec[j], vec[j+1])
			signs[j] = signs[j+1]
		}
	}
}

// forwardDiffs returns the log magnitudes of the forward differences of
// exp(fun) used by Theorem 27, deltas[0..n+1].
func forwardDiffs(fun func(float64) float64, n int) []float64 {
	vec := make([]float64, n+3)
	signs := make([]bool, n+3)
	for i := range signs {
		signs[i] = true
	}
	for i := 1; i < n+3; i++ {
		vec[i] = fun(float64(i - 1))
	}
	deltas := make([]float64, n+2)
	for i := range deltas {
		diffInLog(vec, signs, n+2-i)
		deltas[i] = vec[0]
	}
	return deltas
}

// logAWOR is the log of Theorem 27's moment bound at integer alpha >= 2,
// 0 < q < 1: exact up to order 256, with the simpler per-term bound beyond.
func logAWOR(q, sigma float64, alpha int) float64 {
	const maxAlpha = 256
	if alpha == 1 {
		return 0
	}
	cgf := func(x float64) float64 { return x * (x + 1) / (2 * sigma * sigma) } // x * rdp(x+1)
	rdp := func(x float64) float64 { return x / (2 * sigma * sigma) }
	a, lq := float64(alpha), math.Log(q)
	logF2m1 := rdp(2) + math.Log1p(-math.Exp(-rdp(2)))
	logA := logAdd(0, 2*lq+logComb(a, 2)+math.Min(math.Log(4)+logF2m1, rdp(2)+math.Log(2)))
	var deltas []float64
	if alpha <= maxAlpha {
		deltas = forwardDiffs(cgf, alpha)
	}
	for i := 3; i <= alpha; i++ {
		var s float64
		if deltas != nil {
			lo, hi := deltas[2*(i/2)-1], deltas[2*((i+1)/2)-1]
			s = math.Min(math.Log(4)+(lo+hi)/2, math.Log(2)+cgf(float64(i-1)))
		} else {
			s = math.Log(2) + cgf(float64(i-1))
		}
		logA = logAdd(logA, s+float64(i)*lq+logComb(a, float64(i)))
	}
	return logA
}

// RDPSampledWithoutReplacementGaussian returns the Renyi DP at order alpha
// of one release of the Gaussian mechanism with noise multiplier sigma on a
// sample of fixed size q*n drawn uniformly without replacement from n
// records, under the replace-one relation (Wang, Balle and Kasiviswanathan
// 2019, Theorem 27; the noise multiplier is relative to the replace-one
// sensitivity). A fractional order interpolates the bounds of its
// neighbouring integers (their Corollary 10). q = 1 is the plain Gaussian
// mechanism. The result may be +Inf.
func RDPSampledWithoutReplacementGaussian(q, sigma, alpha float64) (float64, error) {
	switch {
	case !(q >= 0 && q <= 1):
		return 0, fmt.Errorf("%w: sampling rate q must be in [0,1], got %v", ErrParam, q)
	case !(sigma >= 0):
		return 0, fmt.Errorf("%w: noise multiplier must be >= 0, got %v", ErrParam, sigma)
	case !(alpha >= 1), alpha == 1 && q > 0 && q < 1:
		return 0, fmt.Errorf("%w: RDP order must be > 1 (or exactly 1 without subsampling), got %v", ErrParam, alpha)
	}
	switch {
	case q == 0:
		return 0, nil
	case math.IsInf(alpha, 1) || sigma == 0:
		return math.Inf(1), nil
	case q == 1:
		return alpha / (2 * sigma * sigma), nil
	case alpha == math.Trunc(alpha) && alpha <= 1<<20:
		return logAWOR(q, sigma, int(alpha)) / (alpha - 1), nil
	case alpha > 1<<20:
		return 0, fmt.Errorf("%w: RDP order %v too large for sampling without replacement", ErrParam, alpha)
	}
	f := math.Floor(alpha)
	x, y := logAWOR(q, sigma, int(f)), logAWOR(q, sigma, int(f)+1)
	t := alpha - f
	return ((1-t)*x + t*y) / (alpha - 1), nil
}

// SampledWithoutReplacementGaussianRDP returns the per-release RDP at each
// order of RDPSampledWithoutReplacementGaussian.
func SampledWithoutReplacementGaussianRDP(orders []float64, q, sigma float64) ([]float64, error) {
	out := make([]float64, len(orders))
	for i, o := range orders {
		r, err := RDPSampledWithoutReplacementGaussian(q, sigma, o)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// ComposeSampledWithoutReplacementGaussian adds steps releases of the
// Gaussian mechanism with noise multiplier sigma, each on a fixed-size
// sample drawn without replacement at rate q (RDPSampledWithoutReplacementGaussian).
func (a *Accountant) ComposeSampledWithoutReplacementGaussian(q, sigma float64, steps int) error {
	if steps < 0 {
		return fmt.Errorf("%w: steps must be >= 0, got %d", ErrParam, steps)
	}
	add, err := SampledWithoutReplacementGaussianRDP(a.orders, q, sigma)
	if err != nil {
		return err
	}
	for i := range a.rdp {
		a.rdp[i] += float64(steps) * add[i]
	}
	return nil
}
