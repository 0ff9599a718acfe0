package onnx

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

// TestSteadyStateAllocs counts the heap allocations of one warm Run of each
// shared model on a one-thread CPU backend. The goal is zero; what
// is left is listed in BENCHMARKS.md (speed session 4): the caller-owned
// outputs (result map, detached headers, output buffers), non-f32
// intermediates, window attributes parsed per run and the If scope map. The
// ceilings are the counts after session 4 (2026-12-04) plus a little slack,
// so that a change that adds allocations per node fails here; lower them as
// allocations go.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode")
	}
	for _, c := range []struct {
		model   string
		ceiling float64
	}{
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", 42},
		{"embedding_model.onnx", 18},
		{"melspectrogram.onnx", 16},
		{"silero_vad_v5.onnx", 133},
		{"silero_vad_v4.onnx", 173},
		{"ch_PP-OCRv4_det_infer.onnx", 62},
	} {
		t.Run(c.model, func(t *testing.T) {
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
			outs := map[string]*nn.Tensor{}
			for _, vi := range m.Outputs() {
				outs[vi.Name] = &nn.Tensor{}
			}
			for range 2 { // warm: arena, pools, frames, the output tensors
				if _, err := s.Run(in); err != nil {
					t.Fatal(err)
				}
				if err := s.RunInto(in, outs); err != nil {
					t.Fatal(err)
				}
			}
			var runErr error
			n := testing.AllocsPerRun(5, func() {
				if _, err := s.Run(in); err != nil {
					runErr = err
				}
			})
			into := testing.AllocsPerRun(5, func() {
				if err := s.RunInto(in, outs); err != nil {
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
