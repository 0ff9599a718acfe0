package nn

import (
	"fmt"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/privacy"
)

// TrainDPSGD runs a train call with patient-level DP-SGD
// (in.Settings.DP): the network must be a ReLU MLP with one output logit
// and the loss BinaryCrossEntropy. The host (fennec_privacy dp_sgd_begin)
// charges the call's dataset for the run's steps before the first, then
// for each step samples the units (in.Data.Groups; every row its own unit
// when absent), computes and clips each sampled unit's gradient and noises
// their sum (dp_sgd_step); the guest only applies the optimizer to the
// noisy gradient, which is post-processing. Metrics: "steps", "dp_units"
// and "dp_sampled" (units sampled over all steps).
func (t *Trainer) TrainDPSGD(in *sdk.TrainInput) (sdk.TrainOutput, error) {
	var out sdk.TrainOutput
	dps := in.Settings.DP
	if dps == nil {
		return out, fmt.Errorf("nn: TrainDPSGD without settings.dp")
	}
	if t.Loss != BinaryCrossEntropy {
		return out, fmt.Errorf("nn: DP-SGD needs the binary cross-entropy loss")
	}
	if dps.Steps < 1 || dps.Steps > 1<<20 {
		return out, fmt.Errorf("settings.dp.steps %d outside 1..2^20", dps.Steps)
	}
	for i, l := range t.Net.Layers {
		switch a := l.(type) {
		case *Linear:
			if i%2 != 0 {
				return out, fmt.Errorf("nn: DP-SGD needs alternating Linear and ReLU layers; layer %d is Linear", i)
			}
		case *Activation:
			if i%2 != 1 || a.Op != sdk.OpReLU || i == len(t.Net.Layers)-1 {
				return out, fmt.Errorf("nn: DP-SGD needs ReLU between Linear layers; layer %d is not", i)
			}
		default:
			return out, fmt.Errorf("nn: DP-SGD does not support layer %d (%T)", i, l)
		}
	}
	if t.Net.OutputSize() != 1 {
		return out, fmt.Errorf("nn: DP-SGD needs one output logit, the network has %d", t.Net.OutputSize())
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
	groups := make([]int32, ds.n)
	if g := in.Data.Groups; g != nil {
		gd, err := g.Dims()
		if err != nil || len(gd) != 1 || gd[0] != ds.n || g.DType != sdk.I32 {
			return out, fmt.Errorf("data.groups: want i32 [%d]", ds.n)
		}
		if groups, err = g.I32(); err != nil {
			return out, fmt.Errorf("data.groups: %w", err)
		}
	} else {
		for i := range groups {
			groups[i] = int32(i)
		}
	}
	var free []*sdk.Tensor
	defer func() {
		for _, x := range free {
			x.Free()
		}
	}()
	x, err := sdk.FromF32([]int{ds.n, ds.f}, ds.x)
	if err != nil {
		return out, err
	}
	free = append(free, x)
	y, err := sdk.FromF32([]int{ds.n}, ds.yf)
	if err != nil {
		return out, err
	}
	free = append(free, y)
	gt, err := sdk.New(sdk.I32, []int{ds.n}, nil)
	if err != nil {
		return out, err
	}
	free = append(free, gt)
	if err := gt.WriteBytes(i32Bytes(groups)); err != nil {
		return out, err
	}
	units, err := privacy.SGDBegin(gt, dps.Clip, dps.NoiseMultiplier, dps.SamplingRate, int(dps.Steps))
	if err != nil {
		return out, err
	}
	params := t.Net.Params()
	vals, grads := make([]*sdk.Tensor, len(params)), make([]*sdk.Tensor, len(params))
	for i, p := range params {
		if grads[i], err = p.grad.get(p.Shape...); err != nil {
			return out, err
		}
		vals[i] = p.Value
	}
	var opt Optimizer
	if t.Optimizer != nil {
		opt = t.Optimizer(in.Settings)
	} else {
		opt = &SGD{LR: float32(in.Settings.LR), Momentum: 0.9}
	}
	defer opt.Free()
	sampled := 0
	for step := uint64(0); step < dps.Steps; step++ {
		n, err := privacy.SGDStep(vals, x, y, grads)
		if err != nil {
			return out, fmt.Errorf("dp-sgd step %d: %w", step, err)
		}
		sampled += n
		if err := opt.Step(params); err != nil {
			return out, fmt.Errorf("dp-sgd step %d: %w", step, err)
		}
	}
	out.NumExamples = uint64(ds.n)
	out.Metrics = map[string]float64{"steps": float64(dps.Steps), "dp_units": float64(units), "dp_sampled": float64(sampled)}
	if out.Model, err = t.Net.ToModel(in.Model.Name, in.Model.Version); err != nil {
		return out, err
	}
	return out, nil
}
