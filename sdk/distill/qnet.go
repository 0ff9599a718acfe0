package distill

import (
	"fmt"
	"slices"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/nn"
)

// Net is what Predict runs: *nn.Sequential and *QNet are both Nets.
type Net interface {
	Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error)
}

// hostBuf is a host tensor reallocated only when its shape changes.
type hostBuf struct {
	t     *sdk.Tensor
	dt    sdk.DType
	shape []int
}

func (b *hostBuf) get(dt sdk.DType, shape ...int) (*sdk.Tensor, error) {
	if b.t != nil && b.dt == dt && slices.Equal(b.shape, shape) {
		return b.t, nil
	}
	b.free()
	t, err := sdk.New(dt, shape, nil)
	if err != nil {
		return nil, err
	}
	b.t, b.dt, b.shape = t, dt, slices.Clone(shape)
	return t, nil
}

func (b *hostBuf) free() {
	if b.t != nil {
		b.t.Free()
		b.t, b.shape = nil, nil
	}
}

// QLinear is the int8 inference form of an nn.Linear: weights [in, out]
// quantized with one scale per output channel, bias kept in f32.
type QLinear struct {
	In, Out  int
	W, Scale *sdk.Tensor // i8 [in, out], f32 [out]
	B        *sdk.Tensor // f32 [out]
	mm, y    hostBuf
}

// QuantizeLinear quantizes a trained layer's weights on the host (the
// layer itself is unchanged).
func QuantizeLinear(l *nn.Linear) (*QLinear, error) {
	w, s, err := Quantize(l.W.Value, 1)
	if err != nil {
		return nil, fmt.Errorf("distill: quantize %s: %w", l.W.Name, err)
	}
	b, err := sdk.Copy(l.B.Value, nil)
	if err != nil {
		w.Free()
		s.Free()
		return nil, err
	}
	return &QLinear{In: l.In, Out: l.Out, W: w, Scale: s, B: b}, nil
}

// Forward computes x·W + b for x [batch, in] with the int8 kernel. The
// result is owned by the layer and valid until its next Forward.
func (q *QLinear) Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error) {
	if len(shape) != 2 || shape[1] != q.In {
		return nil, nil, fmt.Errorf("distill: int8 linear %dx%d given input %v", q.In, q.Out, shape)
	}
	mm, err := q.mm.get(sdk.F32, shape[0], q.Out)
	if err != nil {
		return nil, nil, err
	}
	if _, err := MatMulI8(x, q.W, q.Scale, mm); err != nil {
		return nil, nil, err
	}
	y, err := q.y.get(sdk.F32, shape[0], q.Out)
	if err != nil {
		return nil, nil, err
	}
	if _, err := sdk.Add(mm, q.B, y); err != nil {
		return nil, nil, err
	}
	return y, []int{shape[0], q.Out}, nil
}

// Bytes is the stored size: int8 weights plus f32 scales and bias.
func (q *QLinear) Bytes() int { return q.In*q.Out + 8*q.Out }

// Free releases the layer's host tensors.
func (q *QLinear) Free() {
	for _, t := range []*sdk.Tensor{q.W, q.Scale, q.B} {
		t.Free()
	}
	q.mm.free()
	q.y.free()
}

// QNet is an int8 inference copy of an nn.Sequential of Linear and
// activation layers.
type QNet struct {
	stages []qstage
}

type qstage struct {
	lin *QLinear
	act sdk.UnaryOp // when lin is nil
	y   *hostBuf    // the activation's output
}

// QuantizeNet quantizes every Linear layer of s; activations are kept.
// Other layer types are refused.
func QuantizeNet(s *nn.Sequential) (*QNet, error) {
	n := &QNet{}
	for i, l := range s.Layers {
		switch l := l.(type) {
		case *nn.Linear:
			q, err := QuantizeLinear(l)
			if err != nil {
				n.Free()
				return nil, err
			}
			n.stages = append(n.stages, qstage{lin: q})
		case *nn.Activation:
			n.stages = append(n.stages, qstage{act: l.Op, y: &hostBuf{}})
		default:
			n.Free()
			return nil, fmt.Errorf("distill: layer %d (%T) cannot be quantized", i, l)
		}
	}
	return n, nil
}

// Forward runs the network on x [batch, in]; the result is owned by the
// network and valid until its next Forward.
func (n *QNet) Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error) {
	var err error
	for _, st := range n.stages {
		if st.lin != nil {
			if x, shape, err = st.lin.Forward(x, shape); err != nil {
				return nil, nil, err
			}
			continue
		}
		y, err := st.y.get(sdk.F32, shape...)
		if err != nil {
			return nil, nil, err
		}
		if x, err = sdk.Unary(st.act, x, 0, y); err != nil {
			return nil, nil, err
		}
	}
	return x, shape, nil
}

// Bytes is the stored size of the network's parameters.
func (n *QNet) Bytes() int {
	var b int
	for _, st := range n.stages {
		if st.lin != nil {
			b += st.lin.Bytes()
		}
	}
	return b
}

// Free releases every host tensor of the network.
func (n *QNet) Free() {
	for _, st := range n.stages {
		if st.lin != nil {
			st.lin.Free()
		} else {
			st.y.free()
		}
	}
	n.stages = nil
}
