package nn

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/fennec-edge/fennec/sdk"
)

// Loss names a training loss; all work on logits.
type Loss int

// Losses.
const (
	SoftmaxCrossEntropy Loss = iota // logits [b, k]; targets i32 class [b] or f32 [b, k]
	BinaryCrossEntropy              // logits [b, 1] or [b, k]; f32 targets in [0, 1]
	MeanSquaredError                // outputs and f32 targets of the same shape
)

func (l Loss) op() (sdk.LossOp, error) {
	switch l {
	case SoftmaxCrossEntropy:
		return sdk.LossSoftmaxCE, nil
	case BinaryCrossEntropy:
		return sdk.LossBCE, nil
	case MeanSquaredError:
		return sdk.LossMSE, nil
	}
	return 0, fmt.Errorf("nn: unknown loss %d", int(l))
}

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	Step(params []*Param) error
	Free()
}

// SGD is stochastic gradient descent with optional momentum:
// v = m·v + g; w -= lr·v (plain w -= lr·g when Momentum is 0).
type SGD struct {
	LR, Momentum float32
	vel          map[*Param]*buf
}

// Step implements Optimizer.
func (o *SGD) Step(params []*Param) error {
	for _, p := range params {
		g := p.Grad()
		if g == nil {
			return fmt.Errorf("nn: sgd: %s has no gradient", p.Name)
		}
		if o.Momentum == 0 {
			if err := sdk.Axpy(p.Value, g, -o.LR); err != nil {
				return err
			}
			continue
		}
		if o.vel == nil {
			o.vel = map[*Param]*buf{}
		}
		b := o.vel[p]
		if b == nil {
			b = &buf{}
			o.vel[p] = b
		}
		v, err := b.get(p.Shape...) // zero on first use
		if err != nil {
			return err
		}
		if _, err := sdk.Scale(v, o.Momentum, v); err != nil {
			return err
		}
		if err := sdk.Axpy(v, g, 1); err != nil {
			return err
		}
		if err := sdk.Axpy(p.Value, v, -o.LR); err != nil {
			return err
		}
	}
	return nil
}

// Free implements Optimizer.
func (o *SGD) Free() {
	for _, b := range o.vel {
		b.free()
	}
	o.vel = nil
}

// Adam is the Adam optimizer (Kingma & Ba 2015) with bias correction.
// Zero Beta1/Beta2/Eps mean 0.9, 0.999 and 1e-8. Each step is one host call
// per parameter (fennec_tensor.adam); on a host backend without the fused
// step it composes the update from elementwise operations (ten calls).
type Adam struct {
	LR, Beta1, Beta2, Eps float32
	t                     int
	st                    map[*Param]*adamState
	unfused               bool // the host's backend has no fused step
}

type adamState struct{ m, v, s1, s2 buf }

// Step implements Optimizer.
func (o *Adam) Step(params []*Param) error {
	b1, b2, eps := o.Beta1, o.Beta2, o.Eps
	if b1 == 0 {
		b1 = 0.9
	}
	if b2 == 0 {
		b2 = 0.999
	}
	if eps == 0 {
		eps = 1e-8
	}
	if o.st == nil {
		o.st = map[*Param]*adamState{}
	}
	o.t++
	for _, p := range params {
		g := p.Grad()
		if g == nil {
			return fmt.Errorf("nn: adam: %s has no gradient", p.Name)
		}
		st := o.st[p]
		if st == nil {
			st = &adamState{}
			o.st[p] = st
		}
		m, err := st.m.get(p.Shape...)
		if err != nil {
			return err
		}
		v, err := st.v.get(p.Shape...)
		if err != nil {
			return err
		}
		if !o.unfused {
			err := sdk.AdamStep(p.Value, g, m, v, o.LR, b1, b2, eps, o.t)
			if err == nil {
				continue
			}
			var e *sdk.Error
			if !errors.As(err, &e) || e.Code != sdk.EINVAL || !strings.Contains(e.Msg, "not supported by backend") {
				return err
			}
			o.unfused = true // refused before anything changed
		}
		if err := o.composed(p, g, m, v, st, b1, b2, eps); err != nil {
			return err
		}
	}
	return nil
}

// composed is one Adam step on p from elementwise host operations, for a
// backend without the fused step: the same arithmetic, ten calls.
func (o *Adam) composed(p *Param, g, m, v *sdk.Tensor, st *adamState, b1, b2, eps float32) error {
	bc1 := 1 - math.Pow(float64(b1), float64(o.t))
	bc2 := 1 - math.Pow(float64(b2), float64(o.t))
	s1, err := st.s1.get(p.Shape...)
	if err != nil {
		return err
	}
	s2, err := st.s2.get(p.Shape...)
	if err != nil {
		return err
	}
	// m = b1·m + (1-b1)·g
	if _, err := sdk.Scale(m, b1, m); err != nil {
		return err
	}
	if err := sdk.Axpy(m, g, 1-b1); err != nil {
		return err
	}
	// v = b2·v + (1-b2)·g²
	if _, err := sdk.Unary(sdk.OpSquare, g, 0, s1); err != nil {
		return err
	}
	if _, err := sdk.Scale(v, b2, v); err != nil {
		return err
	}
	if err := sdk.Axpy(v, s1, 1-b2); err != nil {
		return err
	}
	// w -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)
	if _, err := sdk.Unary(sdk.OpSqrt, v, 0, s1); err != nil {
		return err
	}
	if _, err := sdk.Scale(s1, float32(1/math.Sqrt(bc2)), s1); err != nil {
		return err
	}
	if _, err := sdk.AddScalar(s1, eps, s1); err != nil {
		return err
	}
	if _, err := sdk.Div(m, s1, s2); err != nil {
		return err
	}
	return sdk.Axpy(p.Value, s2, float32(-float64(o.LR)/bc1))
}

// Free implements Optimizer.
func (o *Adam) Free() {
	for _, s := range o.st {
		s.m.free()
		s.v.free()
		s.s1.free()
		s.s2.free()
	}
	o.st = nil
}
