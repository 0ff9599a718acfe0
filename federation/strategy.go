package federation

import (
	"context"
	"slices"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
)

// Strategy turns a round's updates into the next global model; it is what
// a hub runs. NewStrategy returns a built-in one and WasmStrategy one
// that runs a module's `aggregate` entrypoint; a Go type with these
// methods is one too. Aggregate must modify neither global nor the
// updates, and returns the new global model with the global model's
// layout.
type Strategy interface {
	Name() string
	Aggregate(ctx context.Context, round uint64, global Model, updates []ModelUpdate) (Model, error)
}

// ModelUpdate is one device's update as a strategy receives it: the
// model it trained, its (bounded) example count and its metrics (plain
// rounds only).
type ModelUpdate struct {
	Device      string
	Model       Model
	NumExamples uint64
	Metrics     map[string]float64
}

// StrategyConfig selects and tunes a built-in strategy. The zero value of
// every field takes the strategy's default; a negative one is an error.
type StrategyConfig struct {
	// Name is one of StrategyNames; "" is fedavg.
	Name string `json:"name" toml:"name"`
	// LR and Momentum of fedsgd's server optimizer (0.1, 0).
	LR       float64 `json:"lr,omitempty" toml:"lr"`
	Momentum float64 `json:"momentum,omitempty" toml:"momentum"`
	// Mu is fedprox's proximal weight, sent to the devices in the round
	// settings; the other strategies ignore it (a fedavg hub sends none).
	Mu float64 `json:"mu,omitempty" toml:"mu"`
	// Eta, Beta1, Beta2 and Tau tune the adaptive server optimizers
	// (fedadam, fedyogi, fedadagrad) as Flower's do.
	Eta   float64 `json:"eta,omitempty" toml:"eta"`
	Beta1 float64 `json:"beta1,omitempty" toml:"beta1"`
	Beta2 float64 `json:"beta2,omitempty" toml:"beta2"`
	Tau   float64 `json:"tau,omitempty" toml:"tau"`
	// TrimBeta is the fraction trimmed at each end (trimmedmean).
	TrimBeta float64 `json:"trim_beta,omitempty" toml:"trim_beta"`
	// F is the number of malicious devices assumed (krum, multikrum,
	// bulyan); M is the number of updates multikrum keeps (n-F when 0).
	F int `json:"f,omitempty" toml:"f"`
	M int `json:"m,omitempty" toml:"m"`
}

// StrategyNames returns the built-in strategies: fedavg, fedprox, fedsgd,
// the adaptive fedadam, fedyogi and fedadagrad, and the Byzantine-robust
// median, trimmedmean, krum, multikrum and bulyan.
func StrategyNames() []string { return slices.Clone(strategy.Names) }

// NewStrategy returns the built-in strategy c names, or an error naming
// the field at fault.
func NewStrategy(c StrategyConfig) (Strategy, error) {
	a, err := strategy.New(strategy.Config(c))
	if err != nil {
		return nil, err
	}
	return builtinStrategy{strategy.FromAggregator(a)}, nil
}

// WasmStrategy runs the `aggregate` entrypoint of module c (docs/ABI.md
// "aggregate": CBOR {"updates": [{"model", "num_examples"}], "global",
// "round"} -> {"model"}); its output is checked like any guest's.
func WasmStrategy(name string, c Caller) Strategy {
	return builtinStrategy{strategy.Wasm(name, c)}
}

// AggregateVectors runs built-in strategy name on flat f32 vectors, one
// per device (weights nil: equal example counts), for tools and
// benchmarks.
func AggregateVectors(name string, global []float32, vecs [][]float32, weights []uint64) ([]float32, error) {
	a, err := strategy.New(strategy.Config{Name: name})
	if err != nil {
		return nil, err
	}
	ups := make([]strategy.Update, len(vecs))
	for i, v := range vecs {
		ups[i] = strategy.Update{Vec: v, NumExamples: 1}
		if weights != nil {
			ups[i].NumExamples = weights[i]
		}
	}
	return a.Aggregate(1, global, ups)
}

// builtinStrategy is a strategy of this package: the hub runs its
// implementation directly, with what it declares (robustness, gradient
// mode, optimizer state).
type builtinStrategy struct{ s strategy.Strategy }

func (b builtinStrategy) Name() string { return b.s.Name() }

func (b builtinStrategy) Aggregate(ctx context.Context, round uint64, global Model, updates []ModelUpdate) (Model, error) {
	ups := make([]strategy.ModelUpdate, len(updates))
	for i, u := range updates {
		ups[i] = strategy.ModelUpdate{Device: u.Device, Model: u.Model.internal(), NumExamples: u.NumExamples, Metrics: u.Metrics}
	}
	m, err := b.s.Aggregate(ctx, round, global.internal(), ups)
	if err != nil {
		return Model{}, err
	}
	return fromModel(m), nil
}

// internalStrategy converts s at the package boundary.
func internalStrategy(s Strategy) strategy.Strategy {
	switch s := s.(type) {
	case nil:
		return nil
	case builtinStrategy:
		return s.s
	}
	return strategyAdapter{s}
}

type strategyAdapter struct{ s Strategy }

func (a strategyAdapter) Name() string { return a.s.Name() }

func (a strategyAdapter) Aggregate(ctx context.Context, round uint64, global model.Model, updates []strategy.ModelUpdate) (model.Model, error) {
	ups := make([]ModelUpdate, len(updates))
	for i, u := range updates {
		ups[i] = ModelUpdate{Device: u.Device, Model: fromModel(u.Model), NumExamples: u.NumExamples, Metrics: u.Metrics}
	}
	m, err := a.s.Aggregate(ctx, round, fromModel(global), ups)
	if err != nil {
		return model.Model{}, err
	}
	return m.internal(), nil
}
