package gpu

import (
	"fmt"
	"math"
)

// AdamParams are the hyper-parameters of one Adam step (Kingma & Ba 2015).
type AdamParams struct {
	LR, Beta1, Beta2, Eps float32
	// Step is the 1-based number of this step, for the bias corrections
	// 1-Beta1^Step and 1-Beta2^Step.
	Step int
}

// Check reports whether the hyper-parameters are usable: LR finite and not
// negative, Beta1 and Beta2 in [0, 1), Eps positive and finite, Step >= 1.
func (h AdamParams) Check() error {
	finite := func(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }
	switch {
	case !finite(h.LR) || h.LR < 0:
		return fmt.Errorf("adam: lr %v must be finite and not negative", h.LR)
	case !(h.Beta1 >= 0 && h.Beta1 < 1):
		return fmt.Errorf("adam: beta1 %v must be in [0, 1)", h.Beta1)
	case !(h.Beta2 >= 0 && h.Beta2 < 1):
		return fmt.Errorf("adam: beta2 %v must be in [0, 1)", h.Beta2)
	case !finite(h.Eps) || !(h.Eps > 0):
		return fmt.Errorf("adam: eps %v must be positive and finite", h.Eps)
	case h.Step < 1:
		return fmt.Errorf("adam: step %d must be at least 1", h.Step)
	}
	return nil
}

// Adamer is an optional Backend extension: the fused Adam update, one call
// per parameter tensor instead of ten elementwise operations.
type Adamer interface {
	// Adam updates the first and second moments m and v and the parameter
	// p in place from its gradient g (all f32, the same shape; four
	// different tensors), see AdamSlices.
	Adam(p, g, m, v Tensor, h AdamParams) error
}

var _ Adamer = (*CPU)(nil)

// AdamSlices is one Adam step over equal-length slices:
//
//	m = b1·m + (1-b1)·g
//	v = b2·v + (1-b2)·g²
//	p -= lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps)
//
// with the bias corrections computed in float64 once per call and the
// elementwise arithmetic in float32, the order of operations of sdk/nn's
// unfused Adam. h must pass Check.
func AdamSlices(p, g, m, v []float32, h AdamParams) {
	b1, b2, eps := h.Beta1, h.Beta2, h.Eps
	bc1 := 1 - math.Pow(float64(b1), float64(h.Step))
	bc2 := 1 - math.Pow(float64(b2), float64(h.Step))
	rs := float32(1 / math.Sqrt(bc2))
	step := float32(-float64(h.LR) / bc1)
	c1, c2 := 1-b1, 1-b2
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	for i := range p {
		gi := g[i]
		mi := b1*m[i] + c1*gi
		vi := b2*v[i] + c2*(gi*gi)
		m[i], v[i] = mi, vi
		p[i] += step * (mi / (float32(math.Sqrt(float64(vi)))*rs + eps))
	}
}

// Adam implements Adamer.
func (cpu *CPU) Adam(p, g, m, v Tensor, h AdamParams) error {
	if err := h.Check(); err != nil {
		return err
	}
	ts := [4]*cpuTensor{}
	for i, t := range [4]Tensor{p, g, m, v} {
		ct, err := cpu.f32(t, [4]string{"p", "g", "m", "v"}[i])
		if err != nil {
			return err
		}
		for _, prev := range ts[:i] {
			if prev == ct {
				return fmt.Errorf("adam: p, g, m and v must be four different tensors")
			}
		}
		if i > 0 {
			if err := sameShape(ct, ts[0].shape, [4]string{"p", "g", "m", "v"}[i]); err != nil {
				return err
			}
		}
		ts[i] = ct
	}
	pt, gt, mt, vt := ts[0], ts[1], ts[2], ts[3]
	cpu.parallel(pt.n, elemParallelMin, func(lo, hi int) {
		AdamSlices(pt.f[lo:hi], gt.f[lo:hi], mt.f[lo:hi], vt.f[lo:hi], h)
	})
	return nil
}
