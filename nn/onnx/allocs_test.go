package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

// TestSteadyStateAllocs counts the heap allocations of one warm RunInto and
// one warm Run of each shared model on a one-thread CPU backend, and demands
// zero of RunInto (the path a steady-state loop takes: results copied into
// the caller's tensors). Run itself allocates its result map and a header
// and shape per output (5-11), by its API (BENCHMARKS.md, ONNX engine,
// "Allocations per warm run").
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode")
	}
	if raceEnabled {
		t.Skip("allocation counts under -race are the detector's, not the engine's")
	}
	for _, c := range []struct {
		model   string
		ceiling float64
		quant   string // "": the f32 file; else quantized in this mode (on the parity inputs)
	}{
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", 0, ""},
		{"embedding_model.onnx", 0, ""},
		{"melspectrogram.onnx", 0, ""},
		{"silero_vad_v5.onnx", 0, ""},
		{"silero_vad_v4.onnx", 0, ""},
		{"ch_PP-OCRv4_det_infer.onnx", 0, ""},
		{"embedding_model.onnx", 0, QuantizeDynamic},
		{"embedding_model.onnx", 0, QuantizeStatic},
		// newIMatmul's operand records (broadcast shapes, indexers, the
		// result's view) still allocate, about 5 a MatMulInteger or
		// QLinearMatMul node
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", 15, QuantizeStatic},
		{"melspectrogram.onnx", 10, QuantizeDynamic},
	} {
		t.Run(c.model+c.quant, func(t *testing.T) {
			m, err := Load(sharedModel(t, c.model), Options{})
			if err != nil {
				t.Fatal(err)
			}
			be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, be)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ref := filepath.Join("testdata", "ref", c.model[:len(c.model)-len(".onnx")])
			in := map[string]*nn.Tensor{}
			for i, vi := range m.Inputs() {
				in[vi.Name] = readNPY(t, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
			}
			if c.quant != "" {
				data, err := os.ReadFile(sharedModel(t, c.model))
				if err != nil {
					t.Fatal(err)
				}
				q, _, err := Quantize(data, c.model, QuantizeOptions{Mode: c.quant, Calibration: []map[string]*nn.Tensor{in}})
				if err != nil {
					t.Fatal(err)
				}
				if m, err = Decode(q, c.model, "", Options{}); err != nil {
					t.Fatal(err)
				}
				s.Close()
				if s, err = NewSession(m, be); err != nil {
					t.Fatal(err)
				}
			}
			outs := map[string]*nn.Tensor{}
			for _, vi := range m.Outputs() {
				outs[vi.Name] = &nn.Tensor{}
			}
			for range 4 { // warm: arena, pools, frames, the output tensors
				if _, err := s.Run(in); err != nil {
					t.Fatal(err)
				}
				if err := s.RunInto(in, outs); err != nil {
					t.Fatal(err)
				}
			}
			var runErr error
			into := testing.AllocsPerRun(5, func() {
				if err := s.RunInto(in, outs); err != nil {
					runErr = err
				}
			})
			n := testing.AllocsPerRun(5, func() {
				if _, err := s.Run(in); err != nil {
					runErr = err
				}
			})
			if runErr != nil {
				t.Fatal(runErr)
			}
			t.Logf("%s: %.0f allocations per warm Run, %.0f per warm RunInto (goal 0, ceiling %.0f)", c.model, n, into, c.ceiling)
			if into > c.ceiling {
				t.Errorf("%s: %.0f allocations per warm RunInto, over the ceiling %.0f", c.model, into, c.ceiling)
			}
		})
	}
}

// TestRunInto: RunInto's results equal Run's, land in the caller's tensors
// (their buffers reused by the next call), outputs not named are dropped,
// and a tensor of the wrong dtype is refused.
func TestRunInto(t *testing.T) {
	const model = "silero_vad_v5.onnx"
	m, err := Load(sharedModel(t, model), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := filepath.Join("testdata", "ref", model[:len(model)-len(".onnx")])
	in := map[string]*nn.Tensor{}
	for i, vi := range m.Inputs() {
		in[vi.Name] = readNPY(t, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
	}
	want, err := s.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	first := m.Outputs()[0].Name
	outs := map[string]*nn.Tensor{first: {}}
	var data *float32
	for i := range 3 {
		if err := s.RunInto(in, outs); err != nil {
			t.Fatal(err)
		}
		got := outs[first]
		if !equalInts(got.Shape, want[first].Shape) || !slices.Equal(got.F32, want[first].F32) {
			t.Fatalf("RunInto's %q differs from Run's", first)
		}
		if i == 0 {
			data = &got.F32[0]
		} else if &got.F32[0] != data {
			t.Fatal("RunInto did not reuse the caller's buffer")
		}
	}
	if len(outs) != 1 {
		t.Fatalf("RunInto added %d outputs the caller did not name", len(outs)-1)
	}
	if err := s.RunInto(in, map[string]*nn.Tensor{first: {DType: nn.Int64}}); err == nil || !strings.Contains(err.Error(), first) {
		t.Fatalf("an int64 tensor for an f32 output: %v", err)
	}
	if err := s.RunInto(in, nil); err == nil {
		t.Fatal("a nil outputs map accepted")
	}
}
