// Package discrete holds exact samplers for integer-valued noise: the
// discrete Laplace and the discrete Gaussian distributions of Canonne, Kamath
// and Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS
// 2020, arXiv:2004.00010v5, Algorithms 1-3). Every sampler uses only integer
// arithmetic on uniformly random 64-bit words, so no floating-point rounding
// enters the distribution: its support is all of Z and its probabilities are
// exactly those of the target distribution, up to the cut-offs documented on
// each function (events of probability below e^-700).
//
// The random words come from a Rand, normally ChaCha8 seeded from
// crypto/rand (see privacy/dp.NewSource).
package discrete

import (
	"math/bits"
)

// Rand supplies uniform random integers. *math/rand/v2.Rand satisfies it.
type Rand interface {
	Uint64() uint64
	Uint64N(n uint64) uint64
}

// maxExpInt bounds the integer part of gamma in BernoulliExp: exp(-700) is
// below 1e-304, and an event of that probability is treated as impossible.
const maxExpInt = 700

// bernoulliFrac returns true with probability n/(d*k), for 0 <= n <= d,
// d >= 1 and k >= 1, without forming d*k (which may overflow): a uniform
// integer on [0, d*k) is v*d+u with v uniform on [0,k) and u on [0,d), and it
// lies below n <= d exactly when v == 0 and u < n.
func bernoulliFrac(r Rand, n, d, k uint64) bool {
	if k > 1 && r.Uint64N(k) != 0 {
		return false
	}
	return r.Uint64N(d) < n
}

// bernoulliExpUnit returns true with probability exp(-n/d) for 0 <= n <= d,
// d >= 1 (CKS Algorithm 1, case gamma in [0,1]): draw A_k ~ Bernoulli(gamma/k)
// for k = 1, 2, ... until the first failure; return whether that k is odd.
func bernoulliExpUnit(r Rand, n, d uint64) bool {
	k := uint64(1)
	for bernoulliFrac(r, n, d, k) {
		k++
	}
	return k%2 == 1
}

// BernoulliExp returns true with probability exp(-n/d), d >= 1 (CKS
// Algorithm 1): exp(-1) once per unit of the integer part, then the
// fraction. An integer part above 700 returns false (probability < e^-700).
func BernoulliExp(r Rand, n, d uint64) bool {
	m, f := n/d, n%d
	return bernoulliExpSplit(r, m, f, d)
}

func bernoulliExpSplit(r Rand, m, f, d uint64) bool {
	if m > maxExpInt {
		return false
	}
	for i := uint64(0); i < m; i++ {
		if !bernoulliExpUnit(r, 1, 1) {
			return false
		}
	}
	return bernoulliExpUnit(r, f, d)
}

// MaxLaplaceScale is the largest scale Laplace accepts.
const MaxLaplaceScale = 1 << 62

// Laplace returns an integer Y with P(Y = y) proportional to exp(-|y|/t),
// the discrete Laplace distribution of scale t >= 1 (CKS Algorithm 2 with
// s = 1). Outputs are clamped to +-2^62, a bound reached with probability
// below exp(-2^62/t).
func Laplace(r Rand, t uint64) int64 {
	if t == 0 {
		t = 1
	}
	if t > MaxLaplaceScale {
		t = MaxLaplaceScale
	}
	for {
		u := r.Uint64N(t)
		if !bernoulliExpUnit(r, u, t) {
			continue
		}
		v := uint64(0)
		for bernoulliExpUnit(r, 1, 1) {
			v++
		}
		hi, x := bits.Mul64(v, t)
		x += u
		if hi != 0 || x > MaxLaplaceScale {
			x = MaxLaplaceScale
		}
		neg := r.Uint64()&1 == 1
		if neg && x == 0 {
			continue
		}
		if neg {
			return -int64(x)
		}
		return int64(x)
	}
}

// MaxGaussianSigma is the largest sigma Gaussian accepts: it keeps the
// denominator 2*sigma^2*t^2 of the acceptance test within 64 bits.
const MaxGaussianSigma = 1 << 15

// Gaussian returns an integer Y with P(Y = y) proportional to
// exp(-y^2/(2 sigma^2)), the discrete Gaussian of integer scale
// 1 <= sigma <= MaxGaussianSigma (CKS Algorithm 3): propose Y from the
// discrete Laplace of scale t = sigma+1 and accept with probability
// exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)), evaluated exactly as the rational
// (|Y|t - sigma^2)^2 / (2 sigma^2 t^2) in 128-bit integer arithmetic.
func Gaussian(r Rand, sigma uint64) int64 {
	if sigma == 0 {
		sigma = 1
	}
	if sigma > MaxGaussianSigma {
		sigma = MaxGaussianSigma
	}
	t := sigma + 1
	s2 := sigma * sigma
	den := 2 * s2 * t * t // < 2^63 for sigma <= 2^15
	for {
		y := Laplace(r, t)
		ay := uint64(y)
		if y < 0 {
			ay = uint64(-y)
		}
		// a = |y|*t - sigma^2 (signed); |y| < 2^46 keeps it in 64 bits,
		// and larger |y| are accepted with probability < exp(-2^60).
		if ay >= 1<<46 {
			continue
		}
		p := ay * t
		var a uint64
		if p >= s2 {
			a = p - s2
		} else {
			a = s2 - p
		}
		hi, lo := bits.Mul64(a, a)
		if hi >= den {
			continue // gamma >= 2^64: acceptance probability is 0 in practice
		}
		m, f := bits.Div64(hi, lo, den)
		if bernoulliExpSplit(r, m, f, den) {
			return y
		}
	}
}
