package modules_test

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

type graphOut struct {
	Prob       float32  `cbor:"prob"`
	StateShape []int    `cbor:"state_shape"`
	Inputs     []string `cbor:"inputs"`
}

// TestGraphGuestVAD: a Go guest runs Silero VAD v5 through sdk/graph
// (fennec_nn) on tensor handles, and gets nn/onnx's own answer.
func TestGraphGuestVAD(t *testing.T) {
	models := shared.Dir("models")
	if models == "" {
		t.Skip("../shared/models is absent")
	}
	path := filepath.Join(models, "silero_vad_v5.onnx")
	set := hostfuncs.NewModelSet(nil, onnx.Options{})
	defer set.Close()
	if err := set.Add(hostfuncs.Preload{Name: "vad", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := runtime.New(ctx, runtime.Config{
		CacheDir: filepath.Join(os.TempDir(), "fennec-test-wazero-cache"),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Services: &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: set}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	bin, err := os.ReadFile(wasmFor(t, "testdata/graphguest"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := runtime.ReadManifest("testdata/graphguest/fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := eng.Compile(ctx, bin, man)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)

	audio := make([]float32, 512)
	for i := range audio {
		audio[i] = float32(0.3 * math.Sin(float64(i)*0.21) * math.Sin(float64(i)*0.013))
	}
	m, err := onnx.Load(path, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := onnx.NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	res, err := sess.Run(map[string]*nn.Tensor{
		"input": {DType: nn.Float32, Shape: []int{1, 512}, F32: audio},
		"state": {DType: nn.Float32, Shape: []int{2, 1, 128}, F32: make([]float32, 256)},
		"sr":    {DType: nn.Int64, Shape: []int{}, I64: []int64{16000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := res[m.Outputs()[0].Name].F32[0]
	for i := 0; i < 2; i++ { // the second call reuses the instance's graph
		in, _ := sdk.Marshal(map[string]any{"audio": audio})
		b, err := mod.Call(ctx, "run", in)
		if err != nil {
			t.Fatal(err)
		}
		var out graphOut
		if err := sdk.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(out.Prob-want)) > 1e-6 || len(out.StateShape) != 3 || out.StateShape[2] != 128 || len(out.Inputs) != 3 {
			t.Fatalf("call %d: %+v, nn/onnx gives prob %v", i, out, want)
		}
	}
}
