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
	lp := make([]float64, classes)
	lq := make([]float64, classes)
	for b := 0; b < batch; b++ {
		s := student[b*classes : (b+1)*classes]
		te := teacher[b*classes : (b+1)*classes]
		logSoftmaxT(lp, te, t)
		logSoftmaxT(lq, s, t)
		for j := range lp {
			p := math.Exp(lp[j])
			if p > 0 {
				total += p * (lp[j] - lq[j])
			}
			if grad != nil {
				grad[b*classes+j] = float32(t / float64(batch) * (math.Exp(lq[j]) - p))
			}
		}
	}
	return float32(t * t * total / float64(batch)), nil
}

// logSoftmaxT writes log softmax(x/T) into dst in float64.
func logSoftmaxT(dst []float64, x []float32, T float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v)/T)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v)/T - m)
	}
	ls := m + math.Log(s)
	for j, v := range x {
		dst[j] = float64(v)/T - ls
	}
}
