package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
)

// MLP is a pure-Go softmax classifier with zero or one ReLU hidden layer,
// trained by minibatch SGD on softmax cross-entropy (FedProx term when
// settings.mu > 0). It is the central reference the simulations compare
// against and a test trainer; devices in production run the Wasm module.
// Model tensors follow sdk/nn's naming, so the same model trains in the
// Wasm module: 0.weight [in, h], 0.bias [h], 2.weight [h, out], 2.bias
// [out] (hidden), or 0.weight [in, out], 0.bias [out] (Hidden == 0).
type MLP struct{ In, Hidden, Out int }

// initStream is the PCG stream of Init's weights (its seed is the
// caller's), so that a model is the same for a seed wherever it is made.
const initStream = 7

// Init returns the model the network starts from, the one MLP initialiser
// of the project (the simulations, `fennec hub --init-mlp` and the demo
// use it): with a hidden layer, He-initialised weights (normal, sd
// sqrt(2/fan_in)) and zero biases; without one (softmax or logistic
// regression), all zeros. Tensors are named as sdk/nn names them, so the
// Wasm training modules take the model as it is.
func (n MLP) Init(seed uint64) model.Model {
	r := rand.New(rand.NewPCG(seed, initStream))
	he := func(rows, cols int) []float32 {
		v := make([]float32, rows*cols)
		s := math.Sqrt(2 / float64(rows))
		for i := range v {
			v[i] = float32(r.NormFloat64() * s)
		}
		return v
	}
	layer := func(index, in, out int, w []float32) []model.Tensor {
		name := fmt.Sprint(index)
		return []model.Tensor{
			model.F32Tensor(name+".weight", []uint64{uint64(in), uint64(out)}, w),
			model.F32Tensor(name+".bias", []uint64{uint64(out)}, make([]float32, out)),
		}
	}
	if n.Hidden == 0 {
		return model.Model{Name: "softmax", Tensors: layer(0, n.In, n.Out, make([]float32, n.In*n.Out))}
	}
	// sdk/nn numbers the layers of Sequential{Linear, ReLU, Linear}: 0, 2.
	return model.Model{Name: "mlp", Tensors: append(layer(0, n.In, n.Hidden, he(n.In, n.Hidden)),
		layer(2, n.Hidden, n.Out, he(n.Hidden, n.Out))...)}
}

// Params is the parameter count.
func (n MLP) Params() int {
	if n.Hidden == 0 {
		return n.In*n.Out + n.Out
	}
	return n.In*n.Hidden + n.Hidden + n.Hidden*n.Out + n.Out
}

type layer struct{ w, b []float32 }

func (n MLP) split(v []float32) []layer {
	if n.Hidden == 0 {
		return []layer{{v[:n.In*n.Out], v[n.In*n.Out:]}}
	}
	a := n.In * n.Hidden
	b := a + n.Hidden
	c := b + n.Hidden*n.Out
	return []layer{{v[:a], v[a:b]}, {v[b:c], v[c:]}}
}

func (n MLP) dims() [][2]int {
	if n.Hidden == 0 {
		return [][2]int{{n.In, n.Out}}
	}
	return [][2]int{{n.In, n.Hidden}, {n.Hidden, n.Out}}
}

// data extracts x and integer labels.
func data(d train.Dataset, in int) ([]float32, []int32, error) {
	rows, err := d.Rows()
	if err != nil {
		return nil, nil, err
	}
	if int(d.X.Shape[1]) != in {
		return nil, nil, fmt.Errorf("mlp: %d features, model expects %d", d.X.Shape[1], in)
	}
	x, _ := d.X.Float32s()
	y := make([]int32, rows)
	switch d.Y.Dtype {
	case model.I32:
		for i := range y {
			y[i] = int32(uint32(d.Y.Data[4*i]) | uint32(d.Y.Data[4*i+1])<<8 | uint32(d.Y.Data[4*i+2])<<16 | uint32(d.Y.Data[4*i+3])<<24)
		}
	case model.F32:
		f, _ := d.Y.Float32s()
		if len(f) != rows {
			return nil, nil, errors.New("mlp: f32 labels must be [n]")
		}
		for i := range y {
			y[i] = int32(f[i])
		}
	default:
		return nil, nil, errors.New("mlp: labels must be i32 or f32")
	}
	return x, y, nil
}

// pass runs forward (and backward when grad != nil) on a batch, returning
// the summed loss and correct count. grad accumulates dLoss/dparams
// (summed over the batch).
func (n MLP) pass(p []layer, grad []layer, x []float32, y []int32, acts [][]float32) (loss float64, correct int) {
	bs := len(y)
	dims := n.dims()
	in := x
	for l, d := range dims {
		out := acts[l][:bs*d[1]]
		for i := 0; i < bs; i++ {
			o := out[i*d[1] : (i+1)*d[1]]
			copy(o, p[l].b)
			xi := in[i*d[0] : (i+1)*d[0]]
			for k, xv := range xi {
				if xv == 0 {
					continue
				}
				w := p[l].w[k*d[1] : (k+1)*d[1]]
				for j := range o {
					o[j] += xv * w[j]
				}
			}
			if l < len(dims)-1 {
				for j := range o {
					if o[j] < 0 {
						o[j] = 0
					}
				}
			}
		}
		in = out
	}
	last := len(dims) - 1
	k := dims[last][1]
	logits := acts[last][:bs*k]
	delta := acts[len(dims)][:bs*k]
	for i := 0; i < bs; i++ {
		z := logits[i*k : (i+1)*k]
		m := z[0]
		arg := 0
		for j, v := range z {
			if v > m {
				m, arg = v, j
			}
		}
		if int32(arg) == y[i] {
			correct++
		}
		var s float64
		for _, v := range z {
			s += math.Exp(float64(v - m))
		}
		lse := float64(m) + math.Log(s)
		yi := int(y[i])
		if yi >= 0 && yi < k {
			loss += lse - float64(z[yi])
		}
		if grad != nil {
			dz := delta[i*k : (i+1)*k]
			for j, v := range z {
				dz[j] = float32(math.Exp(float64(v) - lse))
			}
			if yi >= 0 && yi < k {
				dz[yi]--
			}
		}
	}
	if grad == nil {
		return
	}
	// backward
	for l := last; l >= 0; l-- {
		d := dims[l]
		var lin []float32
		if l == 0 {
			lin = x
		} else {
			lin = acts[l-1]
		}
		var dprev []float32
		if l > 0 {
			dprev = acts[len(dims)+1][:bs*d[0]]
			clear(dprev)
		}
		for i := 0; i < bs; i++ {
			dz := delta[i*d[1] : (i+1)*d[1]]
			for j, v := range dz {
				grad[l].b[j] += v
			}
			xi := lin[i*d[0] : (i+1)*d[0]]
			for kk, xv := range xi {
				g := grad[l].w[kk*d[1] : (kk+1)*d[1]]
				if dprev != nil && xv > 0 { // ReLU' of the hidden activation
					w := p[l].w[kk*d[1] : (kk+1)*d[1]]
					var s float32
					for j, v := range dz {
						g[j] += xv * v
						s += w[j] * v
					}
					dprev[i*d[0]+kk] = s
				} else if xv != 0 {
					for j, v := range dz {
						g[j] += xv * v
					}
				}
			}
		}
		if l > 0 {
			delta = append(delta[:0:0], dprev...)
		}
	}
	return
}

func (n MLP) buffers(bs int) [][]float32 {
	dims := n.dims()
	acts := make([][]float32, len(dims)+2)
	for l, d := range dims {
		acts[l] = make([]float32, bs*d[1])
	}
	acts[len(dims)] = make([]float32, bs*n.Out)
	acts[len(dims)+1] = make([]float32, bs*max(n.In, n.Hidden))
	return acts
}

// Train implements train.Trainer.
func (n MLP) Train(ctx context.Context, in train.Input) (train.Output, error) {
	x, y, err := data(in.Data, n.In)
	if err != nil {
		return train.Output{}, err
	}
	if in.Model.Params() != n.Params() {
		return train.Output{}, fmt.Errorf("mlp: model has %d parameters, expected %d", in.Model.Params(), n.Params())
	}
	global := in.Model.Flatten()
	v := append([]float32(nil), global...)
	g := make([]float32, len(v))
	p, gl := n.split(v), n.split(g)
	s := in.Settings
	bs := max(1, int(s.BatchSize))
	rows := len(y)
	acts := n.buffers(bs)
	idx := make([]int, rows)
	for i := range idx {
		idx[i] = i
	}
	r := rand.New(rand.NewPCG(s.Seed, uint64(rows)))
	xb := make([]float32, bs*n.In)
	yb := make([]int32, bs)
	var loss float64
	var correct, seen int
	if s.Mode == "gradient" {
		// One gradient at the global weights over all local data.
		for o := 0; o < rows; o += bs {
			e := min(o+bs, rows)
			l, c := n.pass(p, gl, x[o*n.In:e*n.In], y[o:e], acts)
			loss += l
			correct += c
		}
		for i := range g {
			g[i] /= float32(rows)
		}
		m, err := in.Model.WithVector(g, in.Model.Version)
		return train.Output{Model: m, NumExamples: uint64(rows),
			Metrics: map[string]float64{"loss": loss / float64(rows), "accuracy": float64(correct) / float64(rows)}}, err
	}
	lr := float32(s.LR)
	mu := float32(s.Mu)
	epochs := max(1, int(s.Epochs))
	for ep := 0; ep < epochs; ep++ {
		if ctx.Err() != nil {
			return train.Output{}, ctx.Err()
		}
		r.Shuffle(rows, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		loss, correct, seen = 0, 0, 0
		for o := 0; o < rows; o += bs {
			e := min(o+bs, rows)
			b := e - o
			for i := 0; i < b; i++ {
				copy(xb[i*n.In:(i+1)*n.In], x[idx[o+i]*n.In:(idx[o+i]+1)*n.In])
				yb[i] = y[idx[o+i]]
			}
			clear(g)
			l, c := n.pass(p, gl, xb[:b*n.In], yb[:b], acts)
			loss += l
			correct += c
			seen += b
			sc := lr / float32(b)
			for i := range v {
				gi := g[i] * sc
				if mu > 0 {
					gi += lr * mu * (v[i] - global[i])
				}
				v[i] -= gi
			}
		}
	}
	m, err := in.Model.WithVector(v, in.Model.Version)
	return train.Output{Model: m, NumExamples: uint64(rows),
		Metrics: map[string]float64{"loss": loss / float64(max(seen, 1)), "accuracy": float64(correct) / float64(max(seen, 1))}}, err
}

// Evaluate implements train.Evaluator.
func (n MLP) Evaluate(_ context.Context, in train.EvalInput) (train.EvalOutput, error) {
	x, y, err := data(in.Data, n.In)
	if err != nil {
		return train.EvalOutput{}, err
	}
	if in.Model.Params() != n.Params() {
		return train.EvalOutput{}, fmt.Errorf("mlp: model has %d parameters, expected %d", in.Model.Params(), n.Params())
	}
	p := n.split(in.Model.Flatten())
	const bs = 256
	acts := n.buffers(bs)
	var loss float64
	var correct int
	for o := 0; o < len(y); o += bs {
		e := min(o+bs, len(y))
		l, c := n.pass(p, nil, x[o*n.In:e*n.In], y[o:e], acts)
		loss += l
		correct += c
	}
	rows := float64(max(len(y), 1))
	return train.EvalOutput{NumExamples: uint64(len(y)), Metrics: map[string]float64{"loss": loss / rows, "accuracy": float64(correct) / rows}}, nil
}
