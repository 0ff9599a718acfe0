package onnx

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

const sharedModels = "../../../shared/models"

// sharedModel returns the path of a model in the shared folder, skipping the
// test when the folder is absent.
func sharedModel(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(sharedModels, name)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("skipping: %s is absent (the shared models folder, ../shared/models from the repository root, is not on this machine)", p)
	}
	return p
}

func readNPY(tb testing.TB, path string) *nn.Tensor {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	t, err := nn.ReadNPY(f)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return t
}

// compare checks got against want elementwise within atol + rtol*|want| and
// returns the largest absolute difference.
func compare(got, want *nn.Tensor, atol, rtol float64) (float64, error) {
	if !equalInts(got.Shape, want.Shape) {
		return 0, fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if got.DType != nn.Float32 || want.DType != nn.Float32 {
		return 0, fmt.Errorf("dtypes %v and %v", got.DType, want.DType)
	}
	worst := 0.0
	for i := range want.F32 {
		g, w := float64(got.F32[i]), float64(want.F32[i])
		d := math.Abs(g - w)
		if d > atol+rtol*math.Abs(w) || math.IsNaN(g) != math.IsNaN(w) {
			return d, fmt.Errorf("element %d: got %g, want %g (|diff| %g > %g + %g*|want|)", i, g, w, d, atol, rtol)
		}
		worst = max(worst, d)
	}
	return worst, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parityExtra lists intermediate values compared too (gen_reference.py's
// EXTRA, in the same order).
var parityExtra = map[string][]string{
	"ch_ppocr_mobile_v2.0_cls_infer.onnx": {"depthwise_conv2d_1.tmp_0", "reshape2_0.tmp_0", "p2o.Add.87"},
	"ch_PP-OCRv4_det_infer.onnx":          {"p2o.ConvTranspose.1", "p2o.ConvTranspose.3", "p2o.Add.281"},
}

// otherBackend hides the CPU backend's type, so that the executor takes
// its backend-neutral path (products through Write, MatMul and Read).
type otherBackend struct{ gpu.Backend }

// TestParity runs the shared models on fixed inputs and compares every
// output with onnxruntime's (testdata/gen_reference.py): on the CPU backend
// with the default threads, with 3 threads and small parts (kernels split
// even on these small models), and
// through the backend-neutral path.
func TestParity(t *testing.T) {
	three, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	backends := []struct {
		name string
		be   gpu.Backend
	}{{"cpu", gpu.NewCPU()}, {"cpu-3-threads", three}, {"neutral", otherBackend{gpu.NewCPU()}}}
	for _, model := range []string{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "embedding_model.onnx", "melspectrogram.onnx", "silero_vad_v5.onnx", "silero_vad_v4.onnx", "ch_PP-OCRv4_det_infer.onnx"} {
		for _, be := range backends {
			t.Run(model+"/"+be.name, func(t *testing.T) {
				if be.name == "cpu-3-threads" {
					// small parts, so that these small models split too
					defer func(w, e int) { partWork, elemGrain = w, e }(partWork, elemGrain)
					partWork, elemGrain = 1<<10, 1<<8
				}
				parity(t, model, be.be)
			})
		}
	}
}

func parity(t *testing.T, model string, be gpu.Backend) {
	m, err := Load(sharedModel(t, model), Options{})
	if err != nil {
		t.Fatal(err)
	}
	extra := parityExtra[model]
	s, err := NewSession(m, be, extra...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := filepath.Join("testdata", "ref", strings.TrimSuffix(model, ".onnx"))
	in := map[string]*nn.Tensor{}
	for i, vi := range m.Inputs() {
		in[vi.Name] = readNPY(t, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
	}
	out, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, vi := range m.Outputs() {
		want := readNPY(t, filepath.Join(ref, fmt.Sprintf("output_%d.npy", i)))
		worst, err := compare(out[vi.Name], want, 1e-4, 1e-3)
		if err != nil {
			t.Fatalf("output %q: %v", vi.Name, err)
		}
		t.Logf("output %q %v: max |diff| %.3g; stats %+v", vi.Name, want.Shape, worst, s.Stats())
	}
	for i, name := range extra {
		want := readNPY(t, filepath.Join(ref, fmt.Sprintf("extra_%d.npy", i)))
		worst, err := compare(out[name], want, 1e-4, 1e-3)
		if err != nil {
			t.Fatalf("intermediate %q: %v", name, err)
		}
		t.Logf("intermediate %q %v: max |diff| %.3g", name, want.Shape, worst)
	}
}

// TestClsOnText: the orientation classifier on a rendered text line, upright
// and turned 180 degrees (one batch of two, so the symbolic batch dim is 2):
// fennec must agree with onnxruntime and pick class 0 then class 1.
func TestClsOnText(t *testing.T) {
	m, err := Load(sharedModel(t, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := filepath.Join("testdata", "ref", "cls_text")
	out, err := s.Run(map[string]*nn.Tensor{"x": readNPY(t, filepath.Join(ref, "input_0.npy"))})
	if err != nil {
		t.Fatal(err)
	}
	got := out["softmax_0.tmp_0"]
	if _, err := compare(got, readNPY(t, filepath.Join(ref, "output_0.npy")), 1e-4, 1e-3); err != nil {
		t.Fatal(err)
	}
	if got.F32[0] < 0.9 || got.F32[3] < 0.9 {
		t.Fatalf("probabilities %v: want upright then turned (class 0, class 1)", got.F32)
	}
}
