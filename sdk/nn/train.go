package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/fennec-edge/fennec/sdk"
)

// Trainer implements the train and evaluate entrypoints of docs/ABI.md for
// a network.
type Trainer struct {
	Net  *Sequential
	Loss Loss
	// Optimizer makes the optimizer for one train call from its settings;
	// nil means SGD with momentum 0.9 at Settings.LR.
	Optimizer func(s sdk.Settings) Optimizer
	// EvalBatch is the batch size of Evaluate (default 1024).
	EvalBatch int
}

// Defaults applied to zero Settings fields.
const (
	DefaultLR        = 0.01
	DefaultEpochs    = 1
	DefaultBatchSize = 32
)

// dataset is a validated Dataset in guest memory with targets normalised to
// i32 [n] class indices (softmax CE) or f32 [n, out].
type dataset struct {
	n, f, out int
	x         []float32
	yi        []int32
	yf        []float32
}

func (t *Trainer) prepare(d *sdk.Dataset) (*dataset, error) {
	xd, err := d.X.Dims()
	if err != nil {
		return nil, fmt.Errorf("data.x: %w", err)
	}
	if len(xd) != 2 {
		return nil, fmt.Errorf("data.x: shape %v, want [n, features]", xd)
	}
	ds := &dataset{n: xd[0], f: xd[1], out: t.Net.OutputSize()}
	if ds.f != t.Net.InputSize() {
		return nil, fmt.Errorf("data.x: %d features, network takes %d", ds.f, t.Net.InputSize())
	}
	if ds.x, err = d.X.F32(); err != nil {
		return nil, fmt.Errorf("data.x: %w", err)
	}
	yd, err := d.Y.Dims()
	if err != nil {
		return nil, fmt.Errorf("data.y: %w", err)
	}
	if len(yd) == 0 || len(yd) > 2 || yd[0] != ds.n {
		return nil, fmt.Errorf("data.y: shape %v, want [%d] or [%d, k]", yd, ds.n, ds.n)
	}
	switch {
	case d.Y.DType == sdk.I32 && len(yd) == 1:
		yi, _ := d.Y.I32()
		if t.Loss == SoftmaxCrossEntropy {
			for i, c := range yi {
				if c < 0 || int(c) >= ds.out {
					return nil, fmt.Errorf("data.y[%d]: class %d outside 0..%d", i, c, ds.out-1)
				}
			}
			ds.yi = yi
		} else {
			if ds.out != 1 {
				return nil, fmt.Errorf("data.y: i32 [n] targets need a network with one output, not %d", ds.out)
			}
			ds.yf = make([]float32, ds.n)
			for i, c := range yi {
				ds.yf[i] = float32(c)
			}
		}
	case d.Y.DType == sdk.F32:
		yf, _ := d.Y.F32()
		k := 1
		if len(yd) == 2 {
			k = yd[1]
		}
		if t.Loss == SoftmaxCrossEntropy && k == 1 && ds.out > 1 {
			// f32 class labels: convert to indices.
			ds.yi = make([]int32, ds.n)
			for i, v := range yf {
				c := int32(v)
				if float32(c) != v || c < 0 || int(c) >= ds.out {
					return nil, fmt.Errorf("data.y[%d]: %v is not a class in 0..%d", i, v, ds.out-1)
				}
				ds.yi[i] = c
			}
		} else {
			if k != ds.out {
				return nil, fmt.Errorf("data.y: %d target columns, network has %d outputs", k, ds.out)
			}
			ds.yf = yf
		}
	default:
		return nil, fmt.Errorf("data.y: dtype %s shape %v not supported", d.Y.DType, yd)
	}
	return ds, nil
}

// batcher uploads minibatches into reused host tensors.
type batcher struct {
	ds       *dataset
	xs, ys   map[int]*buf
	xb, yb   []float32
	yib      []int32
	accLabel []int32
}

func newBatcher(ds *dataset) *batcher {
	return &batcher{ds: ds, xs: map[int]*buf{}, ys: map[int]*buf{}}
}

func (b *batcher) free() {
	for _, v := range b.xs {
		v.free()
	}
	for _, v := range b.ys {
		v.free()
	}
}

func bufFor(m map[int]*buf, n int) *buf {
	if m[n] == nil {
		m[n] = &buf{}
	}
	return m[n]
}

// load uploads rows idx and returns x [b, f] and the target tensor.
func (b *batcher) load(idx []int) (x, y *sdk.Tensor, err error) {
	ds, n := b.ds, len(idx)
	b.xb = b.xb[:0]
	for _, r := range idx {
		b.xb = append(b.xb, ds.x[r*ds.f:(r+1)*ds.f]...)
	}
	if x, err = bufFor(b.xs, n).get(n, ds.f); err != nil {
		return nil, nil, err
	}
	if err = x.Write(b.xb); err != nil {
		return nil, nil, err
	}
	if ds.yi != nil {
		b.yib = b.yib[:0]
		for _, r := range idx {
			b.yib = append(b.yib, ds.yi[r])
		}
		if y, err = bufFor(b.ys, n).getT(sdk.I32, n); err != nil {
			return nil, nil, err
		}
		err = y.WriteBytes(i32Bytes(b.yib))
		return x, y, err
	}
	b.yb = b.yb[:0]
	for _, r := range idx {
		b.yb = append(b.yb, ds.yf[r*ds.out:(r+1)*ds.out]...)
	}
	if y, err = bufFor(b.ys, n).get(n, ds.out); err != nil {
		return nil, nil, err
	}
	return x, y, y.Write(b.yb)
}

// correct counts right predictions of logits for rows idx.
func (t *Trainer) correct(logits *sdk.Tensor, idx []int, ds *dataset, am *buf, tmp *[]float32) (int, error) {
	n := len(idx)
	c := 0
	switch {
	case t.Loss == SoftmaxCrossEntropy:
		a, err := am.getT(sdk.I32, n)
		if err != nil {
			return 0, err
		}
		if _, err := sdk.ArgMax(logits, 1, a); err != nil {
			return 0, err
		}
		pred, err := a.ReadI32(nil)
		if err != nil {
			return 0, err
		}
		for i, r := range idx {
			label := int32(-1)
			if ds.yi != nil {
				label = ds.yi[r]
			} else {
				row := ds.yf[r*ds.out : (r+1)*ds.out]
				best := float32(-1)
				for j, v := range row {
					if v > best {
						best, label = v, int32(j)
					}
				}
			}
			if pred[i] == label {
				c++
			}
		}
		return c, nil
	case t.Loss == BinaryCrossEntropy:
		out, err := logits.Read(*tmp)
		if err != nil {
			return 0, err
		}
		*tmp = out
		for i, r := range idx {
			ok := true
			for j := 0; j < ds.out; j++ {
				if (out[i*ds.out+j] > 0) != (ds.yf[r*ds.out+j] >= 0.5) {
					ok = false
				}
			}
			if ok {
				c++
			}
		}
		return c, nil
	}
	return -1, nil // no accuracy for regression
}

// Train runs one train entrypoint call: load the model (an empty model keeps
// the network's initial weights), train for the settings' epochs of
// shuffled minibatches (FedProx when mu > 0), and return the updated model
// (or, in "gradient" mode, the gradient of one step over the whole local
// dataset) with the example count and metrics "loss" (mean training loss of
// the last epoch), "accuracy" (classification losses only) and "steps".
func (t *Trainer) Train(in *sdk.TrainInput) (sdk.TrainOutput, error) {
	var out sdk.TrainOutput
	s := in.Settings
	if s.LR == 0 {
		s.LR = DefaultLR
	}
	if s.Epochs == 0 {
		s.Epochs = DefaultEpochs
	}
	if s.BatchSize == 0 {
		s.BatchSize = DefaultBatchSize
	}
	if s.Mode == "" {
		s.Mode = "weights"
	}
	if s.Mode != "weights" && s.Mode != "gradient" {
		return out, fmt.Errorf("settings.mode %q: want \"weights\" or \"gradient\"", s.Mode)
	}
	if !(s.LR > 0) || !(s.Mu >= 0) || s.Epochs > 1e6 {
		return out, fmt.Errorf("settings: lr %v, mu %v, epochs %d out of range", s.LR, s.Mu, s.Epochs)
	}
	lossOp, err := t.Loss.op()
	if err != nil {
		return out, err
	}
	if len(in.Model.Tensors) > 0 {
		if err := t.Net.Load(&in.Model); err != nil {
			return out, err
		}
	}
	ds, err := t.prepare(&in.Data)
	if err != nil {
		return out, err
	}
	if ds.n == 0 {
		return out, fmt.Errorf("data: no examples")
	}
	bt := newBatcher(ds)
	defer bt.free()
	var grad, am buf
	defer grad.free()
	defer am.free()
	params := t.Net.Params()
	out.NumExamples = uint64(ds.n)
	out.Metrics = map[string]float64{}

	step := func(idx []int) (float32, error) {
		x, y, err := bt.load(idx)
		if err != nil {
			return 0, err
		}
		logits, shape, err := t.Net.Forward(x, []int{len(idx), ds.f})
		if err != nil {
			return 0, err
		}
		g, err := grad.get(shape...)
		if err != nil {
			return 0, err
		}
		loss, _, err := sdk.Loss(lossOp, logits, y, true, g)
		if err != nil {
			return 0, err
		}
		return loss, t.Net.Backward(g)
	}

	all := make([]int, ds.n)
	for i := range all {
		all[i] = i
	}
	if s.Mode == "gradient" {
		loss, err := step(all)
		if err != nil {
			return out, err
		}
		if out.Model, err = t.Net.GradModel(in.Model.Name, in.Model.Version); err != nil {
			return out, err
		}
		out.Metrics["loss"] = float64(loss)
		out.Metrics["steps"] = 1
		return out, nil
	}

	var global []*sdk.Tensor
	if s.Mu > 0 {
		defer func() {
			for _, g := range global {
				g.Free()
			}
		}()
		for _, p := range params {
			c, err := sdk.Copy(p.Value, nil)
			if err != nil {
				return out, err
			}
			global = append(global, c)
		}
	}
	var opt Optimizer
	if t.Optimizer != nil {
		opt = t.Optimizer(s)
	} else {
		opt = &SGD{LR: float32(s.LR), Momentum: 0.9}
	}
	defer opt.Free()

	rng := rand.New(rand.NewPCG(s.Seed, in.Round))
	bs := int(min(s.BatchSize, uint64(ds.n)))
	var steps int
	var tmp []float32
	for epoch := uint64(0); epoch < s.Epochs; epoch++ {
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		last := epoch+1 == s.Epochs
		var lossSum float64
		var right, counted int
		for lo := 0; lo < ds.n; lo += bs {
			idx := all[lo:min(lo+bs, ds.n)]
			loss, err := step(idx)
			if err != nil {
				return out, fmt.Errorf("epoch %d step %d: %w", epoch, steps, err)
			}
			if s.Mu > 0 {
				for i, p := range params {
					if err := sdk.Axpy(p.Grad(), p.Value, float32(s.Mu)); err != nil {
						return out, err
					}
					if err := sdk.Axpy(p.Grad(), global[i], float32(-s.Mu)); err != nil {
						return out, err
					}
				}
			}
			if last {
				lossSum += float64(loss) * float64(len(idx))
				// Accuracy of the last epoch, measured on the logits the
				// step computed (before its update).
				c, err := t.correct(t.lastOutput(), idx, ds, &am, &tmp)
				if err != nil {
					return out, err
				}
				if c >= 0 {
					right += c
					counted += len(idx)
				}
			}
			if err := opt.Step(params); err != nil {
				return out, fmt.Errorf("epoch %d step %d: %w", epoch, steps, err)
			}
			steps++
		}
		if last {
			out.Metrics["loss"] = lossSum / float64(ds.n)
			if counted > 0 {
				out.Metrics["accuracy"] = float64(right) / float64(counted)
			}
		}
	}
	out.Metrics["steps"] = float64(steps)
	if out.Model, err = t.Net.ToModel(in.Model.Name, in.Model.Version); err != nil {
		return out, err
	}
	return out, nil
}

// lastOutput is the tensor the last Forward returned.
func (t *Trainer) lastOutput() *sdk.Tensor {
	switch l := t.Net.Layers[len(t.Net.Layers)-1].(type) {
	case *Linear:
		return l.y.t
	case *Activation:
		return l.y.t
	}
	return nil
}

// Evaluate runs the evaluate entrypoint: the model's mean loss and accuracy
// (classification losses) over the data.
func (t *Trainer) Evaluate(in *sdk.EvalInput) (sdk.EvalOutput, error) {
	var out sdk.EvalOutput
	lossOp, err := t.Loss.op()
	if err != nil {
		return out, err
	}
	if len(in.Model.Tensors) > 0 {
		if err := t.Net.Load(&in.Model); err != nil {
			return out, err
		}
	}
	ds, err := t.prepare(&in.Data)
	if err != nil {
		return out, err
	}
	if ds.n == 0 {
		return out, fmt.Errorf("data: no examples")
	}
	bt := newBatcher(ds)
	defer bt.free()
	var am buf
	defer am.free()
	bs := t.EvalBatch
	if bs <= 0 {
		bs = 1024
	}
	idx := make([]int, 0, bs)
	var lossSum float64
	var right, counted int
	var tmp []float32
	for lo := 0; lo < ds.n; lo += bs {
		idx = idx[:0]
		for r := lo; r < min(lo+bs, ds.n); r++ {
			idx = append(idx, r)
		}
		x, y, err := bt.load(idx)
		if err != nil {
			return out, err
		}
		logits, _, err := t.Net.Forward(x, []int{len(idx), ds.f})
		if err != nil {
			return out, err
		}
		loss, _, err := sdk.Loss(lossOp, logits, y, false, nil)
		if err != nil {
			return out, err
		}
		lossSum += float64(loss) * float64(len(idx))
		c, err := t.correct(logits, idx, ds, &am, &tmp)
		if err != nil {
			return out, err
		}
		if c >= 0 {
			right += c
			counted += len(idx)
		}
	}
	out.NumExamples = uint64(ds.n)
	out.Metrics = map[string]float64{"loss": lossSum / float64(ds.n)}
	if counted > 0 {
		out.Metrics["accuracy"] = float64(right) / float64(counted)
	}
	return out, nil
}
