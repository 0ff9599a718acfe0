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

// L1Norm returns the sum of the absolute values of x, accumulated in float64.
func L1Norm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += math.Abs(float64(v))
	}
	return s
}

// ClipL2 scales x in place so that its L2 norm is at most c and returns the
// norm before clipping. Vectors containing NaN or Inf are zeroed (their norm
// is reported as +Inf): they cannot be bounded, and a zero contribution keeps
// the sensitivity bound. c must be positive.
func ClipL2(x []float32, c float64) (norm float64, err error) {
	return clipParts([][]float32{x}, c, l2Parts)
}

// ClipL2Parts clips the concatenation of several vectors (the tensors of one
// model update, or one example's gradients) jointly to L2 norm c.
func ClipL2Parts(parts [][]float32, c float64) (norm float64, err error) {
	return clipParts(parts, c, l2Parts)
}

// ClipL1 scales x in place so that its L1 norm is at most c and returns the
// norm before clipping; non-finite vectors are zeroed as by ClipL2.
func ClipL1(x []float32, c float64) (norm float64, err error) {
	return clipParts([][]float32{x}, c, func(p [][]float32) float64 { return L1Norm(p[0]) })
}

func l2Parts(parts [][]float32) float64 {
	var s float64
	for _, p := range parts {
		for _, v := range p {
			s += float64(v) * float64(v)
		}
	}
	return math.Sqrt(s)
}

// clipMargins are the factors by which successive passes of clipParts
// undercut c/norm. Each pass rounds every product toward zero, so in exact
// arithmetic the first pass already lands at or below c; the later passes
// only absorb the rounding of the float64 norm itself. The number of passes
// is fixed: the loop never waits for float32 arithmetic to make progress
// (a subnormal scaled by 1-2^-20 and rounded to nearest is the same
// subnormal, which made the old shrink-until-below loop spin forever).
var clipMargins = [...]float64{1, 1 - 0x1p-40, 1 - 0x1p-20, 1 - 0x1p-8}

// clipParts scales parts jointly so that norm(parts) <= c, in at most
// len(clipMargins) passes; if those do not suffice (it takes norms
// computed wrongly by more than 2^-8, which float64 accumulation of at most
// 2^31 float32 values cannot do) the parts are zeroed, which always
// satisfies the bound.
func clipParts(parts [][]float32, c float64, norm func([][]float32) float64) (float64, error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("%w: clip norm must be positive and finite, got %v", ErrParam, c)
	}
	n0 := norm(parts)
	if math.IsNaN(n0) || math.IsInf(n0, 0) {
		for _, p := range parts {
			clear(p)
		}
		return math.Inf(1), nil
	}
	n := n0
	for _, margin := range clipMargins {
		if n <= c {
			return n0, nil
		}
		f := c / n * margin
		for _, p := range parts {
			scaleTowardZero(p, f)
		}
		n = norm(parts)
	}
	if n > c {
		for _, p := range parts {
			clear(p)
		}
	}
	return n0, nil
}

// scaleTowardZero sets x[i] = x[i]*f (0 <= f < 1) computed in float64 and
// rounded to float32 toward zero, so that no element ends up larger in
// magnitude than the exact product.
func scaleTowardZero(x []float32, f float64) {
	for i, v := range x {
		p := float64(v) * f
		r := float32(p)
		if math.Abs(float64(r)) > math.Abs(p) {
			r = math.Nextafter32(r, 0)
		}
		x[i] = r
	}
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
