package train

import (
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
