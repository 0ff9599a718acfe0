package federation

import (
	"context"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
)

// Settings are a round's training settings, which the hub sends with every
// task and a Trainer receives (docs/ABI.md "train"). In HubConfig and
// SimConfig the zero value of each field is its default.
type Settings struct {
	// LR is the devices' learning rate (0.05).
	LR float64 `cbor:"lr"`
	// Epochs over the local data per round (1).
	Epochs uint64 `cbor:"epochs"`
	// BatchSize of local training (32).
	BatchSize uint64 `cbor:"batch_size"`
	// Mu is FedProx's proximal weight (a hub with a built-in strategy
	// sets it from the strategy: fedprox's StrategyConfig.Mu, else 0).
	Mu float64 `cbor:"mu"`
	// Seed of the devices' shuffles.
	Seed uint64 `cbor:"seed"`
	// Mode is what a device sends back: "weights" (its trained model) or
	// "gradient" (fedsgd). The hub sets it from its strategy.
	Mode string `cbor:"mode"`
	// DP asks the training module for patient-level DP-SGD. Only a
	// device's own DP-SGD privacy mode sets it: a device drops any DP the
	// hub sends, so HubConfig and SimConfig leave it nil.
	DP *DPSettings `cbor:"dp,omitempty"`
}

// DPSettings are the DP-SGD settings of a round's training (docs/ABI.md
// "settings.dp"): Steps steps, each on a Poisson sample of the device's
// units of privacy (patients) at SamplingRate, every unit's gradient
// clipped to L2 norm Clip, and Gaussian noise of std NoiseMultiplier*Clip
// added to the clipped sum.
type DPSettings struct {
	Clip            float64 `cbor:"clip"`
	NoiseMultiplier float64 `cbor:"noise_multiplier"`
	SamplingRate    float64 `cbor:"sampling_rate"`
	Steps           uint64  `cbor:"steps"`
}

func (s Settings) internal() wire.Settings {
	w := wire.Settings{LR: s.LR, Epochs: s.Epochs, BatchSize: s.BatchSize, Mu: s.Mu, Seed: s.Seed, Mode: s.Mode}
	if s.DP != nil {
		dp := wire.DPSettings(*s.DP)
		w.DP = &dp
	}
	return w
}

func fromSettings(w wire.Settings) Settings {
	s := Settings{LR: w.LR, Epochs: w.Epochs, BatchSize: w.BatchSize, Mu: w.Mu, Seed: w.Seed, Mode: w.Mode}
	if w.DP != nil {
		dp := DPSettings(*w.DP)
		s.DP = &dp
	}
	return s
}

// Dataset is a device's local data in the ABI's form (docs/ABI.md
// "Dataset"): X is f32 [n, features]; Y is f32 [n] or [n, k], or i32 [n]
// class indices.
type Dataset struct {
	X Tensor `cbor:"x"`
	Y Tensor `cbor:"y"`
	// Groups (optional), i32 [n]: each row's unit of privacy, dense ids
	// 0..units-1 (all of one patient's readings share one). The DP-SGD
	// modes clip per unit; absent, every row is its own unit.
	Groups *Tensor `cbor:"groups,omitempty"`
}

func (d Dataset) internal() train.Dataset {
	t := train.Dataset{X: model.Tensor(d.X), Y: model.Tensor(d.Y)}
	if d.Groups != nil {
		g := model.Tensor(*d.Groups)
		t.Groups = &g
	}
	return t
}

func fromDataset(d train.Dataset) Dataset {
	t := Dataset{X: Tensor(d.X), Y: Tensor(d.Y)}
	if d.Groups != nil {
		g := Tensor(*d.Groups)
		t.Groups = &g
	}
	return t
}

// TrainInput is what a Trainer receives: the `train` entrypoint's input.
type TrainInput struct {
	Model    Model    `cbor:"model"`
	Round    uint64   `cbor:"round"`
	Settings Settings `cbor:"settings"`
	Data     Dataset  `cbor:"data"`
}

// TrainOutput is a Trainer's result: the trained model (with the global
// model's layout), the number of examples it was trained on and optional
// metrics ("loss", "accuracy"). The hub bounds how much NumExamples may
// weigh (HubConfig.WeightRatio): it is the device's own claim.
type TrainOutput struct {
	Model       Model              `cbor:"model"`
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// EvalInput is what an Evaluator receives: a model and held-out data.
type EvalInput struct {
	Model Model   `cbor:"model"`
	Data  Dataset `cbor:"data"`
}

// EvalOutput is an Evaluator's result: metrics ("loss" required where a
// hub scores models with it, "accuracy" optional) and the example count.
type EvalOutput struct {
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// Trainer trains the global model on a device's local data. WasmTrainer
// runs a module's `train` entrypoint; MLP is a pure-Go one.
type Trainer interface {
	Train(ctx context.Context, in TrainInput) (TrainOutput, error)
}

// Evaluator scores a model on data. WasmTrainer runs a module's `evaluate`
// entrypoint; MLP is a pure-Go one.
type Evaluator interface {
	Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error)
}

// Caller runs a Wasm entrypoint on CBOR bytes; a *runtime.Module is one.
type Caller interface {
	Call(ctx context.Context, entry string, in []byte) ([]byte, error)
}

// TrainModule is a Caller whose idle instances can be closed; a
// *runtime.Module is one.
type TrainModule interface {
	Caller
	Drain()
}

// WasmTrainer is the Trainer and Evaluator of a module exporting `train`
// and `evaluate` (docs/ABI.md). It checks the module's output, which it
// does not trust: a trained model must decode, validate and have the
// global model's layout; non-finite metrics are dropped. After every call
// it drains the module's idle instances, so an idle device holds no
// instance memory, unless KeepWarm is set.
type WasmTrainer struct {
	Mod      TrainModule
	KeepWarm bool
	// Dataset names the device's data to the runtime on train calls, so
	// the module's privacy releases (DP-SGD) are charged to that dataset's
	// budget in the runtime's ledger. Mod must then also have CallWith (a
	// *runtime.Module does).
	Dataset string
}

func (w *WasmTrainer) internal() *train.Wasm {
	return &train.Wasm{Mod: w.Mod, KeepWarm: w.KeepWarm, Dataset: w.Dataset}
}

// Train runs the module's `train` entrypoint.
func (w *WasmTrainer) Train(ctx context.Context, in TrainInput) (TrainOutput, error) {
	out, err := w.internal().Train(ctx, in.internal())
	return fromTrainOutput(out), err
}

// Evaluate runs the module's `evaluate` entrypoint.
func (w *WasmTrainer) Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error) {
	out, err := w.internal().Evaluate(ctx, in.internal())
	return EvalOutput(out), err
}

func (in TrainInput) internal() train.Input {
	return train.Input{Model: in.Model.internal(), Round: in.Round, Settings: in.Settings.internal(), Data: in.Data.internal()}
}

func (in EvalInput) internal() train.EvalInput {
	return train.EvalInput{Model: in.Model.internal(), Data: in.Data.internal()}
}

func fromTrainOutput(o train.Output) TrainOutput {
	return TrainOutput{Model: fromModel(o.Model), NumExamples: o.NumExamples, Metrics: o.Metrics}
}

// trainer converts t at the package boundary: the package's own trainers
// to their implementation, any other through an adapter.
func trainer(t Trainer) train.Trainer {
	switch t := t.(type) {
	case nil:
		return nil
	case *WasmTrainer:
		if t == nil {
			return nil
		}
		return t.internal()
	case MLP:
		return t.internal()
	}
	return trainerAdapter{t}
}

type trainerAdapter struct{ t Trainer }

func (a trainerAdapter) Train(ctx context.Context, in train.Input) (train.Output, error) {
	out, err := a.t.Train(ctx, TrainInput{Model: fromModel(in.Model), Round: in.Round, Settings: fromSettings(in.Settings), Data: fromDataset(in.Data)})
	return train.Output{Model: out.Model.internal(), NumExamples: out.NumExamples, Metrics: out.Metrics}, err
}

// evaluator converts e at the package boundary, as trainer does.
func evaluator(e Evaluator) train.Evaluator {
	switch e := e.(type) {
	case nil:
		return nil
	case *WasmTrainer:
		if e == nil {
			return nil
		}
		return e.internal()
	case MLP:
		return e.internal()
	}
	return evaluatorAdapter{e}
}

type evaluatorAdapter struct{ e Evaluator }

func (a evaluatorAdapter) Evaluate(ctx context.Context, in train.EvalInput) (train.EvalOutput, error) {
	out, err := a.e.Evaluate(ctx, EvalInput{Model: fromModel(in.Model), Data: fromDataset(in.Data)})
	return train.EvalOutput(out), err
}
