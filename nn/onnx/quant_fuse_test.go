package onnx

import (
	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"math"
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

// fuseQDQ fuses only what the int8 operators compute exactly as the QDQ
// nodes say: a bias whose scale is not x_scale*w_scale, a weight zero point
// that is not 0 or per-channel scales along another axis stay in f32 (and
// the model still runs).
func TestFuseQDQRefuses(t *testing.T) {
	src := marshal(t, model(13, mlpConvGraph()))
	x := randInput(24, 2, 3, 8, 8)
	q, _, err := Quantize(src, "small.onnx", QuantizeOptions{Mode: QuantizeStatic, Calibration: []map[string]*nn.Tensor{{"x": x}}})
	if err != nil {
		t.Fatal(err)
	}
	steps := func(data []byte) map[string]int {
		m, err := Decode(data, "q.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(m, gpu.NewCPU())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Run(map[string]*nn.Tensor{"x": x}); err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, n := range s.main.steps {
			ops[n.op]++
		}
		return ops
	}
	if ops := steps(q); ops["QLinearConv"] != 1 || ops["QLinearMatMul"] != 1 || ops["Conv"] != 0 {
		t.Fatalf("the static model is not fused: %v", ops)
	}
	mutate := func(f func(*pb.ModelProto)) []byte {
		var mp pb.ModelProto
		if err := proto.Unmarshal(q, &mp); err != nil {
			t.Fatal(err)
		}
		f(&mp)
		b, err := proto.Marshal(&mp)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	init := func(mp *pb.ModelProto, name string) *pb.TensorProto {
		for _, in := range mp.Graph.Initializer {
			if in.GetName() == name {
				return in
			}
		}
		t.Fatalf("no initializer %s", name)
		return nil
	}
	for _, c := range []struct {
		what string
		f    func(*pb.ModelProto)
	}{
		{"bias scale off by one ulp", func(mp *pb.ModelProto) {
			in := init(mp, "conv.b_scale")
			v := in.GetFloatData()
			if len(v) == 0 {
				raw := in.GetRawData()
				raw[0] ^= 1
				return
			}
			v[0] = math.Nextafter32(v[0], 1)
		}},
		{"weight zero point 1", func(mp *pb.ModelProto) {
			in := init(mp, "conv.w_zero_point")
			if raw := in.GetRawData(); len(raw) > 0 {
				raw[0] = 1
			} else {
				in.Int32Data[0] = 1
			}
		}},
		{"weight scales along axis 1", func(mp *pb.ModelProto) {
			for _, n := range mp.Graph.Node {
				if n.GetOpType() == "DequantizeLinear" && n.Input[0] == "conv.w_quantized" {
					for _, a := range n.Attribute {
						if a.GetName() == "axis" {
							a.I = i64p(1)
						}
					}
				}
			}
		}},
	} {
		t.Run(c.what, func(t *testing.T) {
			data := mutate(c.f)
			m, err := Decode(data, "q.onnx", "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, gpu.NewCPU())
			if err != nil {
				// the mutation can make the weight's own DequantizeLinear
				// invalid (axis 1 of a [4, 3, 3, 3] weight with 4 scales):
				// refused with an error, not a panic
				t.Logf("refused: %v", err)
				return
			}
			defer s.Close()
			if _, err := s.Run(map[string]*nn.Tensor{"x": x}); err != nil {
				t.Fatal(err)
			}
			for _, n := range s.main.steps {
				if n.op == "QLinearConv" {
					t.Fatalf("fused: %v", n.inputs)
				}
			}
		})
	}
}
