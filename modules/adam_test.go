package modules_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

// noAdam hides the CPU backend's fused Adam (gpu.Adamer), like a backend
// without it (the CUDA backend).
type noAdam struct{ gpu.Backend }

// TestRiskTrainUnfusedAdam trains the same model on a backend with the
// fused Adam step and on one without it (sdk/nn then composes the step from
// elementwise host calls): the weights agree to float tolerance.
func TestRiskTrainUnfusedAdam(t *testing.T) {
	ctx := context.Background()
	plain, err := runtime.New(ctx, runtime.Config{Backend: noAdam{gpu.NewCPU()}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(ctx)
	man, err := runtime.ReadManifest("risk-train/fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(wasmFor(t, "risk-train"))
	if err != nil {
		t.Fatal(err)
	}
	unfused, err := plain.Compile(ctx, bin, man)
	if err != nil {
		t.Fatal(err)
	}
	defer unfused.Close(ctx)
	fused := load(t, "risk-train", "risk-train/fennec.toml")
	x, y, _ := riskData(t, vitals.Config{Seed: 51, Patients: 20})
	in := sdk.TrainInput{Model: randomModel(rand.New(rand.NewPCG(6, 6)), vitalsproc.NumFeatures, 8, 1),
		Settings: sdk.Settings{LR: 0.01, Epochs: 3, BatchSize: 16, Seed: 3}, Data: dataset(x, y)}
	a := call[sdk.TrainOutput](t, fused, "train", in)
	b := call[sdk.TrainOutput](t, unfused, "train", in)
	var moved float64
	for i := range a.Model.Tensors {
		wa, _ := a.Model.Tensors[i].F32()
		wb, _ := b.Model.Tensors[i].F32()
		w0, _ := in.Model.Tensors[i].F32()
		for j := range wa {
			if d := math.Abs(float64(wa[j] - wb[j])); d > 1e-4*(1+math.Abs(float64(wa[j]))) {
				t.Fatalf("%s[%d]: fused %v, unfused %v", a.Model.Tensors[i].Name, j, wa[j], wb[j])
			}
			moved = math.Max(moved, math.Abs(float64(wa[j]-w0[j])))
		}
	}
	if moved < 1e-3 {
		t.Fatalf("training moved the weights by at most %g", moved)
	}
	if math.Abs(a.Metrics["loss"]-b.Metrics["loss"]) > 1e-4 {
		t.Fatalf("loss fused %v, unfused %v", a.Metrics["loss"], b.Metrics["loss"])
	}
}
