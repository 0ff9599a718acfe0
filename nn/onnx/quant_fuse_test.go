package onnx

import (
	"github.com/fennec-edge/fennec/nn"
	"slices"
	"testing"

	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// unfused returns the model with the outputs of every node of the given
// operator types added to the graph outputs: a value that is asked for
// stays, so the patterns around those nodes are not fused.
func unfused(t *testing.T, data []byte, ops ...string) []byte {
	t.Helper()
	var mp pb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	for _, n := range mp.Graph.Node {
		if slices.Contains(ops, n.GetOpType()) {
			mp.Graph.Output = append(mp.Graph.Output, &pb.ValueInfoProto{Name: strp(n.Output[0])})
		}
	}
	out, err := proto.Marshal(&mp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The fused quantized nodes compute what the nodes they replace compute,
// bit for bit: ConvInteger -> Cast -> Mul -> Add (dynamic mode) and
// DequantizeLinear -> Conv/MatMul -> QuantizeLinear (static mode).
func TestQuantFusionsBitwise(t *testing.T) {
	src := marshal(t, model(13, mlpConvGraph()))
	x := randInput(23, 2, 3, 8, 8)
	for _, c := range []struct {
		mode string
		ops  []string
	}{
		{QuantizeDynamic, []string{"Cast"}},
		{QuantizeStatic, []string{"Conv", "MatMul", "Gemm"}},
	} {
		q, _, err := Quantize(src, "small.onnx", QuantizeOptions{Mode: c.mode, Calibration: []map[string]*nn.Tensor{{"x": x}}})
		if err != nil {
			t.Fatal(err)
		}
		fused := runModel(t, q, map[string]*nn.Tensor{"x": x})["y"]
		plain := runModel(t, unfused(t, q, c.ops...), map[string]*nn.Tensor{"x": x})["y"]
		if !slices.Equal(fused.Shape, plain.Shape) || !slices.Equal(fused.F32, plain.F32) {
			d, p := maxAbs(plain.F32, fused.F32)
			t.Errorf("%s: fused output differs from the nodes': max |diff| %g (peak %g)", c.mode, d, p)
		}
	}
}
