// Package train defines the device-side training contract: the ABI's
// `train` and `evaluate` entrypoint structures, the Trainer interface the
// agent calls, and its implementation over a Wasm module run by the fennec
// runtime.
package train

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
	"github.com/fennec-edge/fennec/runtime"
)

// Dataset is the ABI's Dataset: x f32 [n, features]; y f32 [n] or [n, k],
// or i32 [n].
type Dataset struct {
	X model.Tensor `cbor:"x"`
	Y model.Tensor `cbor:"y"`
	// Groups (optional), i32 [n]: each row's unit of privacy (dense ids
	// 0..units-1; all of one patient's readings share one). Absent, every
	// row is its own unit.
	Groups *model.Tensor `cbor:"groups,omitempty"`
}

// Units is the number of units of privacy: the distinct Groups ids (they
// are dense), or the row count without Groups.
func (d *Dataset) Units() (int, error) {
	n, err := d.Rows()
	if err != nil {
		return 0, err
	}
	if d.Groups == nil {
		return n, nil
	}
	g := d.Groups
	if g.Dtype != model.I32 || len(g.Shape) != 1 || int(g.Shape[0]) != n || len(g.Data) != 4*n {
		return 0, fmt.Errorf("dataset: groups must be i32 [%d]", n)
	}
	seen := map[int32]bool{}
	top := int32(-1)
	for i := 0; i < n; i++ {
		v := int32(binary.LittleEndian.Uint32(g.Data[4*i:]))
		if v < 0 || int(v) >= n {
			return 0, fmt.Errorf("dataset: groups[%d] = %d outside 0..%d", i, v, n-1)
		}
		seen[v], top = true, max(top, v)
	}
	if int(top)+1 != len(seen) {
		return 0, fmt.Errorf("dataset: groups ids are not dense (%d units, largest id %d)", len(seen), top)
	}
	return len(seen), nil
}

// Rows returns the example count, checking x and y agree.
func (d *Dataset) Rows() (int, error) {
	if d.X.Dtype != model.F32 || len(d.X.Shape) != 2 {
		return 0, errors.New("dataset: x must be f32 [n, features]")
	}
	if len(d.Y.Shape) < 1 || d.Y.Shape[0] != d.X.Shape[0] {
		return 0, errors.New("dataset: y's first dimension must equal x's")
	}
	m := model.Model{Tensors: []model.Tensor{d.X, d.Y}}
	if err := m.Validate(); err != nil {
		return 0, fmt.Errorf("dataset: %w", err)
	}
	return int(d.X.Shape[0]), nil
}

// Input is the `train` entrypoint's input.
type Input struct {
	Model    model.Model   `cbor:"model"`
	Round    uint64        `cbor:"round"`
	Settings wire.Settings `cbor:"settings"`
	Data     Dataset       `cbor:"data"`
	// Share (not sent to the guest) is the round's DP-SGD noise-share
	// grant from the device's mode client (secagg+dpsgd): the runtime call
	// carries it (runtime.CallOptions.DPSGDShare), and the host seals the
	// step's sum in it. Needs Wasm.Dataset.
	Share *dpsgd.Share `cbor:"-"`
}

// Output is the `train` entrypoint's output.
type Output struct {
	Model       model.Model        `cbor:"model"`
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// EvalInput is the `evaluate` entrypoint's input.
type EvalInput struct {
	Model model.Model `cbor:"model"`
	Data  Dataset     `cbor:"data"`
}

// EvalOutput is the `evaluate` entrypoint's output.
type EvalOutput struct {
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// Trainer trains a model on a device's local data.
type Trainer interface {
	Train(ctx context.Context, in Input) (Output, error)
}

// Evaluator scores a model on data.
type Evaluator interface {
	Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error)
}

// Module is what the runtime's compiled module offers: entrypoint calls,
// and Drain to close idle instances so a device holds none between rounds.
type Module interface {
	Call(ctx context.Context, entry string, in []byte) ([]byte, error)
	Drain()
}

// Wasm runs the `train` and `evaluate` entrypoints of a module. After every
// call it drains the module's idle instances (DrainAfter, default true), so
// an idle device keeps no instance memory.
type Wasm struct {
	Mod      Module
	KeepWarm bool // do not drain between calls
	// Dataset names the device's data to the runtime on train calls: the
	// module's privacy releases (DP-SGD) are charged to its budget. Mod
	// must then also have CallWith (a *runtime.Module does).
	Dataset string
}

// datasetModule is a Module whose calls can name their dataset.
type datasetModule interface {
	CallWith(ctx context.Context, entry string, in []byte, opts runtime.CallOptions) ([]byte, error)
}

func (w *Wasm) Train(ctx context.Context, in Input) (Output, error) {
	b, err := model.Marshal(in)
	if err != nil {
		return Output{}, err
	}
	var out []byte
	if in.Share != nil && w.Dataset == "" {
		return Output{}, errors.New("train entrypoint: a DP-SGD noise share needs the call to name its dataset (Wasm.Dataset)")
	}
	if w.Dataset != "" {
		dm, ok := w.Mod.(datasetModule)
		if !ok {
			return Output{}, fmt.Errorf("train entrypoint: the module cannot name its dataset %q to the runtime", w.Dataset)
		}
		out, err = dm.CallWith(ctx, "train", b, runtime.CallOptions{Dataset: w.Dataset, DPSGDShare: in.Share})
	} else {
		out, err = w.call(ctx, "train", b)
	}
	if !w.KeepWarm {
		w.Mod.Drain()
	}
	if err != nil {
		return Output{}, fmt.Errorf("train entrypoint: %w", err)
	}
	return DecodeOutput(out, &in.Model)
}

func (w *Wasm) Evaluate(ctx context.Context, in EvalInput) (EvalOutput, error) {
	b, err := model.Marshal(in)
	if err != nil {
		return EvalOutput{}, err
	}
	out, err := w.call(ctx, "evaluate", b)
	if !w.KeepWarm {
		w.Mod.Drain()
	}
	if err != nil {
		return EvalOutput{}, fmt.Errorf("evaluate entrypoint: %w", err)
	}
	var o EvalOutput
	if err := model.UnmarshalLoose(out, &o); err != nil {
		return o, fmt.Errorf("evaluate output: %w", err)
	}
	return o, nil
}

// call runs one entrypoint. (The runtime initialises a new instance without
// the caller's cancellation, so a live call is never lost to a fresh
// instance's start; no retry is needed here.)
func (w *Wasm) call(ctx context.Context, entry string, in []byte) ([]byte, error) {
	return w.Mod.Call(ctx, entry, in)
}

// DecodeOutput decodes a guest's train output (untrusted) and checks it
// against the global model's layout when global is not nil.
func DecodeOutput(b []byte, global *model.Model) (Output, error) {
	var o Output
	if err := model.UnmarshalLoose(b, &o); err != nil {
		return o, fmt.Errorf("train output: %w", err)
	}
	if err := o.Model.Validate(); err != nil {
		return o, fmt.Errorf("train output: %w", err)
	}
	if global != nil {
		if err := global.SameLayout(&o.Model); err != nil {
			return o, fmt.Errorf("train output: %w", err)
		}
	}
	if len(o.Metrics) > wire.MaxMetrics {
		return o, errors.New("train output: too many metrics")
	}
	for k, v := range o.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(o.Metrics, k)
		}
	}
	return o, nil
}

// DataEvaluator scores models on fixed held-out data with an Evaluator,
// in the form the hub asks for (hub.Evaluator: loss and accuracy). The
// evaluator must report a "loss" metric: a missing one is an error, not a
// loss of 0. "accuracy" is optional (0 when absent, as for a regression).
type DataEvaluator struct {
	E    Evaluator
	Data Dataset
	// Name names the data in errors (a file, "test split").
	Name string
}

// Evaluate runs E on Data.
func (e DataEvaluator) Evaluate(ctx context.Context, m model.Model) (loss, accuracy float64, err error) {
	ms, err := e.EvaluateMetrics(ctx, m)
	if err != nil {
		return 0, 0, err
	}
	return ms["loss"], ms["accuracy"], nil
}

// EvaluateMetrics runs E on Data and returns every metric it reported
// ("loss", which it must report, "accuracy", and any others such as
// "auroc").
func (e DataEvaluator) EvaluateMetrics(ctx context.Context, m model.Model) (map[string]float64, error) {
	out, err := e.E.Evaluate(ctx, EvalInput{Model: m, Data: e.Data})
	if err != nil {
		return nil, fmt.Errorf("evaluate on %s: %w", e.Name, err)
	}
	if _, ok := out.Metrics["loss"]; !ok {
		return nil, fmt.Errorf("evaluate on %s: the evaluator reported no \"loss\" metric", e.Name)
	}
	return out.Metrics, nil
}
