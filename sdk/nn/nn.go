// Package nn is a small neural-network layer set for fennec guests. Every
// computation runs on the host through sdk tensor ops (matmul, broadcasting
// add, unary activations and their gradients, reductions, fused losses);
// the guest only orchestrates. It provides Linear layers (Xavier/He
// initialisation from a seeded PRNG), ReLU/Sigmoid/Tanh activations,
// Sequential networks and MLP, softmax cross-entropy, binary cross-entropy
// and MSE losses, SGD (with momentum) and Adam, and conversion to and from
// the shared CBOR Model of docs/ABI.md. Train and Evaluate implement the
// train/evaluate entrypoints of the ABI (including FedProx).
//
// Weights are stored as [in, out] (y = x·W + b), biases as [out]. Parameter
// names follow the layer's index in its Sequential: "0.weight", "0.bias",
// "2.weight", ...
//
// Intermediate tensors are owned by the layers and reused while the batch
// shape stays the same, so a training loop allocates no host tensors after
// its first step.
package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fennec-edge/fennec/sdk"
)

// buf is a host tensor owned by a layer, reallocated only when its shape
// changes. It keeps the previous shape's tensor too, so a training loop
// whose batch size alternates (full batches, then the epoch's last, smaller
// one) reuses both instead of making a new tensor at every switch. A
// tensor's contents are not kept across a switch: callers overwrite it
// (only buffers of one fixed shape rely on the zeros of a new tensor).
type buf struct {
	t     *sdk.Tensor
	dtype sdk.DType
	shape []int
	// the previous shape's tensor, or nil
	alt      *sdk.Tensor
	altDType sdk.DType
	altShape []int
}

func (b *buf) get(shape ...int) (*sdk.Tensor, error) {
	return b.getT(sdk.F32, shape...)
}

func (b *buf) getT(dt sdk.DType, shape ...int) (*sdk.Tensor, error) {
	if b.t != nil && b.dtype == dt && slices.Equal(b.shape, shape) {
		return b.t, nil
	}
	if b.alt != nil && b.altDType == dt && slices.Equal(b.altShape, shape) {
		b.t, b.alt = b.alt, b.t
		b.dtype, b.altDType = b.altDType, b.dtype
		b.shape, b.altShape = b.altShape, b.shape
		return b.t, nil
	}
	if b.alt != nil {
		b.alt.Free()
	}
	b.alt, b.altDType, b.altShape = b.t, b.dtype, b.shape
	b.t, b.shape = nil, nil
	t, err := sdk.New(dt, shape, nil)
	if err != nil {
		return nil, err
	}
	b.t, b.dtype, b.shape = t, dt, slices.Clone(shape)
	return t, nil
}

func (b *buf) free() {
	if b.t != nil {
		b.t.Free()
		b.t, b.shape = nil, nil
	}
	if b.alt != nil {
		b.alt.Free()
		b.alt, b.altShape = nil, nil
	}
}

// Param is a trainable tensor with its gradient (filled by Backward).
type Param struct {
	Name  string
	Shape []int
	Value *sdk.Tensor
	grad  buf
}

// Grad returns the gradient of the last Backward (nil before one).
func (p *Param) Grad() *sdk.Tensor { return p.grad.t }

// Layer is one stage of a Sequential network over [batch, features] tensors.
type Layer interface {
	// Forward computes the output for x of shape [batch, in], remembering
	// what Backward needs. The returned tensor is owned by the layer and
	// valid until the next Forward.
	Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error)
	// Backward takes dLoss/dOutput and returns dLoss/dInput (nil when
	// needDX is false), filling its parameters' gradients.
	Backward(g *sdk.Tensor, needDX bool) (*sdk.Tensor, error)
	Params() []*Param
	Free()
}

// Init selects a weight initialisation.
type Init int

// Initialisations.
const (
	// Xavier (Glorot) uniform: U(-a, a), a = sqrt(6/(in+out)); for
	// sigmoid/tanh and linear outputs.
	Xavier Init = iota
	// He (Kaiming) normal: N(0, 2/in); for ReLU.
	He
)

// Linear is a fully connected layer y = x·W + b.
type Linear struct {
	In, Out int
	W, B    *Param
	x       *sdk.Tensor
	batch   int
	mm, y   buf
	dx      buf
}

// NewLinear creates a Linear layer with weights drawn from rng.
func NewLinear(in, out int, init Init, rng *rand.Rand) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("nn: linear %dx%d", in, out)
	}
	w := make([]float32, in*out)
	switch init {
	case He:
		s := math.Sqrt(2 / float64(in))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * s)
		}
	default:
		a := math.Sqrt(6 / float64(in+out))
		for i := range w {
			w[i] = float32((2*rng.Float64() - 1) * a)
		}
	}
	return NewLinearFrom(in, out, w, make([]float32, out))
}

// NewLinearFrom creates a Linear layer with the given weights ([in, out]
// row-major) and bias.
func NewLinearFrom(in, out int, w, b []float32) (*Linear, error) {
	if len(w) != in*out || len(b) != out {
		return nil, fmt.Errorf("nn: linear %dx%d given %d weights and %d biases", in, out, len(w), len(b))
	}
	wt, err := sdk.FromF32([]int{in, out}, w)
	if err != nil {
		return nil, err
	}
	bt, err := sdk.FromF32([]int{out}, b)
	if err != nil {
		wt.Free()
		return nil, err
	}
	return &Linear{In: in, Out: out,
		W: &Param{Name: "weight", Shape: []int{in, out}, Value: wt},
		B: &Param{Name: "bias", Shape: []int{out}, Value: bt}}, nil
}

// Forward implements Layer.
func (l *Linear) Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error) {
	if len(shape) != 2 || shape[1] != l.In {
		return nil, nil, fmt.Errorf("nn: linear %dx%d given input %v", l.In, l.Out, shape)
	}
	l.x, l.batch = x, shape[0]
	mm, err := l.mm.get(l.batch, l.Out)
	if err != nil {
		return nil, nil, err
	}
	if _, err := sdk.MatMul(x, l.W.Value, false, false, mm); err != nil {
		return nil, nil, err
	}
	y, err := l.y.get(l.batch, l.Out)
	if err != nil {
		return nil, nil, err
	}
	if _, err := sdk.Add(mm, l.B.Value, y); err != nil {
		return nil, nil, err
	}
	return y, []int{l.batch, l.Out}, nil
}

// Backward implements Layer: dW = xᵀ·g, db = Σ_batch g, dx = g·Wᵀ.
func (l *Linear) Backward(g *sdk.Tensor, needDX bool) (*sdk.Tensor, error) {
	if l.x == nil {
		return nil, fmt.Errorf("nn: linear backward before forward")
	}
	gw, err := l.W.grad.get(l.In, l.Out)
	if err != nil {
		return nil, err
	}
	if _, err := sdk.MatMul(l.x, g, true, false, gw); err != nil {
		return nil, err
	}
	gb, err := l.B.grad.get(l.Out)
	if err != nil {
		return nil, err
	}
	if _, err := sdk.Sum(g, 0, false, gb); err != nil {
		return nil, err
	}
	if !needDX {
		return nil, nil
	}
	dx, err := l.dx.get(l.batch, l.In)
	if err != nil {
		return nil, err
	}
	return sdk.MatMul(g, l.W.Value, false, true, dx)
}

// Params implements Layer.
func (l *Linear) Params() []*Param { return []*Param{l.W, l.B} }

// Free implements Layer.
func (l *Linear) Free() {
	for _, p := range l.Params() {
		p.Value.Free()
		p.grad.free()
	}
	l.mm.free()
	l.y.free()
	l.dx.free()
}

// Activation is an elementwise nonlinearity layer.
type Activation struct {
	Op    sdk.UnaryOp // sdk.OpReLU, sdk.OpSigmoid or sdk.OpTanh
	x     *sdk.Tensor
	shape []int
	y, dx buf
}

// ReLU, Sigmoid and Tanh return activation layers.
func ReLU() *Activation    { return &Activation{Op: sdk.OpReLU} }
func Sigmoid() *Activation { return &Activation{Op: sdk.OpSigmoid} }
func Tanh() *Activation    { return &Activation{Op: sdk.OpTanh} }

// Forward implements Layer.
func (a *Activation) Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error) {
	a.x, a.shape = x, slices.Clone(shape)
	y, err := a.y.get(shape...)
	if err != nil {
		return nil, nil, err
	}
	if _, err := sdk.Unary(a.Op, x, 0, y); err != nil {
		return nil, nil, err
	}
	return y, shape, nil
}

// Backward implements Layer: dx = g * op'(x) on the host.
func (a *Activation) Backward(g *sdk.Tensor, needDX bool) (*sdk.Tensor, error) {
	if !needDX {
		return nil, nil
	}
	if a.x == nil {
		return nil, fmt.Errorf("nn: activation backward before forward")
	}
	dx, err := a.dx.get(a.shape...)
	if err != nil {
		return nil, err
	}
	return sdk.UnaryGrad(a.Op, a.x, g, 0, dx)
}

// Params implements Layer.
func (a *Activation) Params() []*Param { return nil }

// Free implements Layer.
func (a *Activation) Free() { a.y.free(); a.dx.free() }

// Sequential chains layers.
type Sequential struct {
	Layers []Layer
	params []*Param
}

// NewSequential chains layers and names their parameters "<index>.<name>".
func NewSequential(layers ...Layer) *Sequential {
	s := &Sequential{Layers: layers}
	for i, l := range layers {
		for _, p := range l.Params() {
			p.Name = fmt.Sprintf("%d.%s", i, p.Name)
			s.params = append(s.params, p)
		}
	}
	return s
}

// MLP builds Linear layers of the given sizes (sizes[0] inputs, last
// outputs) with hidden activations between them and none after the last
// (losses take logits). Hidden weights use He init for ReLU and Xavier
// otherwise; the output layer uses Xavier.
func MLP(sizes []int, hidden func() *Activation, seed uint64) (*Sequential, error) {
	if len(sizes) < 2 {
		return nil, fmt.Errorf("nn: MLP needs at least input and output sizes, got %v", sizes)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	var layers []Layer
	fail := func(err error) (*Sequential, error) {
		for _, l := range layers {
			l.Free()
		}
		return nil, err
	}
	for i := 0; i+1 < len(sizes); i++ {
		last := i+2 == len(sizes)
		init := Xavier
		var act *Activation
		if !last {
			act = hidden()
			if act.Op == sdk.OpReLU {
				init = He
			}
		}
		l, err := NewLinear(sizes[i], sizes[i+1], init, rng)
		if err != nil {
			return fail(err)
		}
		layers = append(layers, l)
		if act != nil {
			layers = append(layers, act)
		}
	}
	return NewSequential(layers...), nil
}

// Params returns the trainable parameters in order.
func (s *Sequential) Params() []*Param { return s.params }

// Forward runs the network on x of shape [batch, in]. The result is owned by
// the last layer.
func (s *Sequential) Forward(x *sdk.Tensor, shape []int) (*sdk.Tensor, []int, error) {
	var err error
	for i, l := range s.Layers {
		if x, shape, err = l.Forward(x, shape); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return x, shape, nil
}

// Backward propagates dLoss/dOutput through the network, filling every
// parameter's gradient.
func (s *Sequential) Backward(g *sdk.Tensor) error {
	var err error
	for i := len(s.Layers) - 1; i >= 0; i-- {
		if g, err = s.Layers[i].Backward(g, i > 0); err != nil {
			return fmt.Errorf("layer %d backward: %w", i, err)
		}
	}
	return nil
}

// InputSize is the feature count of the first Linear layer (0 if none).
func (s *Sequential) InputSize() int {
	for _, l := range s.Layers {
		if ln, ok := l.(*Linear); ok {
			return ln.In
		}
	}
	return 0
}

// OutputSize is the output count of the last Linear layer (0 if none).
func (s *Sequential) OutputSize() int {
	for i := len(s.Layers) - 1; i >= 0; i-- {
		if ln, ok := s.Layers[i].(*Linear); ok {
			return ln.Out
		}
	}
	return 0
}

// Free releases every host tensor of the network.
func (s *Sequential) Free() {
	for _, l := range s.Layers {
		l.Free()
	}
}
