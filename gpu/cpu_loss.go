package gpu

import (
	"fmt"
	"math"
)

// isNil reports whether t is nil or a typed nil pointer in an interface.
func isNil(t Tensor) bool {
	if t == nil {
		return true
	}
	ct, ok := t.(*cpuTensor)
	return ok && ct == nil
}

// Loss computes the loss of pred against target and, when grad is not nil,
// the gradient with respect to pred into grad. Losses accumulate in float64.
// An empty batch has loss 0 and an empty gradient.
func (cpu *CPU) Loss(op LossOp, grad, pred, target Tensor) (float32, error) {
	if op < SoftmaxCrossEntropy || op > MSE {
		return 0, fmt.Errorf("%w: loss op %d", ErrUnsupported, op)
	}
	p, err := cpu.f32(pred, "pred")
	if err != nil {
		return 0, err
	}
	t, err := cpu.tensor(target, "target")
	if err != nil {
		return 0, err
	}
	var g *cpuTensor
	if !isNil(grad) {
		if g, err = cpu.f32(grad, "grad"); err != nil {
			return 0, err
		}
		if err := sameShape(g, p.shape, "grad"); err != nil {
			return 0, err
		}
	}
	var gf []float32
	if g != nil {
		gf = g.f
	}
	switch op {
	case SoftmaxCrossEntropy:
		return cpu.softmaxCE(gf, p, t)
	case BinaryCrossEntropy, MSE:
		if t.dt != F32 {
			return 0, fmt.Errorf("%w: target is %s, want f32", ErrDType, t.dt)
		}
		if err := sameShape(t, p.shape, "target"); err != nil {
			return 0, err
		}
		n := p.n
		if n == 0 {
			return 0, nil
		}
		inv := 1 / float64(n)
		var total float64
		if op == MSE {
			for i, x := range p.f {
				d := float64(x) - float64(t.f[i])
				total += d * d
				if gf != nil {
					gf[i] = float32(2 * d * inv)
				}
			}
		} else {
			// e = e^-|z| once per element, through the vector exp:
			// loss max(z,0) - z*y + log(1+e) is stable for any z, and
			// sigmoid(z) is 1/(1+e) or e/(1+e) by z's sign.
			var buf [chunk]float32
			for lo := 0; lo < n; lo += chunk {
				hi := min(lo+chunk, n)
				e := buf[:hi-lo]
				for j, x := range p.f[lo:hi] {
					e[j] = -abs32(x)
				}
				expSlice(e, e)
				for j, x := range p.f[lo:hi] {
					i := lo + j
					y := float64(t.f[i])
					z, ez := float64(x), float64(e[j])
					total += math.Max(z, 0) - z*y + math.Log1p(ez)
					if gf != nil {
						sg := 1 / (1 + ez)
						if x < 0 {
							sg *= ez
						}
						gf[i] = float32((sg - y) * inv)
					}
				}
			}
		}
		return float32(total * inv), nil
	}
	return 0, nil
}

func (cpu *CPU) softmaxCE(gf []float32, p, t *cpuTensor) (float32, error) {
	if len(p.shape) != 2 {
		return 0, fmt.Errorf("%w: softmax cross-entropy logits must be [batch, classes], got %v", ErrShape, p.shape)
	}
	batch, classes := p.shape[0], p.shape[1]
	switch t.dt {
	case I32:
		if !EqualShape(t.shape, []int{batch}) {
			return 0, fmt.Errorf("%w: class-index target has shape %v, want [%d]", ErrShape, t.shape, batch)
		}
		for i, c := range t.i {
			if c < 0 || int(c) >= classes {
				return 0, fmt.Errorf("%w: target[%d] = %d is not a class in [0, %d)", ErrShape, i, c, classes)
			}
		}
	case F32:
		if !EqualShape(t.shape, p.shape) {
			return 0, fmt.Errorf("%w: probability target has shape %v, want %v", ErrShape, t.shape, p.shape)
		}
	default:
		return 0, fmt.Errorf("%w: target is %s, want f32 or i32", ErrDType, t.dt)
	}
	if batch == 0 {
		return 0, nil
	}
	if classes == 0 {
		return 0, fmt.Errorf("%w: softmax cross-entropy with zero classes", ErrShape)
	}
	inv := 1 / float64(batch)
	var total float64
	for r := 0; r < batch; r++ {
		row := p.f[r*classes : r*classes+classes]
		m := float32(math.Inf(-1))
		for _, v := range row {
			m = max32(m, v)
		}
		s := expSum(row, -m)
		lse := float64(m) + math.Log(s) // log-sum-exp of the row
		if t.dt == I32 {
			c := int(t.i[r])
			total += lse - float64(row[c])
		} else {
			trow := t.f[r*classes : r*classes+classes]
			for j, v := range row {
				if y := float64(trow[j]); y != 0 {
					total += y * (lse - float64(v))
				}
			}
		}
		if gf != nil {
			// softmax = e^(v-m) / s, recomputed chunk by chunk (cheaper than
			// a float64 exp per element, and grad may alias pred)
			grow := gf[r*classes : r*classes+classes]
			invS := 1 / s
			c := float32(invS * inv)
			label := -1
			if t.dt == I32 {
				label = int(t.i[r])
			}
			var buf [chunk]float32
			for lo := 0; lo < classes; lo += chunk {
				hi := min(lo+chunk, classes)
				e := buf[:hi-lo]
				expBiasSum(e, row[lo:hi], -m)
				g := grow[lo:hi]
				if t.dt == I32 {
					for j, ej := range e {
						g[j] = ej * c
					}
					if label >= lo && label < hi {
						g[label-lo] = float32((float64(e[label-lo])*invS - 1) * inv)
					}
					continue
				}
				y := t.f[r*classes+lo : r*classes+hi]
				for j, ej := range e {
					g[j] = float32((float64(ej)*invS - float64(y[j])) * inv)
				}
			}
		}
	}
	return float32(total * inv), nil
}
