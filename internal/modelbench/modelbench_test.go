package modelbench

import (
	"errors"
	"strings"
	"testing"
)

const addModel = "../../nn/onnx/testdata/ops/add_broadcast/model.onnx"

// TestRunDefaults: the zero Config times 50 runs on all cores with random
// inputs of the declared shapes.
func TestRunDefaults(t *testing.T) {
	rep, err := Run(Config{Model: addModel})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fennec.Runs != 50 || rep.Threads < 1 || rep.Inputs["a"] != "f32[2 1 4] random" || rep.ORT != nil {
		t.Errorf("unexpected report: %+v", rep)
	}
	var b strings.Builder
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "fennec\tmedian") || !strings.Contains(b.String(), "input\ta\tf32[2 1 4] random") {
		t.Errorf("text report:\n%s", b.String())
	}
}

// TestRunErrorKinds: each error says whose fault it is.
func TestRunErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		kind Kind
		want string
	}{
		{Config{Model: addModel, Runs: -1}, Usage, "--runs -1"},
		{Config{Model: addModel, Warmup: MaxRuns + 1}, Usage, "--warmup"},
		{Config{Model: addModel, Inputs: []string{"a=f32:1048576x1048576:zeros"}}, Usage, "exceeds the limit"},
		{Config{Model: "no-such-model.onnx"}, Usage, "no-such-model.onnx"},
		{Config{Model: addModel, Inputs: []string{"a=f32:2x2x4:zeros"}, Runs: 1}, BadInput, "a"},
		{Config{Model: addModel, Inputs: []string{"a=missing.npy"}}, BadInput, "missing.npy"},
	} {
		_, err := Run(tc.cfg)
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an *Error of kind %d saying %q", tc.cfg, err, tc.kind, tc.want)
		}
	}
}
