package onnx

import (
	"testing"
)

// TestInferShapes checks inferred output shapes keep the symbolic batch of
// the inputs, on the shared models and on each single-operator case (whose
// inferred output must match onnxruntime's real output where inference
// claims to know it).
func TestInferShapes(t *testing.T) {
	for _, tc := range []struct{ model, value, want string }{
		// The declared output is [p2o.DynamicDimension.3,2]; inference
		// follows Shape -> Slice -> Concat -> Reshape back to the input's
		// batch dim.
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "softmax_0.tmp_0", "f32[p2o.DynamicDimension.0,2]"},
		{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "reshape2_0.tmp_0", "f32[p2o.DynamicDimension.0,200]"},
		{"embedding_model.onnx", "conv2d_19", "f32[unk__314,1,1,96]"},
	} {
		m, err := Load(sharedModel(t, tc.model), Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := m.InferShapes()[tc.value]
		if !ok || got.String() != tc.want {
			t.Errorf("%s: %s inferred as %v, want %s", tc.model, tc.value, got, tc.want)
		}
	}
}
