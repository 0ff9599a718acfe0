package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
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

func scalarInit(name string, v float32, dims ...int64) *pb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = v + float32(i)*0.1
	}
	return &pb.TensorProto{Name: strp(name), DataType: i32p(int32(nn.Float32)), Dims: dims, FloatData: vals}
}

// TestFuseEpilogue: each chain an exporter writes after a Conv runs as one
// FusedConv node and gives what the unfused nodes give (kept apart by asking
// for the Conv output, which stops the fusion).
func TestFuseEpilogue(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	clipAttrs := []string{"c", "zero", "six"}
	cases := []struct {
		name  string
		nodes []*pb.NodeProto
		steps int // nodes in the fused plan
	}{
		{"relu", []*pb.NodeProto{nodep("Relu", "r", []string{"c"}, []string{"y"})}, 1},
		{"hardswish as Add-Clip-Mul-Div, affine around it", []*pb.NodeProto{
			nodep("Mul", "m1", []string{"chan", "c"}, []string{"a"}),
			nodep("Add", "a1", []string{"a", "one"}, []string{"b"}),
			nodep("Add", "a3", []string{"b", "three"}, []string{"d"}),
			nodep("Clip", "cl", []string{"d", "zero", "six"}, []string{"e"}),
			nodep("Mul", "mx", []string{"b", "e"}, []string{"f"}),
			nodep("Div", "dv", []string{"f", "six"}, []string{"g"}),
			nodep("Sub", "sb", []string{"one", "g"}, []string{"y"})}, 1},
		{"scalar affine, spelled HardSwish, scalar affine (simplified to three passes)", []*pb.NodeProto{
			nodep("Mul", "m1", []string{"three", "c"}, []string{"a"}),
			nodep("Add", "a1", []string{"a", "one"}, []string{"b"}),
			nodep("Add", "a3", []string{"three", "b"}, []string{"d"}),
			nodep("Clip", "cl", []string{"d", "zero", "six"}, []string{"e"}),
			nodep("Mul", "mx", []string{"e", "b"}, []string{"f"}),
			nodep("Div", "dv", []string{"f", "six"}, []string{"g"}),
			nodep("Mul", "m2", []string{"g", "six"}, []string{"h"}),
			nodep("Add", "a2", []string{"h", "one"}, []string{"y"})}, 1},
		{"LeakyRelu, Max with a constant (one LeakyMax step)", []*pb.NodeProto{
			nodep("LeakyRelu", "lr", []string{"c"}, []string{"b"},
				&pb.AttributeProto{Name: strp("alpha"), Type: attrTypep(pb.AttributeProto_FLOAT), F: func() *float32 { f := float32(0.2); return &f }()}),
			nodep("Max", "mx", []string{"one", "b"}, []string{"y"})}, 1},
		{"residual Add, LeakyRelu, Max", []*pb.NodeProto{
			nodep("Add", "res", []string{"c", "r"}, []string{"a"}),
			nodep("LeakyRelu", "lr", []string{"a"}, []string{"b"},
				&pb.AttributeProto{Name: strp("alpha"), Type: attrTypep(pb.AttributeProto_FLOAT), F: func() *float32 { f := float32(0.2); return &f }()}),
			nodep("Max", "mx", []string{"b", "one"}, []string{"y"})}, 1},
		{"HardSigmoid, HardSwish, Sigmoid, Tanh, Div by channel", []*pb.NodeProto{
			nodep("HardSigmoid", "hs", []string{"c"}, []string{"a"}),
			nodep("HardSwish", "hw", []string{"a"}, []string{"b"}),
			nodep("Sigmoid", "sg", []string{"b"}, []string{"d"}),
			nodep("Tanh", "th", []string{"d"}, []string{"e"}),
			nodep("Div", "dv", []string{"e", "chan"}, []string{"y"})}, 1},
		{"an intermediate read outside the chain stops it", []*pb.NodeProto{
			nodep("Relu", "r1", []string{"c"}, []string{"a"}),
			nodep("Clip", "cl", append([]string{"a"}, clipAttrs[1:]...), []string{"b"}),
			nodep("Add", "out", []string{"b", "a"}, []string{"d"}),
			nodep("Concat", "cat", []string{"d", "a"}, []string{"y"},
				&pb.AttributeProto{Name: strp("axis"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(1)})}, 4}, // FusedConv(Relu), Clip, Add, Concat
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := append([]*pb.NodeProto{nodep("Conv", "conv", []string{"x", "w", "bias"}, []string{"c"},
				&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(2)},
				&pb.AttributeProto{Name: strp("pads"), Type: attrTypep(pb.AttributeProto_INTS), Ints: []int64{1, 1, 1, 1}})}, tc.nodes...)
			g := &pb.GraphProto{Name: strp("epi"), Node: nodes,
				Initializer: []*pb.TensorProto{randTensor(rng, "w", false, 6, 2, 3, 3), randTensor(rng, "bias", false, 6),
					randTensor(rng, "chan", true, 1, 6, 1, 1), scalarInit("one", 1), scalarInit("three", 3), scalarInit("zero", 0), scalarInit("six", 6)},
				Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 4, 5, 7), valueProto("r", nn.Float32, 1, 6, 5, 7)},
				Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
			m, err := Decode(marshal(t, model(13, g)), "epi.onnx", "", Options{})
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
			if len(fused.main.steps) != tc.steps || len(apart.main.steps) != len(nodes) {
				t.Fatalf("fused plan has %d steps (want %d), unfused %d (want %d)", len(fused.main.steps), tc.steps, len(apart.main.steps), len(nodes))
			}
			if tc.steps == 1 && fused.main.steps[0].op != "FusedConv" {
				t.Fatalf("the plan runs %s", fused.main.steps[0].op)
			}
			if strings.HasPrefix(tc.name, "LeakyRelu, Max") {
				if e := fused.main.steps[0].epi; len(e.steps) != 1 || e.steps[0].op != eLeakyMax || !e.biasFirst {
					t.Fatalf("program %+v, want one LeakyMax with the bias inside", e)
				}
			}
			if strings.HasPrefix(tc.name, "scalar affine") {
				var kinds []epiKind
				for _, st := range fused.main.steps[0].epi.steps {
					kinds = append(kinds, st.op)
				}
				if fmt.Sprint(kinds) != fmt.Sprint([]epiKind{eAffine, eHardSwish, eAffine}) {
					t.Fatalf("program %v, want affine, HardSwish, affine", kinds)
				}
			}
			in := map[string]*nn.Tensor{}
			for name, shape := range map[string][]int{"x": {1, 4, 5, 7}, "r": {1, 6, 5, 7}} {
				x, _ := nn.New(nn.Float32, shape, 1000)
				for i := range x.F32 {
					x.F32[i] = float32(rng.NormFloat64() * 3)
				}
				in[name] = x
			}
			a, err := fused.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := apart.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := compare(a["y"], b["y"], 1e-5, 1e-5); err != nil {
				t.Fatalf("fused differs: %v", err)
			}
		})
	}
}

// TestFuseLayerNormGelu: torch's exported LayerNorm (ReduceMean, Sub, Pow,
// ReduceMean, Add, Sqrt, Div, Mul, Add) and exact GELU (Div, Erf, Add, Mul,
// Mul) each become one node and give what the unfused nodes give; asking for
// an intermediate value keeps the pattern apart.
func TestFuseLayerNormGelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	axes := &pb.AttributeProto{Name: strp("axes"), Type: attrTypep(pb.AttributeProto_INTS), Ints: []int64{-1}}
	ln := []*pb.NodeProto{
		nodep("ReduceMean", "m", []string{"x"}, []string{"mean"}, axes),
		nodep("Sub", "s", []string{"x", "mean"}, []string{"d"}),
		nodep("Pow", "p", []string{"d", "two"}, []string{"sq"}),
		nodep("ReduceMean", "v", []string{"sq"}, []string{"var"}, axes),
		nodep("Add", "e", []string{"var", "eps"}, []string{"ve"}),
		nodep("Sqrt", "r", []string{"ve"}, []string{"std"}),
		nodep("Div", "n", []string{"d", "std"}, []string{"norm"}),
		nodep("Mul", "g", []string{"norm", "gamma"}, []string{"scaled"}),
		nodep("Add", "b", []string{"scaled", "beta"}, []string{"h"}),
	}
	gelu := []*pb.NodeProto{
		nodep("Div", "gd", []string{"h", "sqrt2"}, []string{"u"}),
		nodep("Erf", "ge", []string{"u"}, []string{"erf"}),
		nodep("Add", "ga", []string{"erf", "one"}, []string{"erf1"}),
		nodep("Mul", "gm", []string{"h", "erf1"}, []string{"xe"}),
		nodep("Mul", "gh", []string{"xe", "half"}, []string{"y"}),
	}
	g := &pb.GraphProto{Name: strp("lngelu"), Node: append(ln, gelu...),
		Initializer: []*pb.TensorProto{randTensor(rng, "gamma", false, 16), randTensor(rng, "beta", false, 16),
			scalarInit("two", 2), scalarInit("eps", 1e-5), scalarInit("sqrt2", float32(math.Sqrt2)), scalarInit("one", 1), scalarInit("half", 0.5)},
		Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 2, 3, 16)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "lngelu.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		extra []string
		ops   []string
		steps int
	}{
		{nil, []string{"LayerNormalization", "Gelu"}, 2},
		{[]string{"d"}, []string{"Gelu"}, len(ln) + 1},                   // LayerNorm kept apart
		{[]string{"erf"}, []string{"LayerNormalization"}, 1 + len(gelu)}, // GELU kept apart
	} {
		fused, err := NewSession(m, gpu.NewCPU(), tc.extra...)
		if err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, n := range fused.main.steps {
			if n.op == "LayerNormalization" || n.op == "Gelu" {
				ops = append(ops, n.op)
			}
		}
		want := tc.steps
		if fmt.Sprint(ops) != fmt.Sprint(tc.ops) || len(fused.main.steps) != want {
			t.Fatalf("extra %v: plan %d steps with %v, want %d with %v", tc.extra, len(fused.main.steps), ops, want, tc.ops)
		}
		apart, err := NewSession(m, gpu.NewCPU(), "d", "erf")
		if err != nil {
			t.Fatal(err)
		}
		x, _ := nn.New(nn.Float32, []int{2, 3, 16}, 1000)
		for i := range x.F32 {
			x.F32[i] = float32(rng.NormFloat64()*2 + 1)
		}
		a, err := fused.Run(map[string]*nn.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		b, err := apart.Run(map[string]*nn.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := compare(a["y"], b["y"], 1e-5, 1e-5); err != nil {
			t.Fatalf("extra %v: fused differs: %v", tc.extra, err)
		}
	}
}

// TestSimplifyEpilogueKeepsShared: a pattern whose intermediate value a later
// step reads again is left as it is, and registers after a rewrite are
// renumbered.
func TestSimplifyEpilogueKeepsShared(t *testing.T) {
	reg := func(r int) epiArg { return epiArg{kind: argReg, reg: r} }
	k := func(v float32) epiArg { return epiArg{kind: argConst, vals: []float32{v}} }
	hsw := []epiStep{
		{op: eAdd, in: [2]epiArg{reg(0), k(3)}},
		{op: eClip, in: [2]epiArg{reg(1)}, a: 0, b: 6},
		{op: eMul, in: [2]epiArg{reg(2), reg(0)}},
		{op: eDiv, in: [2]epiArg{reg(3), k(6)}},
	}
	shared := append(append([]epiStep(nil), hsw...), epiStep{op: eAdd, in: [2]epiArg{reg(4), reg(2)}})
	if got := simplifyEpilogue(shared); len(got) != len(shared) {
		t.Fatalf("clip output read twice, yet rewritten to %d steps", len(got))
	}
	// Mul-Add by scalars, then the HardSwish, then a step reading both the
	// affine result and the HardSwish result
	prog := append([]epiStep{{op: eMul, in: [2]epiArg{k(2), reg(0)}}, {op: eAdd, in: [2]epiArg{reg(1), k(1)}}},
		epiStep{op: eAdd, in: [2]epiArg{reg(2), k(3)}}, epiStep{op: eClip, in: [2]epiArg{reg(3)}, a: 0, b: 6},
		epiStep{op: eMul, in: [2]epiArg{reg(2), reg(4)}}, epiStep{op: eDiv, in: [2]epiArg{reg(5), k(6)}},
		epiStep{op: eSub, in: [2]epiArg{reg(6), reg(2)}})
	got := simplifyEpilogue(prog)
	want := []epiStep{
		{op: eAffine, in: [2]epiArg{reg(0)}, a: 2, b: 1},
		{op: eHardSwish, in: [2]epiArg{reg(1)}},
		{op: eSub, in: [2]epiArg{reg(2), reg(1)}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
