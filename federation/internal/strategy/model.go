package strategy

import (
	"context"
	"errors"
	"fmt"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

// ModelUpdate is a device's update as the hub receives it.
type ModelUpdate struct {
	Device      string
	Model       model.Model
	NumExamples uint64
	Metrics     map[string]float64
}

// Strategy aggregates whole models; it is what the hub runs. Built-in
// aggregators are adapted with FromAggregator; a Wasm module with an
// `aggregate` entrypoint is adapted with Wasm.
type Strategy interface {
	Name() string
	Aggregate(ctx context.Context, round uint64, global model.Model, updates []ModelUpdate) (model.Model, error)
}

// FromAggregator adapts a vector aggregator: it checks that every update
// has the global model's layout, flattens f32 tensors, aggregates, and
// writes the result back into the global layout (non-f32 tensors keep the
// global model's values).
func FromAggregator(a Aggregator) Strategy { return &vecStrategy{a} }

type vecStrategy struct{ a Aggregator }

func (s *vecStrategy) Name() string { return s.a.Name() }

// Aggregator returns the wrapped vector aggregator.
func (s *vecStrategy) Aggregator() Aggregator { return s.a }

func (s *vecStrategy) Aggregate(ctx context.Context, round uint64, global model.Model, updates []ModelUpdate) (model.Model, error) {
	if len(updates) == 0 {
		return model.Model{}, ErrNoUpdates
	}
	ups := make([]Update, len(updates))
	for i := range updates {
		if err := global.SameLayout(&updates[i].Model); err != nil {
			return model.Model{}, fmt.Errorf("%w: device %q: %v", model.ErrLayout, updates[i].Device, err)
		}
		ups[i] = Update{Device: updates[i].Device, Vec: updates[i].Model.Flatten(), NumExamples: updates[i].NumExamples}
		if ctx.Err() != nil {
			return model.Model{}, ctx.Err()
		}
	}
	out, err := s.a.Aggregate(round, global.Flatten(), ups)
	if err != nil {
		return model.Model{}, err
	}
	return global.WithVector(out, global.Version+1)
}

// State and Restore forward to the aggregator when it is Stateful.
func (s *vecStrategy) State() []byte {
	if st, ok := s.a.(Stateful); ok {
		return st.State()
	}
	return nil
}

func (s *vecStrategy) Restore(b []byte) error {
	if st, ok := s.a.(Stateful); ok {
		return st.Restore(b)
	}
	if len(b) != 0 {
		return errors.New("strategy: state given to a stateless strategy")
	}
	return nil
}

// Gradient reports whether devices must send gradients.
func (s *vecStrategy) Gradient() bool {
	g, ok := s.a.(GradientMode)
	return ok && g.Gradient()
}

// Caller runs a Wasm module's entrypoint (the runtime's Module satisfies
// it).
type Caller interface {
	Call(ctx context.Context, entry string, in []byte) ([]byte, error)
}

// AggregateInput is the CBOR input of a Wasm strategy's `aggregate`
// entrypoint: {"updates": [{"model": Model, "num_examples": n}], "global":
// Model, "round": n}; its output is {"model": Model}.
type AggregateInput struct {
	Updates []AggregateItem `cbor:"updates"`
	Global  model.Model     `cbor:"global"`
	Round   uint64          `cbor:"round"`
}

// AggregateItem is one update in AggregateInput.
type AggregateItem struct {
	Model       model.Model `cbor:"model"`
	NumExamples uint64      `cbor:"num_examples"`
}

// AggregateOutput is the `aggregate` entrypoint's output.
type AggregateOutput struct {
	Model model.Model `cbor:"model"`
}

// Wasm adapts a module exporting `aggregate` as a Strategy. The module's
// output is untrusted: it is decoded with limits and must keep the global
// model's layout.
func Wasm(name string, c Caller) Strategy { return &wasmStrategy{name, c} }

type wasmStrategy struct {
	name string
	c    Caller
}

func (w *wasmStrategy) Name() string { return "wasm:" + w.name }

func (w *wasmStrategy) Aggregate(ctx context.Context, round uint64, global model.Model, updates []ModelUpdate) (model.Model, error) {
	if len(updates) == 0 {
		return model.Model{}, ErrNoUpdates
	}
	in := AggregateInput{Global: global, Round: round, Updates: make([]AggregateItem, len(updates))}
	for i := range updates {
		in.Updates[i] = AggregateItem{updates[i].Model, updates[i].NumExamples}
	}
	b, err := model.Marshal(in)
	if err != nil {
		return model.Model{}, err
	}
	out, err := w.c.Call(ctx, "aggregate", b)
	if err != nil {
		return model.Model{}, fmt.Errorf("strategy %s: %w", w.Name(), err)
	}
	res, err := DecodeAggregateOutput(out)
	if err != nil {
		return model.Model{}, fmt.Errorf("strategy %s: %w", w.Name(), err)
	}
	if err := global.SameLayout(&res.Model); err != nil {
		return model.Model{}, fmt.Errorf("strategy %s: output %w", w.Name(), err)
	}
	res.Model.Version = global.Version + 1
	return res.Model, nil
}

// DecodeAggregateOutput decodes and validates a Wasm strategy's output.
func DecodeAggregateOutput(b []byte) (AggregateOutput, error) {
	var o AggregateOutput
	if err := model.UnmarshalLoose(b, &o); err != nil {
		return o, fmt.Errorf("aggregate output: %w", err)
	}
	if err := o.Model.Validate(); err != nil {
		return o, fmt.Errorf("aggregate output: %w", err)
	}
	return o, nil
}
