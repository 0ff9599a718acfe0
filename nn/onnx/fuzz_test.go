package onnx

import (
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// fuzzOptions keep fuzzed models small enough to run quickly.
var fuzzOptions = Options{MaxTensorElements: 1 << 16, MaxFileBytes: 1 << 20}

// FuzzDecode feeds arbitrary bytes to Decode; a model that loads is also
// planned and, when it has f32 inputs of fixed small shapes, run. Nothing
// may panic.
func FuzzDecode(f *testing.F) {
	f.Add(marshal(f, model(13, reluGraph())))
	f.Add(marshal(f, model(13, nestedIf(2))))
	f.Add([]byte{0x0a, 0x00})
	// int8 files in both modes: mutated QDQ parameters reach fuseQDQ and
	// the fused QLinearConv/QLinearMatMul, ConvIntegerScaled the dynamic ones
	for _, mode := range []string{QuantizeDynamic, QuantizeStatic} {
		x := randInput(25, 2, 3, 8, 8)
		if q, _, err := Quantize(marshal(f, model(13, mlpConvGraph())), "q.onnx", QuantizeOptions{Mode: mode, Calibration: []map[string]*nn.Tensor{{"x": x}}}); err == nil {
			f.Add(q)
		}
	}
	for _, c := range []string{"conv_group2_stride2_pads", "lstm_bidirectional_peep", "resize_linear_half_pixel", "slice_inputs_neg_step"} {
		if data, err := os.ReadFile("testdata/ops/" + c + "/model.onnx"); err == nil {
			f.Add(data)
		}
	}
	if data, err := os.ReadFile("../../../shared/models/melspectrogram.onnx"); err == nil && len(data) < 1<<21 {
		f.Add(data[:4096])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, "fuzz.onnx", "", fuzzOptions)
		if err != nil {
			return
		}
		_ = m.Unsupported()
		s, err := NewSession(m, gpu.NewCPU())
		if err != nil {
			return
		}
		defer s.Close()
		in := map[string]*nn.Tensor{}
		for _, vi := range m.Inputs() {
			shape := make([]int, len(vi.Shape))
			for i, d := range vi.Shape {
				shape[i] = 2
				if d.Value >= 0 && d.Value <= 8 {
					shape[i] = int(d.Value)
				}
			}
			dt := vi.DType
			if dt == 0 {
				dt = nn.Float32
			}
			x, err := nn.New(dt, shape, 1<<10)
			if err != nil {
				return
			}
			in[vi.Name] = x
		}
		_, _ = s.Run(in)
	})
}

// fuzzOps lists the operators FuzzGraph wires together (a function: the
// registry is filled by init, after package variables).
func fuzzOps() []string {
	var ops []string
	for op := range registry {
		if op != "If" && op != "Constant" && !registry[op].internal {
			ops = append(ops, op)
		}
	}
	sort.Strings(ops)
	return ops
}

// FuzzGraph builds a graph from the fuzzer's bytes: each node takes an
// operator and inputs from earlier values (an f32 input, an i64 shape-like
// constant, earlier outputs) and sometimes an attribute, then runs it. Errors
// are expected; panics and unbounded allocations are not.
func FuzzGraph(f *testing.F) {
	f.Add([]byte{0, 0, 1, 5, 1, 2, 3, 4, 9, 9})
	f.Add([]byte{10, 1, 1, 20, 2, 0, 3, 1, 7, 7, 7, 30, 0, 1})
	f.Add([]byte{3, 0, 0, 3, 0, 0, 3, 0, 0, 3, 0, 0})
	ops := fuzzOps()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64 {
			return
		}
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := int(data[0])
			data = data[1:]
			return b
		}
		g := &pb.GraphProto{Name: strp("fuzz"),
			Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 2, 3, 4)},
			Initializer: []*pb.TensorProto{i64Tensor("s", []int64{4}, 1, 2, 3, 4), i64Tensor("k", []int64{1}, int64(int8(next())))},
		}
		values := []string{"x", "s", "k"}
		for i := 0; len(data) > 0 && i < 8; i++ {
			op := ops[next()%len(ops)]
			nin := next() % 4
			var in []string
			for j := 0; j < nin; j++ {
				in = append(in, values[next()%len(values)])
			}
			var attrs []*pb.AttributeProto
			if a := next(); a%3 == 0 {
				names := slices.Concat(registry[op].attrs, []string{"axis"})
				name := names[next()%len(names)]
				attrs = append(attrs, &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INT), I: i64p(int64(int8(next())))})
			} else if a%3 == 1 {
				names := slices.Concat(registry[op].attrs, []string{"pads"})
				name := names[next()%len(names)]
				attrs = append(attrs, &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: []int64{int64(int8(next())), int64(next() % 4), 1, 1}})
			}
			out := "v" + string(rune('a'+i))
			g.Node = append(g.Node, nodep(op, out, in, []string{out}, attrs...))
			values = append(values, out)
		}
		g.Output = []*pb.ValueInfoProto{{Name: strp(values[len(values)-1])}}
		m, err := Decode(marshal(t, model(int64(13+next()%9), g)), "fuzz.onnx", "", fuzzOptions)
		if err != nil {
			return
		}
		s, err := NewSession(m, gpu.NewCPU())
		if err != nil {
			return
		}
		defer s.Close()
		x, _ := nn.New(nn.Float32, []int{1, 2, 3, 4}, 100)
		for i := range x.F32 {
			x.F32[i] = float32(i) - 10
		}
		_, _ = s.Run(map[string]*nn.Tensor{"x": x})
	})
}
