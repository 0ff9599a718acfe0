package onnx

import (
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

func randTensor(rng *rand.Rand, name string, positive bool, dims ...int64) *pb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
		if positive {
			v[i] = v[i]*v[i] + 0.1
		}
	}
	return &pb.TensorProto{Name: strp(name), DataType: i32p(int32(nn.Float32)), Dims: dims, FloatData: v}
}

// TestFuseConvBN: the fused Conv gives the same result as Conv then
// BatchNormalization (kept apart by asking for the Conv output too), and the
// plan holds one node instead of two.
func TestFuseConvBN(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, withBias := range []bool{false, true} {
		convIn := []string{"x", "w"}
		inits := []*pb.TensorProto{randTensor(rng, "w", false, 6, 2, 3, 3),
			randTensor(rng, "s", false, 6), randTensor(rng, "bb", false, 6), randTensor(rng, "m", false, 6), randTensor(rng, "v", true, 6)}
		if withBias {
			convIn = append(convIn, "b")
			inits = append(inits, randTensor(rng, "b", false, 6))
		}
		g := &pb.GraphProto{Name: strp("convbn"),
			Node: []*pb.NodeProto{nodep("Conv", "conv", convIn, []string{"c"},
				&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(2)}),
				nodep("BatchNormalization", "bn", []string{"c", "s", "bb", "m", "v"}, []string{"y"},
					&pb.AttributeProto{Name: strp("epsilon"), Type: attrTypep(pb.AttributeProto_FLOAT), F: func() *float32 { f := float32(1e-3); return &f }()})},
			Initializer: inits,
			Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 4, 5, 6)},
			Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
		m, err := Decode(marshal(t, model(13, g)), "convbn.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		fused, err := NewSession(m, gpu.NewCPU())
		if err != nil {
			t.Fatal(err)
		}
		apart, err := NewSession(m, gpu.NewCPU(), "c")
		if err != nil {
			t.Fatal(err)
		}
		if len(fused.main.steps) != 1 || fused.main.steps[0].op != "Conv" || len(apart.main.steps) != 2 {
			t.Fatalf("fused plan has %d steps, unfused %d", len(fused.main.steps), len(apart.main.steps))
		}
		x, _ := nn.New(nn.Float32, []int{1, 4, 5, 6}, 1000)
		for i := range x.F32 {
			x.F32[i] = float32(rng.NormFloat64())
		}
		a, err := fused.Run(map[string]*nn.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		b, err := apart.Run(map[string]*nn.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := compare(a["y"], b["y"], 1e-5, 1e-4); err != nil {
			t.Fatalf("bias %v: fused differs: %v", withBias, err)
		}
	}
}
