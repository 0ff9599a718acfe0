package federation

import (
	"context"
	"log/slog"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/train"
)

// SimConfig configures Simulate. The zero value of each field is its
// default (in parentheses); a negative one is an error.
type SimConfig struct {
	// Devices simulated (8) and Rounds to run (10).
	Devices int
	Rounds  int
	// Fraction of the devices sampled per round (1); a round waits for a
	// full sample.
	Fraction float64
	// Strategy selects a built-in strategy (fedavg); StrategyImpl, when
	// set, replaces it (a WasmStrategy).
	Strategy     StrategyConfig
	StrategyImpl Strategy
	// Settings of the devices' training (lr 0.05, 1 epoch, batch 32).
	Settings Settings
	// Data is the data set (Vitals when nil); Skew its non-IID label skew
	// across devices (0: IID; 1: Dirichlet alpha = 1). Shards, when set,
	// gives each device's training rows explicitly (one slice of row
	// indices into Data.TrainY per device) instead.
	Data   *Data
	Skew   float64
	Shards [][]int
	// Hidden is the hidden width of the default model, an MLP (16);
	// Linear drops the hidden layer (softmax regression; Hidden must then
	// be 0). Initial replaces the default model.
	Hidden  int
	Linear  bool
	Initial *Model
	// Deadline (30s) and Quorum (0.5) of each round, as in HubConfig.
	Deadline time.Duration
	Quorum   float64
	// Seed makes the run deterministic: data, shards, model, sampling.
	Seed uint64
	// NewTrainer builds device i's trainer (the pure-Go MLP when nil),
	// such as a WasmTrainer over a training module.
	NewTrainer func(i int) (Trainer, error)
	// Evaluator scores the global model on the test split at the hub
	// (the MLP when nil).
	Evaluator Evaluator
	// F32Labels sends labels as f32 [n] (binary single-logit modules such
	// as modules/risk-train) instead of i32 class indices.
	F32Labels bool
	// Reference also trains a central model on all training rows for the
	// same number of epochs, with ReferenceTrainer (the MLP when nil), and
	// evaluates it with Evaluator.
	Reference        bool
	ReferenceTrainer Trainer
	// Attack makes some devices Byzantine; Fault kills some mid-round.
	Attack Attack
	Fault  Fault
	// PrivacyMode runs every round in a built-in privacy mode (ModeNames)
	// configured by Privacy, whose zero fields default from the
	// simulation: Population = the device ids, SamplingRate = the hub's
	// planned rate, Rounds = Rounds.
	PrivacyMode string
	Privacy     ModeConfig
	// DataDir for the embedded hub's JetStream files (a temporary
	// directory, removed after, when empty).
	DataDir string
	// OnRound is called after every round.
	OnRound func(Progress)
	// OnHub, when set, is called with the simulation's hub once it has
	// started, before the first round (a dashboard on the demo's hub).
	OnHub func(*Hub)
	// MaxFailedRounds stops the simulation with an error after this many
	// consecutive failed rounds (3).
	MaxFailedRounds int
	// Logger receives the hub's and devices' events (slog.Default() when
	// nil).
	Logger *slog.Logger
	// ChunkSize of the devices' update messages (256 KiB).
	ChunkSize int
}

// Attack makes a fraction of the simulated devices Byzantine.
type Attack struct {
	// Fraction of the devices (the first ones by index).
	Fraction float64
	// Kind is "scale" (global + Scale*(w-global)) or "signflip"
	// (global - (w-global)).
	Kind string
	// Scale for "scale" (100).
	Scale float64
}

// Fault kills simulated devices in the middle of a round.
type Fault struct {
	// Round (1-based) during which Devices devices (the last ones by
	// index) are killed.
	Round   int
	Devices int
}

// Progress is Simulate's report after each round.
type Progress struct {
	RoundReport
	// Index is the number of completed rounds so far, Total the configured
	// rounds.
	Index, Total int
	// Loss and Accuracy of the hub's evaluation (or the devices' mean).
	Loss     float64
	Accuracy float64
	// BytesMoved so far: tasks, models, updates and mode steps.
	BytesMoved uint64
	// StepBytes: this round's bytes of the privacy mode's protocol steps
	// (included in BytesMoved).
	StepBytes uint64 `json:"step_bytes,omitempty"`
	// Privacy is the privacy mode's state after the round (PrivacyMode).
	Privacy *ModeStatus `json:"privacy,omitempty"`
}

// Summary is Simulate's result.
type Summary struct {
	Rounds   int    `json:"rounds"`
	Devices  int    `json:"devices"`
	Params   int    `json:"params"`
	Strategy string `json:"strategy"`
	// Accuracy and Loss of the last completed round; BestAccuracy of any.
	Accuracy     float64 `json:"accuracy"`
	Loss         float64 `json:"loss"`
	BestAccuracy float64 `json:"best_accuracy"`
	// ReferenceAccuracy and ReferenceLoss of the central reference
	// (SimConfig.Reference).
	ReferenceAccuracy float64       `json:"reference_accuracy,omitempty"`
	ReferenceLoss     float64       `json:"reference_loss,omitempty"`
	BytesMoved        uint64        `json:"bytes_moved"`
	Duration          time.Duration `json:"duration_ns"`
	Reports           []Progress    `json:"reports"`
	Privacy           *ModeStatus   `json:"privacy,omitempty"`
	// Final is the global model after the last round.
	Final Model `json:"-"`
}

// RoundsTo is the first completed round whose accuracy reached target (0
// if none).
func (s *Summary) RoundsTo(target float64) int {
	for _, p := range s.Reports {
		if p.Status == "completed" && p.Accuracy >= target {
			return p.Index
		}
	}
	return 0
}

// Simulate runs an embedded hub and cfg.Devices devices in one process,
// over in-process NATS connections, until cfg.Rounds rounds complete,
// calling cfg.OnRound after each. It returns when every goroutine it
// started has exited.
func Simulate(ctx context.Context, cfg SimConfig) (Summary, error) {
	ic := sim.Config{
		Devices: cfg.Devices, Rounds: cfg.Rounds, Fraction: cfg.Fraction, Strategy: strategy.Config(cfg.Strategy),
		StrategyImpl: internalStrategy(cfg.StrategyImpl), Settings: cfg.Settings.internal(),
		Data: (*sim.Data)(cfg.Data), Skew: cfg.Skew, Shards: cfg.Shards, Hidden: cfg.Hidden, Linear: cfg.Linear,
		Initial: modelPtr(cfg.Initial), Deadline: cfg.Deadline, Quorum: cfg.Quorum, Seed: cfg.Seed,
		Evaluator: evaluator(cfg.Evaluator), F32Labels: cfg.F32Labels,
		Reference: cfg.Reference, ReferenceTrainer: trainer(cfg.ReferenceTrainer),
		Attack: sim.Attack(cfg.Attack), Fault: sim.Fault(cfg.Fault),
		PrivacyMode: cfg.PrivacyMode, Privacy: modes.Config(cfg.Privacy), DataDir: cfg.DataDir,
		MaxFailedRounds: cfg.MaxFailedRounds, Logger: cfg.Logger, ChunkSize: cfg.ChunkSize,
	}
	if f := cfg.NewTrainer; f != nil {
		ic.NewTrainer = func(i int) (train.Trainer, error) {
			t, err := f(i)
			return trainer(t), err
		}
	}
	if f := cfg.OnRound; f != nil {
		ic.OnRound = func(p sim.Progress) { f(fromProgress(p)) }
	}
	if f := cfg.OnHub; f != nil {
		ic.OnHub = func(h *hub.Hub) { f(&Hub{h: h}) }
	}
	s, err := sim.Run(ctx, ic)
	out := Summary{
		Rounds: s.Rounds, Devices: s.Devices, Params: s.Params, Strategy: s.Strategy, Accuracy: s.Accuracy,
		Loss: s.Loss, BestAccuracy: s.BestAccuracy,
		ReferenceAccuracy: s.ReferenceAccuracy, ReferenceLoss: s.ReferenceLoss, BytesMoved: s.BytesMoved,
		Duration: s.Duration, Privacy: fromStatus(s.Privacy), Final: fromModel(s.Final),
	}
	if s.Reports != nil {
		out.Reports = make([]Progress, len(s.Reports))
		for i, p := range s.Reports {
			out.Reports[i] = fromProgress(p)
		}
	}
	return out, err
}

func fromProgress(p sim.Progress) Progress {
	return Progress{RoundReport: fromReport(p.Report), Index: p.Index, Total: p.Total, Loss: p.Loss, Accuracy: p.Accuracy,
		BytesMoved: p.BytesMoved, StepBytes: p.StepBytes, Privacy: fromStatus(p.Privacy)}
}

func fromStatus(s *modes.Status) *ModeStatus {
	if s == nil {
		return nil
	}
	st := ModeStatus(*s)
	return &st
}

// Data is a classification data set split into a training and a test
// split, features row-major.
type Data struct {
	Name string
	// Features per row; Classes of the integer labels.
	Features, Classes int
	TrainX            []float32 // [n, Features]
	TrainY            []int32
	TestX             []float32
	TestY             []int32
	// FeatureNames, when known.
	FeatureNames []string
	// TrainGroups (optional, len(TrainY)) is each training row's unit of
	// privacy, such as its patient (any int32 ids; rows of one unit share
	// one). The DP-SGD modes clip per unit; without it every row is its
	// own unit.
	TrainGroups []int32
}

// TrainDataset is the training split as a Dataset, its labels f32 [n]
// when f32Labels (binary single-logit modules such as modules/risk-train)
// or i32 class indices.
func (d *Data) TrainDataset(f32Labels bool) Dataset {
	return fromDataset((*sim.Data)(d).TrainDataset(f32Labels))
}

// Test is the held-out split as a Dataset with i32 class labels, as a
// HubEvaluator reads it (DatasetEvaluator).
func (d *Data) Test() Dataset { return fromDataset((*sim.Data)(d).Test()) }

// Vitals returns about n readings of generated patient vitals (fennec's
// one generator, which the demo and `fennec vitals` use) as a Data held
// out by patient, standardised; deterministic for a seed (docs/VITALS.md).
func Vitals(n int, seed uint64) *Data { return (*Data)(sim.Vitals(n, seed)) }

// LoadCSV reads a numeric CSV whose last column is the integer class
// label (a first line that is not numbers is skipped as a header), holds
// out testFrac of the rows as the test split and standardises the
// features with the training split's statistics; testFrac 0 keeps every
// row for training, unscaled. Errors name the file and line.
func LoadCSV(path string, testFrac float64, seed uint64) (*Data, error) {
	d, err := sim.LoadCSV(path, testFrac, seed)
	return (*Data)(d), err
}

// LoadFashion reads Fashion-MNIST (IDX, gzip) from dir, pixels scaled to
// [0, 1]; ntrain and ntest limit the rows (0: all).
func LoadFashion(dir string, ntrain, ntest int) (*Data, error) {
	d, err := sim.LoadFashion(dir, ntrain, ntest)
	return (*Data)(d), err
}

// MLP is a pure-Go softmax classifier with one ReLU hidden layer of
// Hidden units, or none (Hidden 0: softmax regression), trained by
// minibatch SGD on cross-entropy (with FedProx's term when Settings.Mu >
// 0). It is a Trainer and an Evaluator: the simulations' devices and
// central reference. Its tensors are named as sdk/nn names them (0.weight,
// 0.bias, 2.weight, 2.bias), so the Wasm training modules train its
// models as they are.
type MLP struct{ In, Hidden, Out int }

func (n MLP) internal() sim.MLP { return sim.MLP(n) }

// Init is the model the network starts from: He-initialised weights and
// zero biases with a hidden layer, all zeros without; deterministic for a
// seed.
func (n MLP) Init(seed uint64) Model { return fromModel(n.internal().Init(seed)) }

// Params is the network's parameter count.
func (n MLP) Params() int { return n.internal().Params() }

// Train trains in.Model on in.Data with in.Settings.
func (n MLP) Train(ctx context.Context, in TrainInput) (TrainOutput, error) {
	out, err := n.internal().Train(ctx, in.internal())
	return fromTrainOutput(out), err
}

// Evaluate reports the "loss" and "accuracy" of in.Model on in.Data.
func (n MLP) Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error) {
	out, err := n.internal().Evaluate(ctx, in.internal())
	return EvalOutput(out), err
}

// Shards splits the training rows over n devices: each shard lists row
// indices into TrainX/TrainY. skew 0 is IID (a random equal split); skew > 0
// draws each class's share per device from a Dirichlet(1/skew) distribution
// (larger skew, more label imbalance). Every device gets at least one row;
// the same seed gives the same split.
func (d *Data) Shards(n int, skew float64, seed uint64) ([][]int, error) {
	return (*sim.Data)(d).Shards(n, skew, seed)
}

// SimDeviceID is the id Simulate gives its device i (0-based), for a
// caller that runs more on the same devices (the demo's rollouts).
func SimDeviceID(i int) string { return sim.DeviceID(i) }
