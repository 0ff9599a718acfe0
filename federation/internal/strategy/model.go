package strategy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

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

// MinUpdates and Requirement forward to the aggregator when it is Robust.
func (s *vecStrategy) MinUpdates() int {
	if r, ok := s.a.(Robust); ok {
		return r.MinUpdates()
	}
	return 1
}

func (s *vecStrategy) Requirement() string {
	if r, ok := s.a.(Robust); ok {
		return r.Requirement()
	}
	return ""
}

// MinUpdates returns the smallest number of updates a round must hand s
// for s to be robust, and why (1 and "" for a strategy that is not Robust).
func MinUpdates(s Strategy) (int, string) {
	if r, ok := s.(Robust); ok {
		if n := r.MinUpdates(); n > 1 {
			return n, r.Requirement()
		}
	}
	return 1, ""
}

// IndividualUpdates says why s needs each device's own update, "" when one
// aggregate of them will do: a strategy that needs more than one update
// (MinUpdates), or one that declares it (a module strategy).
func IndividualUpdates(s Strategy) string {
	if n, why := MinUpdates(s); n > 1 {
		return fmt.Sprintf("needs %d individual updates per round (%s)", n, why)
	}
	if i, ok := s.(interface{ IndividualUpdates() string }); ok {
		return "needs individual updates (" + i.IndividualUpdates() + ")"
	}
	return ""
}

// Finite checks that every f32 element of m is finite, naming the first
// tensor and element that is not.
func Finite(m *model.Model) error {
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Dtype != model.F32 {
			continue
		}
		for j := 0; j+4 <= len(t.Data); j += 4 {
			// An f32 is NaN or Inf when its exponent bits are all ones.
			if b := binary.LittleEndian.Uint32(t.Data[j:]); b&0x7f800000 == 0x7f800000 {
				return fmt.Errorf("tensor %q element %d is %v", t.Name, j/4, math.Float32frombits(b))
			}
		}
	}
	return nil
}

// DefaultWeightRatio is BoundExamples' default ratio.
const DefaultWeightRatio = 4

// BoundExamples bounds the example counts that weight the updates of one
// round: no update counts for more than ratio times the round's lower
// median count (the middle count, the smaller of the two middle ones for
// an even number of updates). A device's count is its own claim; the
// median of the round's claims is an honest device's as long as fewer than
// half of them lie, so a liar's weight is at most ratio times an honest
// device's. It returns the devices whose count it lowered (with their
// claims), in update order; ups is changed in place. ratio < 1 means
// DefaultWeightRatio.
func BoundExamples(ups []ModelUpdate, ratio float64) map[string]uint64 {
	if len(ups) < 2 {
		return nil
	}
	if !(ratio >= 1) {
		ratio = DefaultWeightRatio
	}
	ns := make([]uint64, len(ups))
	for i := range ups {
		ns[i] = ups[i].NumExamples
	}
	slices.Sort(ns)
	med := float64(max(1, ns[(len(ns)-1)/2]))
	capN := uint64(math.Min(med*ratio, math.MaxUint64/2))
	var out map[string]uint64
	for i := range ups {
		if ups[i].NumExamples > capN {
			if out == nil {
				out = map[string]uint64{}
			}
			out[ups[i].Device] = ups[i].NumExamples
			ups[i].NumExamples = capN
		}
	}
	return out
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

// IndividualUpdates says why a module strategy needs each device's update:
// what it does with them is the module's, so one aggregate (a privacy
// mode's) would not be what it was written for.
func (w *wasmStrategy) IndividualUpdates() string {
	return "a module strategy is handed each device's update"
}

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
