package train

import (
	"context"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

func FuzzDecodeOutput(f *testing.F) {
	g := model.Model{Name: "m", Tensors: []model.Tensor{model.F32Tensor("w", []uint64{2}, []float32{1, 2})}}
	b, _ := model.Marshal(Output{Model: g, NumExamples: 2, Metrics: map[string]float64{"loss": 0.5}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOutput(b, &g)
		if err == nil && g.SameLayout(&o.Model) != nil {
			t.Fatal("layout check passed a different layout")
		}
	})
}

// metricsOnly is an evaluator (a module, a user's Go code) that reports
// only the metrics it is given.
type metricsOnly map[string]float64

func (m metricsOnly) Evaluate(context.Context, EvalInput) (EvalOutput, error) {
	return EvalOutput{NumExamples: 1, Metrics: m}, nil
}

// TestDataEvaluatorNeedsLoss: an evaluator that reports no loss is an
// error, not a loss of 0; one without accuracy is fine.
func TestDataEvaluatorNeedsLoss(t *testing.T) {
	ctx := context.Background()
	_, _, err := DataEvaluator{E: metricsOnly{"accuracy": 0.9}, Name: "held-out.csv"}.Evaluate(ctx, model.Model{})
	if err == nil || !strings.Contains(err.Error(), `evaluate on held-out.csv: the evaluator reported no "loss" metric`) {
		t.Fatalf("missing loss: %v", err)
	}
	loss, acc, err := DataEvaluator{E: metricsOnly{"loss": 0.25}, Name: "x"}.Evaluate(ctx, model.Model{})
	if err != nil || loss != 0.25 || acc != 0 {
		t.Fatalf("loss only: %v %v %v", loss, acc, err)
	}
}
