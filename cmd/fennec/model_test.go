package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/nn"
	"google.golang.org/protobuf/encoding/protowire"
)

// clsModel is the PaddleOCR orientation classifier in the shared models
// folder; tests that need it skip when the folder is absent.
func clsModel(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../../shared/models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: %s is absent (the shared models folder is not on this machine)", p)
	}
	return p
}

func TestModelInspect(t *testing.T) {
	model := clsModel(t)
	out, code := runFennec(t, t.TempDir(), "model", "inspect", model)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"opset       9 (ai.onnx)", "x  f32  [p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]", "Conv                53", "unsupported: none", "inferred [p2o.DynamicDimension.0,2]"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, code = runFennec(t, t.TempDir(), "model", "inspect", "--json", model)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	var info struct {
		Opset     int            `json:"opset"`
		Operators map[string]int `json:"operators"`
		Inputs    []struct {
			Name  string `json:"name"`
			DType string `json:"dtype"`
			Shape []any  `json:"shape"`
		} `json:"inputs"`
		Parameters  int64 `json:"parameters"`
		Unsupported []any `json:"unsupported"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if info.Opset != 9 || info.Operators["BatchNormalization"] != 35 || len(info.Inputs) != 1 || info.Inputs[0].Shape[1] != 3.0 ||
		info.Inputs[0].Shape[0] != "p2o.DynamicDimension.0" || info.Parameters == 0 || info.Unsupported == nil || len(info.Unsupported) != 0 {
		t.Errorf("unexpected JSON: %+v", info)
	}
}

// tinyModel encodes, field by field, an opset-13 ModelProto whose one node
// is an operator this engine does not have.
func tinyModel() []byte {
	msg := func(field protowire.Number, parts ...[]byte) []byte {
		var body []byte
		for _, p := range parts {
			body = append(body, p...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, field, protowire.BytesType), body)
	}
	str := func(field protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, field, protowire.BytesType), v)
	}
	varint := func(field protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, field, protowire.VarintType), v)
	}
	node := msg(1, str(1, "x"), str(2, "y"), str(3, "attn"), str(4, "FancyAttention"))
	graph := msg(7, node, str(2, "g"), msg(11, str(1, "x")), msg(12, str(1, "y")))
	return append(append(varint(1, 8), msg(8, varint(2, 13))...), graph...)
}

func TestModelInspectUnsupported(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fancy.onnx"), tinyModel(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runFennec(t, dir, "model", "inspect", "fancy.onnx")
	if code != exitOK || !strings.Contains(out, "unsupported: 1 node(s)") || !strings.Contains(out, "attn  FancyAttention  opset 13  operator not implemented") {
		t.Fatalf("exit %d; want node attn listed as unsupported:\n%s", code, out)
	}
	// Running it is refused with the same names.
	if err := nn.WriteNPYFile(filepath.Join(dir, "x.npy"), &nn.Tensor{DType: nn.Float32, Shape: []int{1}, F32: []float32{1}}); err != nil {
		t.Fatal(err)
	}
	out, code = runFennec(t, dir, "model", "run", "fancy.onnx", "--input", "x=x.npy", "--out", "o")
	if code != exitBadInput || !strings.Contains(out, `node "attn": FancyAttention (ai.onnx opset 13): operator not implemented`) {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestModelRun(t *testing.T) {
	model := clsModel(t)
	ref, _ := filepath.Abs("../../nn/onnx/testdata/ref/ch_ppocr_mobile_v2.0_cls_infer")
	dir := t.TempDir()
	out, code := runFennec(t, dir, "model", "run", model, "--input", "x="+filepath.Join(ref, "input_0.npy"), "--out", "res")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	got, err := nn.ReadNPYFile(filepath.Join(dir, "res", "softmax_0.tmp_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := nn.ReadNPYFile(filepath.Join(ref, "output_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != nn.Float32 || len(got.F32) != 2 || len(want.F32) != 2 {
		t.Fatalf("output %v, want %v", got, want)
	}
	for i := range want.F32 {
		if math.Abs(float64(got.F32[i]-want.F32[i])) > 1e-4 {
			t.Errorf("output[%d] = %g, onnxruntime %g", i, got.F32[i], want.F32[i])
		}
	}
}

// TestModelRunSilero feeds three inputs (f32 audio, f32 state, an i64
// scalar) and checks both outputs come back as .npy files.
func TestModelRunSilero(t *testing.T) {
	p, _ := filepath.Abs("../../../shared/models/silero_vad_v5.onnx")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: %s is absent", p)
	}
	ref, _ := filepath.Abs("../../nn/onnx/testdata/ref/silero_vad_v5")
	dir := t.TempDir()
	out, code := runFennec(t, dir, "model", "run", p, "--input", "input="+filepath.Join(ref, "input_0.npy"),
		"--input", "state="+filepath.Join(ref, "input_1.npy"), "--input", "sr="+filepath.Join(ref, "input_2.npy"), "--out", "o")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	for i, name := range []string{"output", "stateN"} {
		got, err := nn.ReadNPYFile(filepath.Join(dir, "o", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := nn.ReadNPYFile(filepath.Join(ref, "output_"+string(rune('0'+i))+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("%s: %v, want %v", name, got, want)
		}
		for j := range want.F32 {
			if math.Abs(float64(got.F32[j]-want.F32[j])) > 1e-4+1e-3*math.Abs(float64(want.F32[j])) {
				t.Fatalf("%s[%d] = %g, onnxruntime %g", name, j, got.F32[j], want.F32[j])
			}
		}
	}
	// A missing input is the caller's error, named.
	out, code = runFennec(t, dir, "model", "run", p, "--input", "input="+filepath.Join(ref, "input_0.npy"), "--out", "o")
	if code != exitBadInput || !strings.Contains(out, `input "state" is missing`) {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestModelErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "junk.onnx"), []byte("not a model"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"model", "inspect", "junk.onnx"}, exitBadInput, "not an ONNX ModelProto"},
		{[]string{"model", "inspect", "missing.onnx"}, exitUsage, "no such file"},
		{[]string{"model", "run", "junk.onnx", "--input", "x=a.npy"}, exitUsage, "--out is required"},
		{[]string{"model", "run", "junk.onnx", "--input", "x", "--out", "o"}, exitUsage, "want NAME=FILE.npy"},
		{[]string{"model", "run", "junk.onnx", "--input", "x=missing.npy", "--out", "o"}, exitBadInput, "missing.npy"},
	} {
		out, code := runFennec(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("fennec %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
}

// Two outputs whose names map to one file each get their own.
func TestOutputFiles(t *testing.T) {
	for _, tc := range []struct {
		names, want []string
	}{
		{[]string{"logits", "probs"}, []string{"logits.npy", "probs.npy"}},
		{[]string{"a/b", "a_b", "a:b"}, []string{"a_b.npy", "a_b-2.npy", "a_b-3.npy"}},
		{[]string{"Y", "y"}, []string{"Y.npy", "y-2.npy"}},
		{[]string{"..", "_.."}, []string{"_...npy", "_..-2.npy"}},
	} {
		if got := outputFiles(tc.names); !slices.Equal(got, tc.want) {
			t.Errorf("outputFiles(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}
