package gpu

import (
	"fmt"
	"math"
)

// KLDistill is the knowledge-distillation loss between student and teacher
// logits, both [batch, classes] row major, at temperature T > 0 (Hinton et
// al., 2015):
//
//	p = softmax(teacher/T), q = softmax(student/T)
//	loss = T^2 / batch * sum_b KL(p_b || q_b) = T^2 / batch * sum p (log p - log q)
//	d loss / d student = T / batch * (q - p)
//
// The T^2 factor keeps the gradient's magnitude comparable across
// temperatures, so the loss can be mixed with a hard-label cross-entropy.
// When grad is not nil it receives the gradient (same shape as student; it
// may alias student). Sums run in float64.
func KLDistill(grad, student, teacher []float32, batch, classes int, T float32) (float32, error) {
	if batch < 0 || classes <= 0 || len(student) != batch*classes || len(teacher) != batch*classes {
		return 0, fmt.Errorf("%w: distillation of %d student and %d teacher logits as [%d, %d]", ErrShape, len(student), len(teacher), batch, classes)
	}
	if grad != nil && len(grad) != len(student) {
		return 0, fmt.Errorf("%w: gradient of %d values for %d logits", ErrShape, len(grad), len(student))
	}
	if !(T > 0) || math.IsInf(float64(T), 0) {
		return 0, fmt.Errorf("gpu: distillation temperature %v must be positive and finite", T)
	}
	if batch == 0 {
		return 0, nil
	}
	t := float64(T)
	var total float64
	// Each log-softmax value is x/T - lse(x/T), computed where it is used:
	// no scratch of the guest's row length.
	for b := 0; b < batch; b++ {
		st := student[b*classes : (b+1)*classes]
		te := teacher[b*classes : (b+1)*classes]
		lsp, lsq := logSumExpT(te, t), logSumExpT(st, t)
		for j := range te {
			lp := float64(te[j])/t - lsp
			lq := float64(st[j])/t - lsq
			p := math.Exp(lp)
			if p > 0 {
				total += p * (lp - lq)
			}
			if grad != nil {
				grad[b*classes+j] = float32(t / float64(batch) * (math.Exp(lq) - p))
			}
		}
	}
	return float32(t * t * total / float64(batch)), nil
}

// logSumExpT is log sum exp(x/T) in float64.
func logSumExpT(x []float32, T float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v)/T)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v)/T - m)
	}
	return m + math.Log(s)
}
