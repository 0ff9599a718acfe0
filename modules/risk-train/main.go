// Command risk-train is the local training module of federated rounds
// (entrypoints "train" and "evaluate", docs/ABI.md "Shared CBOR
// structures"). It trains a deterioration-risk classifier over the 14
// vitals-preprocess features (the seven z-normalised vitals hr, sbp, dbp,
// spo2, rr, temp, glucose; oxygen and not-alert; five changes from the
// patient's baseline) with binary cross-entropy on logits, using sdk/nn
// and Adam. With settings.dp it trains with patient-level DP-SGD through
// the host's fennec_privacy dp_sgd_begin/dp_sgd_step (nn.TrainDPSGD).
//
// The model is an MLP whose tensors are (weight [in, out], bias [out])
// pairs with ReLU between layers and one output logit; logistic regression
// is the one-layer case. A train call with an empty model starts from an
// MLP F-16-1 initialised from settings.seed, where F is the width of the
// data's x (14 for the vitals; any width works, e.g. WDBC's 30 features).
package main

import (
	"fmt"
	"slices"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/nn"
)

// Features is the model's input width; Hidden the default hidden width.
const (
	Features = 14
	Hidden   = 16
)

//go:wasmexport train
func train(n int32) int32 { return sdk.ServeCBOR(n, handleTrain) }

//go:wasmexport evaluate
func evaluate(n int32) int32 { return sdk.ServeCBOR(n, handleEvaluate) }

// kept is the network of the last call, with its host tensors: a warm,
// pooled instance serves round after round of the same model, so a model of
// the same tensor names and shapes is loaded into it (by the Trainer)
// instead of a new network being built and its buffers remade every call.
// Handles live as long as the instance (docs/ABI.md); a trap discards the
// instance, and kept with it.
var kept *nn.Sequential

// network returns the model's network (kept when it fits), or a fresh MLP
// over the data's feature width when the model is empty.
func network(m *sdk.Model, seed uint64, data *sdk.Dataset) (*nn.Sequential, error) {
	features := Features
	if len(data.X.Shape) == 2 && data.X.Shape[1] > 0 {
		features = int(data.X.Shape[1])
	}
	if kept != nil && len(m.Tensors) > 0 && fits(kept, m) && kept.InputSize() == features && kept.OutputSize() == 1 {
		return kept, nil
	}
	var net *nn.Sequential
	var err error
	if len(m.Tensors) == 0 {
		net, err = nn.MLP([]int{features, Hidden, 1}, nn.ReLU, seed)
	} else {
		net, err = nn.FromModel(m, nn.ReLU)
	}
	if err != nil {
		return nil, err
	}
	if net.InputSize() != features || net.OutputSize() != 1 {
		net.Free()
		return nil, fmt.Errorf("model %q maps %d inputs to %d outputs, want %d to 1", m.Name, net.InputSize(), net.OutputSize(), features)
	}
	if kept != nil {
		kept.Free()
	}
	kept = net
	return net, nil
}

// fits reports whether m has exactly net's parameters: the same names, f32,
// the same shapes (what nn.Sequential.Load accepts).
func fits(net *nn.Sequential, m *sdk.Model) bool {
	ps := net.Params()
	if len(ps) != len(m.Tensors) {
		return false
	}
	for _, p := range ps {
		td := m.Tensor(p.Name)
		if td == nil || td.DType != sdk.F32 {
			return false
		}
		dims, err := td.Dims()
		if err != nil || !slices.Equal(dims, p.Shape) {
			return false
		}
	}
	return true
}

func handleTrain(in sdk.TrainInput) (sdk.TrainOutput, error) {
	net, err := network(&in.Model, in.Settings.Seed, &in.Data)
	if err != nil {
		return sdk.TrainOutput{}, err
	}
	if in.Model.Name == "" {
		in.Model.Name = "risk-mlp"
	}
	t := nn.Trainer{Net: net, Loss: nn.BinaryCrossEntropy,
		Optimizer: func(s sdk.Settings) nn.Optimizer { return &nn.Adam{LR: float32(s.LR)} }}
	if in.Settings.DP != nil {
		// Patient-level DP-SGD: the host samples the patients, computes,
		// clips and noises their gradients, and charges the budget.
		return t.TrainDPSGD(&in)
	}
	return t.Train(&in)
}

func handleEvaluate(in sdk.EvalInput) (sdk.EvalOutput, error) {
	if len(in.Model.Tensors) == 0 {
		return sdk.EvalOutput{}, fmt.Errorf("evaluate: the model has no tensors")
	}
	net, err := network(&in.Model, 0, &in.Data)
	if err != nil {
		return sdk.EvalOutput{}, err
	}
	t := nn.Trainer{Net: net, Loss: nn.BinaryCrossEntropy}
	return t.Evaluate(&in)
}

func main() {}
