package onnx

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// quantSession is a one-node model whose every input is a graph input, so
// a test can feed it hostile scales, zero points and shapes at Run.
func quantSession(t *testing.T, op string, inputs []string, dts []nn.DType, nOut int, attrs ...*pb.AttributeProto) *Session {
	t.Helper()
	g := &pb.GraphProto{Name: strp("q")}
	var outs []string
	for i := range nOut {
		o := "y" + string(rune('0'+i))
		outs = append(outs, o)
		g.Output = append(g.Output, &pb.ValueInfoProto{Name: strp(o)})
	}
	g.Node = []*pb.NodeProto{nodep(op, "node_"+op, inputs, outs, attrs...)}
	for i, n := range inputs {
		if n == "" {
			continue
		}
		vi := valueProto(n, dts[i])
		vi.Type.GetTensorType().Shape = nil // any rank
		g.Input = append(g.Input, vi)
	}
	m, err := Decode(marshal(t, model(14, g)), "q.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func f32T(shape []int, v ...float32) *nn.Tensor {
	return &nn.Tensor{DType: nn.Float32, Shape: shape, F32: v}
}

func qT(dt nn.DType, shape []int, v ...uint8) *nn.Tensor {
	return &nn.Tensor{DType: dt, Shape: shape, U8: v}
}

func i32T(shape []int, v ...int32) *nn.Tensor {
	return &nn.Tensor{DType: nn.Int32, Shape: shape, I32: v}
}

func intAttr(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INT), I: i64p(v)}
}

// Hostile quantization parameters: each is refused with an error that
// names the node and the input, and nothing panics.
func TestQuantHostile(t *testing.T) {
	U, I, F := nn.Uint8, nn.Int8, nn.Float32
	scalar := []int{}
	x := f32T([]int{2, 3}, 1, 2, 3, 4, 5, 6)
	qx := qT(U, []int{2, 3}, 1, 2, 3, 4, 5, 6)
	for _, tc := range []struct {
		name   string
		op     string
		inputs []string
		dts    []nn.DType
		feed   []*nn.Tensor
		attrs  []*pb.AttributeProto
		want   string
	}{
		{"zero scale", "QuantizeLinear", []string{"x", "s"}, []nn.DType{F, F}, []*nn.Tensor{x, f32T(scalar, 0)}, nil, "y_scale 0 is not a positive finite scale"},
		{"NaN scale", "DequantizeLinear", []string{"x", "s"}, []nn.DType{U, F}, []*nn.Tensor{qx, f32T(scalar, float32NaN())}, nil, "x_scale NaN"},
		{"scale of the wrong length", "QuantizeLinear", []string{"x", "s"}, []nn.DType{F, F}, []*nn.Tensor{x, f32T([]int{2}, 1, 1)}, nil, "want a scalar or [3]"},
		{"axis out of range", "QuantizeLinear", []string{"x", "s"}, []nn.DType{F, F}, []*nn.Tensor{x, f32T([]int{3}, 1, 1, 1)}, []*pb.AttributeProto{intAttr("axis", 5)}, "axis 5"},
		{"zero point of another length", "QuantizeLinear", []string{"x", "s", "z"}, []nn.DType{F, F, U}, []*nn.Tensor{x, f32T([]int{3}, 1, 1, 1), qT(U, []int{2}, 0, 0)}, nil, "y_zero_point of shape [2]"},
		{"zero point dtype", "DequantizeLinear", []string{"x", "s", "z"}, []nn.DType{U, F, I}, []*nn.Tensor{qx, f32T(scalar, 1), qT(I, scalar, 0)}, nil, "x_zero_point is i8, the data is u8"},
		{"blocked", "QuantizeLinear", []string{"x", "s"}, []nn.DType{F, F}, []*nn.Tensor{x, f32T(scalar, 1)}, []*pb.AttributeProto{intAttr("block_size", 2)}, "block_size 2"},
		{"float data", "DequantizeLinear", []string{"x", "s"}, []nn.DType{F, F}, []*nn.Tensor{x, f32T(scalar, 1)}, nil, "want u8, i8 or i32"},
		{"dynamic NaN", "DynamicQuantizeLinear", []string{"x"}, []nn.DType{F}, []*nn.Tensor{f32T([]int{2}, 1, float32NaN())}, nil, "NaN"},
		{"matmul inner", "MatMulInteger", []string{"a", "b"}, []nn.DType{U, U}, []*nn.Tensor{qx, qT(U, []int{2, 3}, 1, 2, 3, 4, 5, 6)}, nil, "inner dimensions differ"},
		{"matmul f32", "MatMulInteger", []string{"a", "b"}, []nn.DType{F, U}, []*nn.Tensor{x, qT(U, []int{3, 1}, 1, 2, 3)}, nil, "want u8 or i8"},
		{"matmul zero point", "MatMulInteger", []string{"a", "b", "az"}, []nn.DType{U, U, U}, []*nn.Tensor{qx, qT(U, []int{3, 1}, 1, 2, 3), qT(U, []int{3}, 1, 2, 3)}, nil, "a_zero_point of shape [3] (want a scalar or [2])"},
		{"conv group", "ConvInteger", []string{"x", "w"}, []nn.DType{U, U}, []*nn.Tensor{qT(U, []int{1, 3, 2, 2}, make([]uint8, 12)...), qT(U, []int{2, 3, 1, 1}, make([]uint8, 6)...)}, []*pb.AttributeProto{intAttr("group", 2)}, "group 2"},
		{"qconv bias", "QLinearConv", []string{"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"}, []nn.DType{U, F, U, U, F, U, F, U, nn.Int32},
			[]*nn.Tensor{qT(U, []int{1, 1, 2, 2}, 1, 2, 3, 4), f32T(scalar, 1), qT(U, scalar, 0), qT(U, []int{2, 1, 1, 1}, 1, 1), f32T(scalar, 1), qT(U, scalar, 0), f32T(scalar, 1), qT(U, scalar, 0), i32T([]int{3}, 1, 2, 3)}, nil,
			"bias i32[3] (want i32 [2])"},
		{"qmatmul y zero point", "QLinearMatMul", []string{"a", "as", "az", "b", "bs", "bz", "ys", "yz"}, []nn.DType{U, F, U, U, F, U, F, F},
			[]*nn.Tensor{qx, f32T(scalar, 1), qT(U, scalar, 0), qT(U, []int{3, 1}, 1, 2, 3), f32T(scalar, 1), qT(U, scalar, 0), f32T(scalar, 1), f32T(scalar, 0)}, nil,
			"want u8 or i8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quantSession(t, tc.op, tc.inputs, tc.dts, map[string]int{"DynamicQuantizeLinear": 3}[tc.op]+boolInt(tc.op != "DynamicQuantizeLinear"), tc.attrs...)
			feed := map[string]*nn.Tensor{}
			for i, n := range tc.inputs {
				feed[n] = tc.feed[i]
			}
			_, err := s.Run(feed)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.op) {
				t.Fatalf("error %q: want it to name %s and say %q", err, tc.op, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v is neither ErrInvalid nor ErrUnsupported", err)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func float32NaN() float32 {
	var z float32
	return z / z
}

// The int32 accumulation is exact where an f32 one would not be: a long
// dot product of 255s.
func TestMatMulIntegerExact(t *testing.T) {
	const k = 4096
	a := make([]uint8, k)
	b := make([]uint8, k)
	for i := range a {
		a[i], b[i] = 255, 255
	}
	s := quantSession(t, "MatMulInteger", []string{"a", "b"}, []nn.DType{nn.Uint8, nn.Uint8}, 1)
	out, err := s.Run(map[string]*nn.Tensor{"a": qT(nn.Uint8, []int{1, k}, a...), "b": qT(nn.Uint8, []int{k, 1}, b...)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out["y0"].I32[0], int32(255*255*k); got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
}

func i64T(shape []int, v ...int64) *nn.Tensor {
	return &nn.Tensor{DType: nn.Int64, Shape: shape, I64: v}
}

// Shape bombs and bad operands of Tile, Split, Trilu, GRU and RNN.
func TestMoreHostile(t *testing.T) {
	F, L := nn.Float32, nn.Int64
	one := f32T([]int{1, 1}, 1)
	for _, tc := range []struct {
		name   string
		op     string
		inputs []string
		dts    []nn.DType
		feed   []*nn.Tensor
		nOut   int
		attrs  []*pb.AttributeProto
		want   string
	}{
		{"tile bomb", "Tile", []string{"x", "r"}, []nn.DType{F, L}, []*nn.Tensor{one, i64T([]int{2}, 1<<20, 1<<20)}, 1, nil, "limit"},
		{"tile dim overflow", "Tile", []string{"x", "r"}, []nn.DType{F, L}, []*nn.Tensor{f32T([]int{2, 1}, 1, 2), i64T([]int{2}, 1<<31-1, 1)}, 1, nil, "over 2^31"},
		{"tile negative", "Tile", []string{"x", "r"}, []nn.DType{F, L}, []*nn.Tensor{one, i64T([]int{2}, -1, 1)}, 1, nil, "repeats"},
		{"tile rank", "Tile", []string{"x", "r"}, []nn.DType{F, L}, []*nn.Tensor{one, i64T([]int{1}, 2)}, 1, nil, "1 repeats for input [1 1]"},
		{"split sum", "Split", []string{"x", "s"}, []nn.DType{F, L}, []*nn.Tensor{f32T([]int{3}, 1, 2, 3), i64T([]int{2}, 1, 1)}, 2, nil, "add up to 2, the axis has 3"},
		{"split negative", "Split", []string{"x", "s"}, []nn.DType{F, L}, []*nn.Tensor{f32T([]int{3}, 1, 2, 3), i64T([]int{2}, 4, -1)}, 2, nil, "split size -1"},
		{"split count", "Split", []string{"x", "s"}, []nn.DType{F, L}, []*nn.Tensor{f32T([]int{3}, 1, 2, 3), i64T([]int{3}, 1, 1, 1)}, 2, nil, "3 split sizes for 2 outputs"},
		{"trilu rank", "Trilu", []string{"x"}, []nn.DType{F}, []*nn.Tensor{f32T([]int{3}, 1, 2, 3)}, 1, nil, "want rank >= 2"},
		{"rnn weights", "RNN", []string{"x", "w", "r"}, []nn.DType{F, F, F}, []*nn.Tensor{f32T([]int{1, 1, 2}, 1, 2), f32T([]int{1, 3, 2}, 1, 2, 3, 4, 5, 6), f32T([]int{1, 2, 2}, 1, 2, 3, 4)}, 2, nil, "for hidden_size 2"},
		{"gru lens", "GRU", []string{"x", "w", "r", "", "sl"}, []nn.DType{F, F, F, 0, nn.Int32},
			[]*nn.Tensor{f32T([]int{1, 1, 1}, 1), f32T([]int{1, 3, 1}, 1, 2, 3), f32T([]int{1, 3, 1}, 1, 2, 3), nil, i32T([]int{1}, 9)}, 2, nil, "sequence_lens[0] = 9 outside 0..1"},
		{"gru direction", "GRU", []string{"x", "w", "r"}, []nn.DType{F, F, F},
			[]*nn.Tensor{f32T([]int{1, 1, 1}, 1), f32T([]int{1, 3, 1}, 1, 2, 3), f32T([]int{1, 3, 1}, 1, 2, 3)}, 2,
			[]*pb.AttributeProto{{Name: strp("direction"), Type: attrTypep(pb.AttributeProto_STRING), S: []byte("sideways")}}, "direction \"sideways\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quantSession(t, tc.op, tc.inputs, tc.dts, tc.nOut, tc.attrs...)
			feed := map[string]*nn.Tensor{}
			for i, n := range tc.inputs {
				if n != "" {
					feed[n] = tc.feed[i]
				}
			}
			_, err := s.Run(feed)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.op) {
				t.Fatalf("error %q: want it to name %s and say %q", err, tc.op, tc.want)
			}
		})
	}
}

// TestMatMulIntegerConstWeights: a MatMulInteger whose s8 weights are an
// initializer (gpu's u8 x s8 product, weights transposed once per node)
// against the same product with the weights fed as an input (the generic
// loop), batched activations and a nonzero activation zero point, run twice
// (the second Run reuses the node's transposed weights).
func TestMatMulIntegerConstWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sh := range [][4]int{{2, 3, 130, 7}, {1, 5, 64, 8}, {1, 2, 32, 3}} {
		nb, m, k, n := sh[0], sh[1], sh[2], sh[3]
		w := make([]int8, k*n)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
		}
		g := &pb.GraphProto{Name: strp("q"),
			Node: []*pb.NodeProto{nodep("MatMulInteger", "mm", []string{"a", "w", "az", "wz"}, []string{"y"})},
			Initializer: []*pb.TensorProto{i8Proto("w", []int{k, n}, w), u8Proto("az", 131),
				i8Proto("wz", []int{n}, make([]int8, n))},
			Input:  []*pb.ValueInfoProto{valueProto("a", nn.Uint8, nb, m, k)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Int32)}}
		md, err := Decode(marshal(t, model(14, g)), "q.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(md, gpu.NewCPU())
		if err != nil {
			t.Fatal(err)
		}
		ref := quantSession(t, "MatMulInteger", []string{"a", "w", "az", "wz"}, []nn.DType{nn.Uint8, nn.Int8, nn.Uint8, nn.Int8}, 1)
		a := make([]uint8, nb*m*k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		wb := make([]uint8, len(w))
		for i, v := range w {
			wb[i] = uint8(v)
		}
		want, err := ref.Run(map[string]*nn.Tensor{"a": qT(nn.Uint8, []int{nb, m, k}, a...),
			"w": qT(nn.Int8, []int{k, n}, wb...), "az": qT(nn.Uint8, nil, 131), "wz": qT(nn.Int8, []int{n}, make([]uint8, n)...)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := s.Run(map[string]*nn.Tensor{"a": qT(nn.Uint8, []int{nb, m, k}, a...)})
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(got["y"].Shape, want["y0"].Shape) || !slices.Equal(got["y"].I32, want["y0"].I32) {
				t.Fatalf("%v: const-weight product differs from the generic loop", sh)
			}
		}
		s.Close()
	}
}

// TestConvIntegerConstWeights: ConvInteger with initializer s8 weights
// (gpu's u8 x s8 product over u8 patches) against the same convolution with
// the weights fed as an input (the generic loop): pads, strides, dilations,
// groups, 1-D, a nonzero input zero point.
func TestConvIntegerConstWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	ints := func(name string, v ...int64) *pb.AttributeProto {
		return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
	}
	for _, tc := range []struct {
		x, w  []int
		g     int64
		attrs []*pb.AttributeProto
	}{
		{[]int{1, 3, 9, 11}, []int{5, 3, 3, 3}, 1, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1), ints("strides", 2, 1)}},
		{[]int{2, 4, 7, 7}, []int{6, 2, 3, 3}, 2, []*pb.AttributeProto{ints("pads", 0, 1, 2, 1), ints("dilations", 2, 1)}},
		{[]int{1, 8, 5, 5}, []int{8, 1, 3, 3}, 8, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1)}},
		{[]int{1, 2, 40}, []int{17, 2, 9}, 1, []*pb.AttributeProto{ints("strides", 4)}},
		{[]int{2, 19, 6, 7}, []int{9, 19, 1, 1}, 1, nil},                                          // pointwise: the input is the patch matrix
		{[]int{1, 16, 7, 9}, []int{6, 16, 1, 1}, 1, []*pb.AttributeProto{ints("strides", 2, 2)}},  // 1x1 strided
		{[]int{1, 5, 4, 3}, []int{3, 5, 3, 3}, 1, []*pb.AttributeProto{ints("pads", 3, 3, 3, 3)}}, // rows of padding only
		{[]int{1, 3, 6, 9}, []int{4, 3, 5, 5}, 1, []*pb.AttributeProto{ints("pads", 2, 2, 2, 2)}}, // "same": shifted planes
		{[]int{1, 2, 5, 6}, []int{3, 2, 3, 3}, 1, []*pb.AttributeProto{ints("pads", 2, 0, 0, 2)}}, // asymmetric
		{[]int{1, 2, 2, 5}, []int{3, 2, 3, 3}, 1, []*pb.AttributeProto{ints("pads", 2, 1, 2, 1)}}, // taps wholly in padding
		{[]int{1, 1, 1280}, []int{20, 1, 512}, 1, []*pb.AttributeProto{ints("strides", 160)}},     // few pixels: patch rows
		{[]int{1, 24, 3, 3}, []int{32, 24, 3, 3}, 1, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1)}},
	} {
		attrs := append([]*pb.AttributeProto{{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(tc.g)}}, tc.attrs...)
		nw := 1
		for _, d := range tc.w {
			nw *= d
		}
		w := make([]int8, nw)
		wb := make([]uint8, nw)
		for i := range w {
			w[i] = int8(rng.IntN(256) - 128)
			wb[i] = uint8(w[i])
		}
		g := &pb.GraphProto{Name: strp("q"),
			Node:        []*pb.NodeProto{nodep("ConvInteger", "cv", []string{"x", "w", "xz", "wz"}, []string{"y"}, attrs...)},
			Initializer: []*pb.TensorProto{i8Proto("w", tc.w, w), u8Proto("xz", 37), i8Proto("wz", []int{tc.w[0]}, make([]int8, tc.w[0]))},
			Input:       []*pb.ValueInfoProto{valueProto("x", nn.Uint8, anys(tc.x)...)},
			Output:      []*pb.ValueInfoProto{valueProto("y", nn.Int32)}}
		md, err := Decode(marshal(t, model(14, g)), "q.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(md, gpu.NewCPU())
		if err != nil {
			t.Fatal(err)
		}
		ref := quantSession(t, "ConvInteger", []string{"x", "w", "xz", "wz"}, []nn.DType{nn.Uint8, nn.Int8, nn.Uint8, nn.Int8}, 1, attrs...)
		nx := 1
		for _, d := range tc.x {
			nx *= d
		}
		x := make([]uint8, nx)
		for i := range x {
			x[i] = uint8(rng.IntN(256))
		}
		want, err := ref.Run(map[string]*nn.Tensor{"x": qT(nn.Uint8, tc.x, x...), "w": qT(nn.Int8, tc.w, wb...),
			"xz": qT(nn.Uint8, nil, 37), "wz": qT(nn.Int8, []int{tc.w[0]}, make([]uint8, tc.w[0])...)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := s.Run(map[string]*nn.Tensor{"x": qT(nn.Uint8, tc.x, x...)})
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(got["y"].Shape, want["y0"].Shape) || !slices.Equal(got["y"].I32, want["y0"].I32) {
				t.Fatalf("%v x %v: packed ConvInteger differs from the generic loop", tc.x, tc.w)
			}
		}
		s.Close()
	}
}

// QLinearConv with constant s8 weights runs on gpu's s8 x u8 product and
// the vectorised requantisation; its outputs equal the generic loop's.
func TestQLinearConvConstWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	ints := func(name string, v ...int64) *pb.AttributeProto {
		return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
	}
	for _, tc := range []struct {
		x, w  []int
		g     int64
		ydt   nn.DType
		attrs []*pb.AttributeProto
	}{
		{[]int{1, 3, 9, 11}, []int{5, 3, 3, 3}, 1, nn.Uint8, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1), ints("strides", 2, 1)}},
		{[]int{1, 8, 5, 5}, []int{8, 1, 3, 3}, 8, nn.Uint8, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1)}},
		{[]int{2, 24, 6, 6}, []int{20, 24, 1, 1}, 1, nn.Int8, nil},
		{[]int{1, 16, 2, 3}, []int{24, 16, 3, 3}, 1, nn.Uint8, []*pb.AttributeProto{ints("pads", 1, 1, 1, 1)}}, // patch rows
	} {
		attrs := append([]*pb.AttributeProto{intAttr("group", tc.g)}, tc.attrs...)
		m, nw := tc.w[0], 1
		for _, d := range tc.w {
			nw *= d
		}
		w := make([]int8, nw)
		wb := make([]uint8, nw)
		for i := range w {
			w[i] = int8(rng.IntN(127) - 63)
			wb[i] = uint8(w[i])
		}
		ws := make([]float32, m)
		bias := make([]int32, m)
		for i := range ws {
			ws[i] = 0.001 + 0.01*rng.Float32()
			bias[i] = int32(rng.IntN(2000) - 1000)
		}
		yz := uint8(11)
		if tc.ydt == nn.Int8 {
			yz = uint8(0xF6) // -10
		}
		yzp := &pb.TensorProto{Name: strp("yz"), DataType: i32p(int32(tc.ydt)), RawData: []byte{yz}}
		in := []string{"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"}
		g := &pb.GraphProto{Name: strp("q"),
			Node: []*pb.NodeProto{nodep("QLinearConv", "cv", in, []string{"y"}, attrs...)},
			Initializer: []*pb.TensorProto{f32Proto("xs", nil, []float32{0.02}), u8Proto("xz", 120), i8Proto("w", tc.w, w),
				f32Proto("ws", []int{m}, ws), i8Proto("wz", []int{m}, make([]int8, m)), f32Proto("ys", nil, []float32{0.05}), yzp,
				i32Proto("b", []int{m}, bias)},
			Input:  []*pb.ValueInfoProto{valueProto("x", nn.Uint8, anys(tc.x)...)},
			Output: []*pb.ValueInfoProto{valueProto("y", tc.ydt)}}
		md, err := Decode(marshal(t, model(14, g)), "q.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(md, gpu.NewCPU())
		if err != nil {
			t.Fatal(err)
		}
		ref := quantSession(t, "QLinearConv", in, []nn.DType{nn.Uint8, nn.Float32, nn.Uint8, nn.Int8, nn.Float32, nn.Int8, nn.Float32, tc.ydt, nn.Int32}, 1, attrs...)
		nx := 1
		for _, d := range tc.x {
			nx *= d
		}
		x := make([]uint8, nx)
		for i := range x {
			x[i] = uint8(rng.IntN(256))
		}
		want, err := ref.Run(map[string]*nn.Tensor{"x": qT(nn.Uint8, tc.x, x...), "xs": f32T(nil, 0.02), "xz": qT(nn.Uint8, nil, 120),
			"w": qT(nn.Int8, tc.w, wb...), "ws": f32T([]int{m}, ws...), "wz": qT(nn.Int8, []int{m}, make([]uint8, m)...),
			"ys": f32T(nil, 0.05), "yz": qT(tc.ydt, nil, yz), "b": i32T([]int{m}, bias...)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := s.Run(map[string]*nn.Tensor{"x": qT(nn.Uint8, tc.x, x...)})
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(got["y"].Shape, want["y0"].Shape) || !slices.Equal(got["y"].U8, want["y0"].U8) {
				t.Fatalf("%v x %v: packed QLinearConv differs from the generic loop", tc.x, tc.w)
			}
		}
		s.Close()
	}
}
