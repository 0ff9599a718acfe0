package dp

import (
	"fmt"
	"math"
)

// L2Norm returns the Euclidean norm of x, accumulated in float64.
func L2Norm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// ClipL2 scales x in place so that its L2 norm is at most c and returns the
// norm before clipping. Vectors containing NaN or Inf are zeroed (their norm
// is reported as +Inf): they cannot be bounded, and a zero contribution keeps
// the sensitivity bound. c must be positive.
func ClipL2(x []float32, c float64) (norm float64, err error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("%w: clip norm must be positive and finite, got %v", ErrParam, c)
	}
	norm = L2Norm(x)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		clear(x)
		return math.Inf(1), nil
	}
	if norm > c {
		f := c / norm
		for i := range x {
			x[i] = float32(float64(x[i]) * f)
		}
		// float32 rounding can leave the norm a hair above c; shrink until not.
		for L2Norm(x) > c {
			f = 1 - 1.0/(1<<20)
			for i := range x {
				x[i] = float32(float64(x[i]) * f)
			}
		}
	}
	return norm, nil
}

// ClipL2Parts clips the concatenation of several vectors (the tensors of one
// model update, or one example's gradients) jointly to L2 norm c.
func ClipL2Parts(parts [][]float32, c float64) (norm float64, err error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("%w: clip norm must be positive and finite, got %v", ErrParam, c)
	}
	var s float64
	for _, p := range parts {
		n := L2Norm(p)
		s += n * n
	}
	norm = math.Sqrt(s)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		for _, p := range parts {
			clear(p)
		}
		return math.Inf(1), nil
	}
	if norm > c {
		f := c / norm * (1 - 1.0/(1<<22)) // margin for float32 rounding
		for _, p := range parts {
			for i := range p {
				p[i] = float32(float64(p[i]) * f)
			}
		}
	}
	return norm, nil
}

// QuantileClipper tracks a clip norm that converges to the given quantile of
// the update norms, by the geometric update of Andrew, Thakkar, McMahan and
// Ramaswamy, "Differentially Private Learning with Adaptive Clipping"
// (NeurIPS 2021, Algorithm 1):
//
//	C <- C * exp(-eta * (bhat - gamma))
//
// where bhat is the (noised) fraction of this round's updates whose norm was
// at most C. The zero value is not usable; use NewQuantileClipper.
type QuantileClipper struct {
	Clip         float64 // current clip norm C
	Quantile     float64 // target quantile gamma in (0,1), e.g. 0.5
	LearningRate float64 // eta, e.g. 0.2
	// CountNoise is the standard deviation sigma_b of the Gaussian noise added
	// to the count of unclipped updates (0 = no noise, for non-private use).
	CountNoise float64
}

// NewQuantileClipper validates its arguments and returns a tracker.
func NewQuantileClipper(initial, quantile, lr, countNoise float64) (*QuantileClipper, error) {
	switch {
	case !(initial > 0) || math.IsInf(initial, 0):
		return nil, fmt.Errorf("%w: initial clip must be positive, got %v", ErrParam, initial)
	case !(quantile > 0 && quantile < 1):
		return nil, fmt.Errorf("%w: quantile must be in (0,1), got %v", ErrParam, quantile)
	case !(lr > 0) || math.IsInf(lr, 0):
		return nil, fmt.Errorf("%w: learning rate must be positive, got %v", ErrParam, lr)
	case !(countNoise >= 0) || math.IsInf(countNoise, 0):
		return nil, fmt.Errorf("%w: count noise must be >= 0, got %v", ErrParam, countNoise)
	}
	return &QuantileClipper{Clip: initial, Quantile: quantile, LearningRate: lr, CountNoise: countNoise}, nil
}

// Update consumes one round: unclipped is the number of the n updates whose
// norm was <= Clip (each client reports a bit). Noise of CountNoise is added
// to the count with src (nil only when CountNoise is 0). It returns the new
// clip norm.
func (q *QuantileClipper) Update(src *Source, unclipped, n int) (float64, error) {
	if n <= 0 || unclipped < 0 || unclipped > n {
		return q.Clip, fmt.Errorf("%w: %d unclipped of %d updates", ErrParam, unclipped, n)
	}
	b := []float64{float64(unclipped)}
	if q.CountNoise > 0 {
		if src == nil {
			return q.Clip, fmt.Errorf("%w: count noise needs a Source", ErrParam)
		}
		if err := src.AddGaussian(b, q.CountNoise); err != nil {
			return q.Clip, err
		}
	}
	bhat := b[0] / float64(n)
	q.Clip *= math.Exp(-q.LearningRate * (bhat - q.Quantile))
	return q.Clip, nil
}

// AdaptiveNoiseMultiplier returns the noise multiplier z_delta to use for the
// clipped updates when the clip-norm count is released with noise multiplier
// zb = CountNoise (in units of one client's bit), so that the pair is as
// private as one Gaussian mechanism of multiplier z (Andrew et al. 2021,
// Theorem 1): z_delta = (z^-2 - (2 zb)^-2)^(-1/2). It needs zb > 1/(2z).
func AdaptiveNoiseMultiplier(z, zb float64) (float64, error) {
	if !(z > 0) || !(zb > 0) {
		return 0, fmt.Errorf("%w: multipliers must be positive (z=%v, zb=%v)", ErrParam, z, zb)
	}
	r := 1/(z*z) - 1/(4*zb*zb)
	if r <= 0 {
		return 0, fmt.Errorf("%w: count noise %v too small for total multiplier %v (need > %v)", ErrParam, zb, z, 1/(2*z))
	}
	return 1 / math.Sqrt(r), nil
}
