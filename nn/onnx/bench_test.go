package onnx

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

// exportedModels are the torch exports of the issue (testdata/ops/t_*: two
// BERT-style encoders, a causal decoder, a ResNet-style CNN, a two-layer
// LSTM), each with its inputs beside it.
var exportedModels = []string{"t_bert_opset14", "t_bert_opset17", "t_gpt_causal_opset14", "t_resnet_opset13", "t_lstm2_opset14"}

// modelPaths gives a benchmark model's file and the directory of its
// input_N.npy: a shared model by file name, an exported one by directory.
func modelPaths(tb testing.TB, model string) (path, ref string) {
	if filepath.Ext(model) == ".onnx" {
		return sharedModel(tb, model), filepath.Join("testdata", "ref", model[:len(model)-len(".onnx")])
	}
	dir := filepath.Join("testdata", "ops", model)
	return filepath.Join(dir, "model.onnx"), dir
}

// BenchmarkModels runs the shared models on their parity inputs, and the
// exported torch models on theirs, on a CPU backend with one and two threads
// (compare with testdata/bench_session.py at the same thread count, in the
// same sitting).
func BenchmarkModels(b *testing.B) {
	for _, model := range append([]string{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "embedding_model.onnx", "melspectrogram.onnx", "silero_vad_v5.onnx", "silero_vad_v4.onnx", "ch_PP-OCRv4_det_infer.onnx"}, exportedModels...) {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", model, threads), func(b *testing.B) {
				path, ref := modelPaths(b, model)
				m, err := Load(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: threads})
				if err != nil {
					b.Fatal(err)
				}
				s, err := NewSession(m, be)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				in := map[string]*nn.Tensor{}
				for i, vi := range m.Inputs() {
					in[vi.Name] = readNPY(b, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
				}
				if _, err := s.Run(in); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.Run(in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkLoad is the load time of PP-OCRv4 detection: Load (read, decode,
// check, optimise) and NewSession (plan) from the file, what onnxruntime's
// InferenceSession creation does; testdata/bench_load.py times both in turn.
func BenchmarkLoad(b *testing.B) {
	path := sharedModel(b, "ch_PP-OCRv4_det_infer.onnx")
	be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := Load(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewSession(m, be)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
