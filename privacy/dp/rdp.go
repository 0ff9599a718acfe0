package dp

import (
	"fmt"
	"math"
	"slices"
)

// This file ports the Renyi-DP analysis of the Poisson-subsampled Gaussian
// mechanism from TF Privacy / dp_accounting
// (tensorflow_privacy/privacy/analysis/rdp_privacy_accountant.py, identical in
// google/differential-privacy python/dp_accounting/rdp/rdp_privacy_accountant.py)
// and Opacus (opacus/accountants/analysis/rdp.py), function by function:
// logAdd/_log_add, logSub/_log_sub, logAInt/_compute_log_a_int,
// logAFrac/_compute_log_a_frac, logErfc/_log_erfc, epsilonFromRDP/_compute_epsilon,
// deltaFromRDP/_compute_delta. The reference for the analysis is Mironov,
// Talwar and Zhang, "Renyi Differential Privacy of the Sampled Gaussian
// Mechanism" (arXiv:1908.10530), Section 3.3.

// DefaultOrders are the RDP orders the accountant uses when none are given:
// the grid of Opacus's RDPAccountant.DEFAULT_ALPHAS (1.1, 1.2, ..., 10.9 and
// the integers 12..63), extended with 128, 256, 512 and 1024 (the large
// orders of dp_accounting's default) so that small epsilons (strong noise)
// are not limited by the grid. Because the Opacus grid is a subset, an
// epsilon computed here is never larger than Opacus's, and equal whenever
// the optimal order is below 64.
var DefaultOrders = func() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512, 1024)
}()

func logAdd(x, y float64) float64 {
	a, b := math.Min(x, y), math.Max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

func logSub(x, y float64) (float64, error) {
	if x < y {
		return 0, fmt.Errorf("dp: log-space subtraction would be negative")
	}
	if math.IsInf(y, -1) {
		return x, nil
	}
	if x == y {
		return math.Inf(-1), nil
	}
	d := math.Expm1(x - y)
	if math.IsInf(d, 1) {
		return x, nil // Python's OverflowError branch
	}
	return math.Log(d) + y, nil
}

func logComb(n, k float64) float64 {
	a, _ := math.Lgamma(n + 1)
	b, _ := math.Lgamma(k + 1)
	c, _ := math.Lgamma(n - k + 1)
	return a - b - c
}

// logErfc computes log(erfc(x)) accurately for large x. The reference uses
// log(2) + scipy.special.log_ndtr(-x*sqrt(2)); math.Erfc is accurate to a few
// ulps wherever it does not underflow, and beyond that the asymptotic
// (Laurent) series the reference gives as its fallback is used, which is
// accurate to double precision there (x > 25).
func logErfc(x float64) float64 {
	if x < 25 {
		return math.Log(math.Erfc(x))
	}
	return -math.Log(math.Pi)/2 - math.Log(x) - x*x - .5*math.Pow(x, -2) +
		.625*math.Pow(x, -4) - 37./24.*math.Pow(x, -6) + 353./64.*math.Pow(x, -8)
}

// logAInt computes log(A_alpha) for integer alpha, 0 < q < 1.
func logAInt(q, sigma float64, alpha int) float64 {
	logA := math.Inf(-1)
	lq, l1q := math.Log(q), math.Log1p(-q)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		c := logComb(float64(alpha), fi) + fi*lq + float64(alpha-i)*l1q
		s := c + (fi*fi-fi)/(2*sigma*sigma)
		logA = logAdd(logA, s)
	}
	return logA
}

// logAFrac computes log(A_alpha) for fractional alpha, 0 < q < 1: the two
// parts of A_alpha, integrals over (-inf, z0] and [z0, inf), are summed as
// series until the terms fall below e^-30.
func logAFrac(q, sigma, alpha float64) (float64, error) {
	logA0, logA1 := math.Inf(-1), math.Inf(-1)
	z0 := sigma*sigma*math.Log(1/q-1) + .5
	lq, l1q := math.Log(q), math.Log1p(-q)
	// The generalized binomial coefficient binom(alpha, i) in log magnitude
	// and sign, updated by the ratio (alpha-i+1)/i.
	logCoef, positive := 0.0, true
	for i := 0; ; i++ {
		fi := float64(i)
		if i > 0 {
			r := (alpha - fi + 1) / fi
			if r < 0 {
				positive = !positive
			}
			logCoef += math.Log(math.Abs(r))
		}
		j := alpha - fi
		logT0 := logCoef + fi*lq + j*l1q
		logT1 := logCoef + j*lq + fi*l1q
		logE0 := math.Log(.5) + logErfc((fi-z0)/(math.Sqrt2*sigma))
		logE1 := math.Log(.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		logS0 := logT0 + (fi*fi-fi)/(2*sigma*sigma) + logE0
		logS1 := logT1 + (j*j-j)/(2*sigma*sigma) + logE1
		if positive {
			logA0 = logAdd(logA0, logS0)
			logA1 = logAdd(logA1, logS1)
		} else {
			var err error
			if logA0, err = logSub(logA0, logS0); err != nil {
				return 0, err
			}
			if logA1, err = logSub(logA1, logS1); err != nil {
				return 0, err
			}
		}
		if math.Max(logS0, logS1) < -30 {
			break
		}
		if i > 1<<20 {
			return 0, fmt.Errorf("dp: RDP series for q=%v sigma=%v alpha=%v did not converge", q, sigma, alpha)
		}
	}
	return logAdd(logA0, logA1), nil
}

// RDPSubsampledGaussian returns the Renyi DP at order alpha of one step of
// the Poisson-subsampled Gaussian mechanism with sampling rate q and noise
// multiplier sigma (noise standard deviation / L2 sensitivity). q = 1 is the
// plain Gaussian mechanism, alpha/(2 sigma^2). The result may be +Inf.
func RDPSubsampledGaussian(q, sigma, alpha float64) (float64, error) {
	switch {
	case !(q >= 0 && q <= 1):
		return 0, fmt.Errorf("%w: sampling rate q must be in [0,1], got %v", ErrParam, q)
	case !(sigma >= 0) || math.IsNaN(sigma):
		return 0, fmt.Errorf("%w: noise multiplier must be >= 0, got %v", ErrParam, sigma)
	case !(alpha >= 1), alpha == 1 && q > 0 && q < 1:
		return 0, fmt.Errorf("%w: RDP order must be > 1 (or exactly 1 without subsampling), got %v", ErrParam, alpha)
	}
	if math.IsInf(alpha, 1) || sigma == 0 {
		return math.Inf(1), nil
	}
	if q == 0 {
		return 0, nil
	}
	if q == 1 {
		return alpha / (2 * sigma * sigma), nil
	}
	if alpha == math.Trunc(alpha) && alpha <= 1<<20 {
		return logAInt(q, sigma, int(alpha)) / (alpha - 1), nil
	}
	la, err := logAFrac(q, sigma, alpha)
	if err != nil {
		return 0, err
	}
	return la / (alpha - 1), nil
}

// EpsilonFromRDP converts RDP guarantees rdp[i] at orders[i] to an
// (epsilon, delta)-DP guarantee and returns epsilon with the order that
// attains it.
//
// The default (classic=false) is the improved conversion of Balle, Barthe,
// Gaboardi, Hsu and Sato, "Hypothesis Testing Interpretations and Renyi
// Differential Privacy" (AISTATS 2020; arXiv:1905.09982 Theorem 21, as
// arXiv:2004.00010 Proposition 12 states it):
//
//	eps = rdp + log1p(-1/alpha) - log(delta*alpha)/(alpha-1)
//
// exactly as dp_accounting's _compute_epsilon computes it (orders below 1.01
// are skipped as numerically unstable, and an order whose RDP is so small
// that delta >= sqrt(1-exp(-rdp)) gives epsilon 0). Opacus's
// get_privacy_spent evaluates the same expression.
//
// classic=true is Mironov's original conversion (Renyi Differential Privacy,
// CSF 2017, Proposition 3): eps = rdp - log(delta)/(alpha-1).
func EpsilonFromRDP(orders, rdp []float64, delta float64, classic bool) (eps, order float64, err error) {
	if len(orders) != len(rdp) || len(orders) == 0 {
		return 0, 0, fmt.Errorf("%w: %d orders but %d RDP values", ErrParam, len(orders), len(rdp))
	}
	if !(delta >= 0 && delta < 1) {
		return 0, 0, fmt.Errorf("%w: delta must be in [0,1), got %v", ErrParam, delta)
	}
	best, bestOrder := math.Inf(1), math.NaN()
	for i, a := range orders {
		r := rdp[i]
		if !(a >= 1) {
			return 0, 0, fmt.Errorf("%w: RDP order must be at least 1, got %v", ErrParam, a)
		}
		if !(r >= 0) {
			return 0, 0, fmt.Errorf("%w: RDP must be >= 0, got %v at order %v", ErrParam, r, a)
		}
		var e float64
		switch {
		case delta == 0:
			e = math.Inf(1)
			if r == 0 {
				e = 0
			}
		case classic:
			if a > 1 {
				e = r - math.Log(delta)/(a-1)
			} else {
				e = math.Inf(1)
			}
		case delta*delta+math.Expm1(-r) > 0:
			e = 0
		case a > 1.01:
			e = r + math.Log1p(-1/a) - math.Log(delta*a)/(a-1)
		default:
			e = math.Inf(1)
		}
		if e < best || math.IsNaN(bestOrder) && !math.IsNaN(e) {
			best, bestOrder = e, a
		}
	}
	return math.Max(0, best), bestOrder, nil
}

// DeltaFromRDP converts RDP guarantees to the smallest delta for which the
// mechanism is (eps, delta)-DP, by the same improved conversion
// (dp_accounting's _compute_delta), including the KL-divergence bound
// delta <= sqrt(1-exp(-rdp)).
func DeltaFromRDP(orders, rdp []float64, eps float64) (float64, error) {
	if len(orders) != len(rdp) || len(orders) == 0 {
		return 0, fmt.Errorf("%w: %d orders but %d RDP values", ErrParam, len(orders), len(rdp))
	}
	if !(eps >= 0) {
		return 0, fmt.Errorf("%w: epsilon must be >= 0, got %v", ErrParam, eps)
	}
	minLog := math.Inf(1)
	for i, a := range orders {
		r := rdp[i]
		if !(a >= 1) || !(r >= 0) {
			return 0, fmt.Errorf("%w: bad order %v or RDP %v", ErrParam, a, r)
		}
		ld := math.Inf(-1)
		if r != 0 {
			ld = 0.5 * math.Log1p(-math.Exp(-r))
		}
		if a > 1.01 {
			// A NaN bound (inf - inf) is ignored, as Python's min does.
			if b := (a-1)*(r-eps+math.Log1p(-1/a)) - math.Log(a); b < ld {
				ld = b
			}
		}
		if ld < minLog {
			minLog = ld
		}
	}
	return math.Min(math.Exp(minLog), 1), nil
}

// Accountant accumulates the RDP of a sequence of (subsampled) Gaussian
// releases over a fixed set of orders. RDP composes by addition, so the
// accountant is a vector of sums. The zero value is not usable.
type Accountant struct {
	orders []float64
	rdp    []float64
}

// NewAccountant returns an accountant over orders (DefaultOrders when
// empty). Orders must be > 1 and are kept in the given sequence.
func NewAccountant(orders []float64) (*Accountant, error) {
	if len(orders) == 0 {
		orders = DefaultOrders
	}
	for _, a := range orders {
		if !(a > 1) {
			return nil, fmt.Errorf("%w: RDP order must be > 1, got %v", ErrParam, a)
		}
	}
	return &Accountant{orders: slices.Clone(orders), rdp: make([]float64, len(orders))}, nil
}

// ComposeSubsampledGaussian adds steps releases of the Gaussian mechanism
// with noise multiplier sigma, each on a Poisson sample of rate q (q = 1: no
// subsampling). In DP-SGD q is batch/examples; in client-level DP-FedAvg it
// is the fraction of clients sampled per round.
func (a *Accountant) ComposeSubsampledGaussian(q, sigma float64, steps int) error {
	if steps < 0 {
		return fmt.Errorf("%w: steps must be >= 0, got %d", ErrParam, steps)
	}
	add, err := SubsampledGaussianRDP(a.orders, q, sigma)
	if err != nil {
		return err
	}
	for i := range a.rdp {
		a.rdp[i] += float64(steps) * add[i]
	}
	return nil
}

// SubsampledGaussianRDP returns the per-step RDP at each order.
func SubsampledGaussianRDP(orders []float64, q, sigma float64) ([]float64, error) {
	out := make([]float64, len(orders))
	for i, o := range orders {
		r, err := RDPSubsampledGaussian(q, sigma, o)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// AddRDP adds an RDP curve computed elsewhere (over the same orders).
func (a *Accountant) AddRDP(rdp []float64) error {
	if len(rdp) != len(a.rdp) {
		return fmt.Errorf("%w: %d RDP values for %d orders", ErrParam, len(rdp), len(a.orders))
	}
	for _, r := range rdp {
		if !(r >= 0) {
			return fmt.Errorf("%w: RDP must be >= 0, got %v", ErrParam, r)
		}
	}
	for i, r := range rdp {
		a.rdp[i] += r
	}
	return nil
}

// Orders returns a copy of the accountant's orders.
func (a *Accountant) Orders() []float64 { return slices.Clone(a.orders) }

// RDP returns a copy of the accumulated RDP values, one per order.
func (a *Accountant) RDP() []float64 { return slices.Clone(a.rdp) }

// Clone returns an independent copy.
func (a *Accountant) Clone() *Accountant {
	return &Accountant{orders: slices.Clone(a.orders), rdp: slices.Clone(a.rdp)}
}

// Epsilon returns the epsilon of the composition so far at delta with the
// improved conversion, and the optimal order.
func (a *Accountant) Epsilon(delta float64) (eps, order float64, err error) {
	return EpsilonFromRDP(a.orders, a.rdp, delta, false)
}

// EpsilonClassic is Epsilon with the classic conversion.
func (a *Accountant) EpsilonClassic(delta float64) (eps, order float64, err error) {
	return EpsilonFromRDP(a.orders, a.rdp, delta, true)
}

// Delta returns the smallest delta at which the composition is
// (eps, delta)-DP.
func (a *Accountant) Delta(eps float64) (float64, error) {
	return DeltaFromRDP(a.orders, a.rdp, eps)
}

// NoiseMultiplier returns the smallest noise multiplier (to relative
// precision 1e-9) for which steps releases of the Gaussian mechanism on
// Poisson samples of rate q are (eps, delta)-DP by the improved conversion
// over orders (DefaultOrders when empty). The returned multiplier always
// meets the target (it is the upper end of the final bisection bracket).
func NoiseMultiplier(eps, delta, q float64, steps int, orders []float64) (float64, error) {
	return noiseMultiplier(eps, delta, q, steps, orders, SubsampledGaussianRDP)
}

// NoiseMultiplierWithoutReplacement is NoiseMultiplier for releases on
// fixed-size samples drawn without replacement at rate q
// (RDPSampledWithoutReplacementGaussian).
func NoiseMultiplierWithoutReplacement(eps, delta, q float64, steps int, orders []float64) (float64, error) {
	return noiseMultiplier(eps, delta, q, steps, orders, SampledWithoutReplacementGaussianRDP)
}

func noiseMultiplier(eps, delta, q float64, steps int, orders []float64,
	curve func(orders []float64, q, sigma float64) ([]float64, error)) (float64, error) {
	if !(eps > 0) || math.IsInf(eps, 0) {
		return 0, fmt.Errorf("%w: epsilon must be positive and finite, got %v", ErrParam, eps)
	}
	if !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("%w: delta must be in (0,1), got %v", ErrParam, delta)
	}
	if steps <= 0 {
		return 0, fmt.Errorf("%w: steps must be positive, got %d", ErrParam, steps)
	}
	if len(orders) == 0 {
		orders = DefaultOrders
	}
	epsAt := func(sigma float64) (float64, error) {
		r, err := curve(orders, q, sigma)
		if err != nil {
			return 0, err
		}
		for i := range r {
			r[i] *= float64(steps)
		}
		e, _, err := EpsilonFromRDP(orders, r, delta, false)
		return e, err
	}
	lo, hi := 0.0, 1.0
	for {
		e, err := epsAt(hi)
		if err != nil {
			return 0, err
		}
		if e <= eps {
			break
		}
		lo, hi = hi, 2*hi
		if hi > 1e7 {
			return 0, fmt.Errorf("%w: no noise multiplier up to 1e7 reaches epsilon %v at delta %v", ErrParam, eps, delta)
		}
	}
	for it := 0; hi-lo > 1e-9*hi && it < maxBisect; it++ {
		mid := (lo + hi) / 2
		e, err := epsAt(mid)
		if err != nil {
			return 0, err
		}
		if e <= eps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
