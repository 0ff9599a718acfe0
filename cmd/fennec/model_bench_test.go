package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/modelbench"
)

// addModel is a one-node model (Add of f32[2,1,4] and f32[3,1]) from the
// engine's operator test data.
const addModel = "../../nn/onnx/testdata/ops/add_broadcast/model.onnx"

func TestModelBenchFlagErrors(t *testing.T) {
	model, err := filepath.Abs(addModel)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"runs zero", []string{"--runs", "0"}, exitUsage, "--runs 0"},
		{"runs huge", []string{"--runs", "99999999"}, exitUsage, "--runs 99999999"},
		{"warmup negative", []string{"--warmup", "-1"}, exitUsage, "--warmup -1"},
		{"threads negative", []string{"--threads", "-2"}, exitUsage, "--threads -2"},
		{"dim no value", []string{"--dim", "batch"}, exitUsage, `--dim "batch": want NAME=N`},
		{"dim not a number", []string{"--dim", "batch=x"}, exitUsage, `"x" is not a dimension`},
		{"dim twice", []string{"--dim", "n=1", "--dim", "n=2"}, exitUsage, `--dim "n" given twice`},
		{"input no name", []string{"--input", "=f32:1:random"}, exitUsage, "want NAME=DTYPE:SHAPE:SOURCE"},
		{"input two parts", []string{"--input", "a=f32:1"}, exitUsage, "want NAME=DTYPE:SHAPE:SOURCE"},
		{"input dtype", []string{"--input", "a=f64:2x1x4:random"}, exitUsage, `dtype "f64"`},
		{"input shape", []string{"--input", "a=f32:2xx4:random"}, exitUsage, `dimension "" is not an integer`},
		{"input source", []string{"--input", "a=f32:2x1x4:noise"}, exitUsage, `source "noise"`},
		{"input bomb", []string{"--input", "a=f32:1048576x1048576:zeros"}, exitUsage, "exceeds the limit"},
		{"input twice", []string{"--input", "a=f32:2x1x4:zeros", "--input", "a=f32:2x1x4:1"}, exitUsage, `--input "a" given twice`},
		{"input unknown", []string{"--input", "zz=f32:1:zeros"}, exitUsage, `"zz": the model has no such input`},
		{"input missing file", []string{"--input", "a=nofile.npy"}, exitBadInput, "nofile.npy"},
		{"input wrong shape", []string{"--input", "a=f32:2x2x4:zeros"}, exitBadInput, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"model", "bench", model, "--runs", "2", "--warmup", "0"}, tc.args...)
			out, code := runFennec(t, t.TempDir(), args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

func TestModelBenchSymbolicDim(t *testing.T) {
	model := clsModel(t)
	out, code := runFennec(t, t.TempDir(), "model", "bench", model, "--runs", "1", "--warmup", "0")
	if code != exitUsage || !strings.Contains(out, "--dim p2o.DynamicDimension.0=N") {
		t.Errorf("exit %d: want a usage error naming the symbolic dim:\n%s", code, out)
	}
}

func TestModelBench(t *testing.T) {
	model, err := filepath.Abs(addModel)
	if err != nil {
		t.Fatal(err)
	}
	out, code := runFennec(t, t.TempDir(), "model", "bench", model, "--runs", "5", "--warmup", "1", "--input", "b=f32:3x1:0.5", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	var rep modelbench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Fennec.Runs != 5 || rep.Fennec.MedianMS <= 0 || rep.Fennec.P10MS > rep.Fennec.MedianMS || rep.Fennec.MedianMS > rep.Fennec.P90MS ||
		rep.Inputs["a"] != "f32[2 1 4] random" || rep.Inputs["b"] != "f32[3 1]" || rep.Threads != 1 || rep.ORT != nil {
		t.Errorf("unexpected report: %+v", rep)
	}

	// Without the interpreter, --ort says so and times fennec alone.
	out, code = runFennec(t, t.TempDir(), "model", "bench", model, "--runs", "2", "--ort", "--python", "no-such-python-here")
	if code != exitOK || !strings.Contains(out, "onnxruntime: skipped: no-such-python-here not found") || !strings.Contains(out, "fennec\tmedian") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestModelBenchORT(t *testing.T) {
	if err := exec.Command("python3", "-c", "import onnxruntime").Run(); err != nil {
		t.Skip("skipping: python3 with onnxruntime is absent (pip install onnxruntime)")
	}
	model, err := filepath.Abs(addModel)
	if err != nil {
		t.Fatal(err)
	}
	out, code := runFennec(t, t.TempDir(), "model", "bench", model, "--runs", "3", "--warmup", "1", "--ort", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	var rep modelbench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.ORT == nil || rep.ORT.Runs != 3 || rep.Ratio <= 0 || rep.ORTVersion == "" {
		t.Errorf("unexpected report: %+v", rep)
	}
}
