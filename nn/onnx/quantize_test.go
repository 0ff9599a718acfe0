package onnx

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

func floatAttr(name string, v float32) *pb.AttributeProto {
	return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_FLOAT), F: &v}
}

func intsAttr(name string, v ...int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
}

// randF32 is a deterministic f32 initializer.
func randF32(name string, seed uint64, dims ...int) (*pb.TensorProto, []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * 0.5
	}
	return f32Proto(name, dims, v), v
}

// mlpConvGraph is x[2,3,8,8] -> Conv(4x3x3x3, bias, pads 1) -> Relu ->
// Reshape [2,256] -> MatMul W[256,16] -> Gemm(W2[5,16] transB, C[5],
// alpha 0.5) -> y[2,5]: one node of each kind the rewrite quantizes.
func mlpConvGraph() *pb.GraphProto {
	cw, _ := randF32("conv.w", 1, 4, 3, 3, 3)
	cb, _ := randF32("conv.b", 2, 4)
	mw, _ := randF32("mm.w", 3, 256, 16)
	gw, _ := randF32("gemm.w", 4, 5, 16)
	gc, _ := randF32("gemm.c", 5, 5)
	return &pb.GraphProto{
		Name:        strp("small"),
		Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 2, 3, 8, 8)},
		Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32, 2, 5)},
		Initializer: []*pb.TensorProto{cw, cb, mw, gw, gc, i64Tensor("shape", []int64{2}, 2, 256)},
		Node: []*pb.NodeProto{
			nodep("Conv", "conv", []string{"x", "conv.w", "conv.b"}, []string{"c"}, intsAttr("pads", 1, 1, 1, 1), intsAttr("kernel_shape", 3, 3)),
			nodep("Relu", "relu", []string{"c"}, []string{"r"}),
			nodep("Reshape", "flat", []string{"r", "shape"}, []string{"f"}),
			nodep("MatMul", "mm", []string{"f", "mm.w"}, []string{"h"}),
			nodep("Gemm", "gemm", []string{"h", "gemm.w", "gemm.c"}, []string{"y"}, intAttr("transB", 1), floatAttr("alpha", 0.5)),
		},
	}
}

func randInput(seed uint64, shape ...int) *nn.Tensor {
	r := rand.New(rand.NewPCG(seed, 9))
	t := &nn.Tensor{DType: nn.Float32, Shape: shape}
	n := 1
	for _, d := range shape {
		n *= d
	}
	t.F32 = make([]float32, n)
	for i := range t.F32 {
		t.F32[i] = float32(r.Float64()*2 - 1)
	}
	return t
}

func runModel(t *testing.T, data []byte, feed map[string]*nn.Tensor) map[string]*nn.Tensor {
	t.Helper()
	m, err := Decode(data, "q.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(feed)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func maxAbs(a, b []float32) (diff, peak float64) {
	for i := range a {
		diff = max(diff, math.Abs(float64(a[i]-b[i])))
		peak = max(peak, math.Abs(float64(a[i])))
	}
	return diff, peak
}

func opCounts(t *testing.T, data []byte) map[string]int {
	t.Helper()
	m, err := Decode(data, "q.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Info().Operators
}

// TestQuantizeSmallModel quantizes Conv, MatMul and Gemm in both modes and
// checks the int8 model against the f32 one: within 3 % of the output's
// peak magnitude (7-bit weights, u8 activations, three layers).
func TestQuantizeSmallModel(t *testing.T) {
	src := marshal(t, model(13, mlpConvGraph()))
	x := randInput(11, 2, 3, 8, 8)
	want := runModel(t, src, map[string]*nn.Tensor{"x": x})["y"]
	calib := []map[string]*nn.Tensor{{"x": x}, {"x": randInput(12, 2, 3, 8, 8)}}
	for _, tc := range []struct {
		mode   string
		calib  []map[string]*nn.Tensor
		ops    []string
		absent []string
	}{
		{QuantizeDynamic, nil, []string{"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}, []string{"Conv", "MatMul", "Gemm"}},
		{QuantizeStatic, calib, []string{"QuantizeLinear", "DequantizeLinear", "Conv", "MatMul", "Gemm"}, []string{"MatMulInteger"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out, rep, err := Quantize(src, "small.onnx", QuantizeOptions{Mode: tc.mode, Calibration: tc.calib})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Quantized) != 3 || len(rep.Skipped) != 0 {
				t.Fatalf("report %+v", rep)
			}
			for _, q := range rep.Quantized {
				wantCh := map[string]int{"Conv": 4, "MatMul": 16, "Gemm": 5}[q.OpType]
				if q.Channels != wantCh {
					t.Errorf("%s: %d weight scales, want %d (per channel)", q.Node, q.Channels, wantCh)
				}
			}
			ops := opCounts(t, out)
			for _, op := range tc.ops {
				if ops[op] == 0 {
					t.Errorf("quantized model has no %s: %v", op, ops)
				}
			}
			for _, op := range tc.absent {
				if ops[op] != 0 {
					t.Errorf("quantized model still has %s: %v", op, ops)
				}
			}
			got := runModel(t, out, map[string]*nn.Tensor{"x": x})["y"]
			diff, peak := maxAbs(want.F32, got.F32)
			t.Logf("%s: max |diff| %.4g, peak |y| %.4g, %d -> %d bytes", tc.mode, diff, peak, len(src), len(out))
			if diff > 0.03*peak {
				t.Errorf("max |diff| %g exceeds 3%% of peak %g", diff, peak)
			}
			if len(out) >= len(src)/2 {
				t.Errorf("%d bytes -> %d: weights not shrunk", len(src), len(out))
			}
		})
	}
}

// TestQuantizeLeavesUnsupported: nodes the rewrite cannot quantize stay in
// f32, the report names them and why, and the model still runs.
func TestQuantizeLeavesUnsupported(t *testing.T) {
	tw, _ := randF32("ct.w", 1, 2, 3, 3, 3)
	g := &pb.GraphProto{
		Name:        strp("mixed"),
		Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 2, 4, 4), valueProto("b", nn.Float32, 6, 4)},
		Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32, 1, 3, 6, 4)},
		Initializer: []*pb.TensorProto{tw},
		Node: []*pb.NodeProto{
			nodep("ConvTranspose", "up", []string{"x", "ct.w"}, []string{"u"}),
			nodep("MatMul", "dyn_mm", []string{"u", "b"}, []string{"y"}),
		},
	}
	src := marshal(t, model(13, g))
	out, rep, err := Quantize(src, "mixed.onnx", QuantizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Quantized) != 0 || len(rep.Skipped) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []string{`node "up" (ConvTranspose) left in f32: operator not quantized`, `node "dyn_mm" (MatMul) left in f32: weight "b" is not a constant`} {
		if s := rep.Skipped[i].String(); !strings.Contains(s, want) {
			t.Errorf("skipped[%d] = %q, want %q", i, s, want)
		}
	}
	feed := map[string]*nn.Tensor{"x": randInput(1, 1, 2, 4, 4), "b": randInput(2, 6, 4)}
	a, b := runModel(t, src, feed)["y"], runModel(t, out, feed)["y"]
	if d, _ := maxAbs(a.F32, b.F32); d != 0 {
		t.Errorf("f32 nodes changed: max |diff| %g", d)
	}
}

// TestQuantizeHostile: bad models and options fail with a clear error and
// no panic.
func TestQuantizeHostile(t *testing.T) {
	up := reluGraph()
	up.Node = append(up.Node, nodep("Upsample", "up9", []string{"y"}, []string{"z"}))
	up.Output[0].Name = strp("z")
	good := marshal(t, model(13, mlpConvGraph()))
	for _, tc := range []struct {
		name string
		data []byte
		opts QuantizeOptions
		is   error
		want string
	}{
		{"garbage", []byte("not a model at all"), QuantizeOptions{}, ErrInvalid, "bad.onnx"},
		{"truncated", good[:len(good)/2], QuantizeOptions{}, ErrInvalid, "bad.onnx"},
		{"mode", good, QuantizeOptions{Mode: "float16"}, nil, `mode "float16"`},
		{"static without calibration", good, QuantizeOptions{Mode: QuantizeStatic}, nil, "at least one calibration feed"},
		{"calibration feed missing an input", good, QuantizeOptions{Mode: QuantizeStatic, Calibration: []map[string]*nn.Tensor{{}}}, nil, "calibration: feed 0"},
		{"calibration feed of the wrong shape", good, QuantizeOptions{Mode: QuantizeStatic, Calibration: []map[string]*nn.Tensor{{"x": randInput(1, 1, 3)}}}, nil, "calibration: feed 0"},
		{"opset 9 op that changes meaning", marshal(t, model(9, up)), QuantizeOptions{}, ErrUnsupported, `"up9" (Upsample)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Quantize(tc.data, "bad.onnx", tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestQuantizeUpgradesOpset9: Slice and Clip move from attributes to
// inputs when an opset 9 model is lifted to 11, and the answer is kept.
func TestQuantizeUpgradesOpset9(t *testing.T) {
	g := mlpConvGraph()
	g.Node = append(g.Node,
		nodep("Clip", "clip", []string{"y"}, []string{"yc"}, floatAttr("min", -0.1), floatAttr("max", 0.2)),
		nodep("Slice", "slice", []string{"yc"}, []string{"ys"}, intsAttr("starts", 1), intsAttr("ends", 4), intsAttr("axes", 1)))
	g.Output = []*pb.ValueInfoProto{valueProto("ys", nn.Float32, 2, 3)}
	src := marshal(t, model(9, g))
	out, rep, err := Quantize(src, "o9.onnx", QuantizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OpsetFrom != 9 || rep.OpsetTo != 11 || len(rep.Quantized) != 3 {
		t.Fatalf("report %+v", rep)
	}
	x := map[string]*nn.Tensor{"x": randInput(3, 2, 3, 8, 8)}
	a, b := runModel(t, src, x)["ys"], runModel(t, out, x)["ys"]
	if !equalInts(a.Shape, b.Shape) {
		t.Fatalf("shape %v, want %v", b.Shape, a.Shape)
	}
	if d, _ := maxAbs(a.F32, b.F32); d > 0.02 {
		t.Errorf("max |diff| %g", d)
	}
}

// TestQuantizeOnnxruntime runs the quantized small model through
// onnxruntime (python3) and compares with fennec's run of the same file.
func TestQuantizeOnnxruntime(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipping: python3 is not installed (apt-get install python3 python3-numpy; pip install onnxruntime)")
	}
	if err := exec.Command(py, "-c", "import onnxruntime, numpy").Run(); err != nil {
		t.Skip("skipping: python3 lacks onnxruntime or numpy (pip install onnxruntime numpy)")
	}
	src := marshal(t, model(13, mlpConvGraph()))
	x := randInput(21, 2, 3, 8, 8)
	dir := t.TempDir()
	xf, err := os.Create(filepath.Join(dir, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nn.WriteNPY(xf, x); err != nil {
		t.Fatal(err)
	}
	xf.Close()
	for _, mode := range []string{QuantizeDynamic, QuantizeStatic} {
		out, _, err := Quantize(src, "small.onnx", QuantizeOptions{Mode: mode, Calibration: []map[string]*nn.Tensor{{"x": x}}})
		if err != nil {
			t.Fatal(err)
		}
		mp := filepath.Join(dir, mode+".onnx")
		if err := os.WriteFile(mp, out, 0o644); err != nil {
			t.Fatal(err)
		}
		yp := filepath.Join(dir, mode+".y.npy")
		script := fmt.Sprintf(`import numpy as np, onnxruntime as ort
s = ort.InferenceSession(%q, providers=["CPUExecutionProvider"])
np.save(%q, s.run(None, {"x": np.load(%q)})[0])`, mp, yp, filepath.Join(dir, "x.npy"))
		if b, err := exec.Command(py, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("%s: onnxruntime refused the quantized model: %v\n%s", mode, err, b)
		}
		ort := readNPY(t, yp)
		got := runModel(t, out, map[string]*nn.Tensor{"x": x})["y"]
		diff, peak := maxAbs(ort.F32, got.F32)
		t.Logf("%s: fennec vs onnxruntime on the int8 model: max |diff| %.3g (peak %.3g)", mode, diff, peak)
		// Both run the same integer arithmetic; what differs is f32
		// rounding of the scales and, in static mode, where onnxruntime
		// fuses QDQ into QLinearConv and requantises between layers.
		if diff > 0.02*peak {
			t.Errorf("%s: fennec and onnxruntime differ by %g (peak %g)", mode, diff, peak)
		}
	}
}

// TestQuantizeSharedModels quantizes each real model (dynamic) and checks
// the int8 model still runs in fennec, near the f32 outputs of the parity
// inputs. Figures for BENCHMARKS.md come from BenchmarkQuantized and
// testdata/quantize_ort.py.
func TestQuantizeSharedModels(t *testing.T) {
	for _, tc := range []struct {
		model string
		tol   float64 // max |diff| against the f32 output
	}{
		{"ch_ppocr_mobile_v2.0_cls_infer", 0.05},
		{"melspectrogram", 1},
		{"silero_vad_v5", 0.01},
	} {
		t.Run(tc.model, func(t *testing.T) {
			p := sharedModel(t, tc.model+".onnx")
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out, rep, err := Quantize(src, tc.model, QuantizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Quantized) == 0 {
				t.Fatalf("nothing quantized: %+v", rep.Skipped)
			}
			m, err := Decode(out, tc.model, "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			ref := filepath.Join("testdata", "ref", tc.model)
			in := map[string]*nn.Tensor{}
			for i, vi := range m.Inputs() {
				in[vi.Name] = readNPY(t, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
			}
			got := runModel(t, out, in)[m.Outputs()[0].Name]
			want := readNPY(t, filepath.Join(ref, "output_0.npy"))
			diff, _ := maxAbs(want.F32, got.F32)
			t.Logf("%s: %d -> %d bytes, %d nodes int8, max |diff| %.4g", tc.model, len(src), len(out), len(rep.Quantized), diff)
			if diff > tc.tol {
				t.Errorf("max |diff| %g > %g", diff, tc.tol)
			}
		})
	}
}

// FuzzQuantize feeds arbitrary bytes to Quantize; what it writes must load.
func FuzzQuantize(f *testing.F) {
	f.Add(marshal(f, model(13, mlpConvGraph())))
	f.Add(marshal(f, model(9, reluGraph())))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := Quantize(data, "fuzz.onnx", QuantizeOptions{Load: fuzzOptions})
		if err != nil {
			return
		}
		if _, err := Decode(out, "fuzz.onnx", "", Options{MaxTensorElements: 1 << 18, MaxFileBytes: 1 << 22}); err != nil {
			t.Fatalf("quantized model does not load: %v", err)
		}
	})
}

func ExampleQuantize() {
	g := &pb.GraphProto{
		Name:   strp("lin"),
		Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 4)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32, 1, 2)},
		Initializer: []*pb.TensorProto{
			f32Proto("w", []int{4, 2}, []float32{1, -2, 0.5, 0.25, -1, 2, 0.125, 1}),
		},
		Node: []*pb.NodeProto{nodep("MatMul", "mm", []string{"x", "w"}, []string{"y"})},
	}
	data, _ := proto.Marshal(model(13, g))
	out, rep, err := Quantize(data, "lin.onnx", QuantizeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := Decode(out, "lin.onnx", "", Options{})
	s, _ := NewSession(m, gpu.NewCPU())
	defer s.Close()
	res, _ := s.Run(map[string]*nn.Tensor{"x": {DType: nn.Float32, Shape: []int{1, 4}, F32: []float32{1, 2, 3, 4}}})
	fmt.Println(rep.Quantized[0].Node, rep.Quantized[0].OpType, "channels", rep.Quantized[0].Channels)
	fmt.Printf("int8: %.2f (f32: [-0.50 8.50])\n", res["y"].F32)
	// Output:
	// mm MatMul channels 2
	// int8: [-0.50 8.43] (f32: [-0.50 8.50])
}

// TestQuantizeFoldsBatchNorm: a Conv -> BatchNormalization pair is folded
// into one Conv before quantization (no f32 BatchNormalization after the
// int8 convolution), the outputs near the f32 model's; a BatchNormalization
// whose input has another reader stays.
func TestQuantizeFoldsBatchNorm(t *testing.T) {
	cw, _ := randF32("w", 11, 6, 3, 3, 3)
	g1, _ := randF32("g", 12, 6)
	b1, _ := randF32("b", 13, 6)
	m1, _ := randF32("m", 14, 6)
	v := f32Proto("v", []int{6}, []float32{0.5, 1, 2, 0.25, 1.5, 3})
	graph := func(twoReaders bool) *pb.GraphProto {
		g := &pb.GraphProto{
			Name:        strp("bn"),
			Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 3, 8, 8)},
			Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32, 1, 6, 8, 8)},
			Initializer: []*pb.TensorProto{cw, g1, b1, m1, v},
			Node: []*pb.NodeProto{
				nodep("Conv", "conv", []string{"x", "w"}, []string{"c"}, intsAttr("pads", 1, 1, 1, 1)),
				nodep("BatchNormalization", "bn", []string{"c", "g", "b", "m", "v"}, []string{"n"}, floatAttr("epsilon", 1e-3)),
				nodep("Relu", "relu", []string{"n"}, []string{"y"}),
			},
		}
		if twoReaders {
			g.Output = append(g.Output, valueProto("c", nn.Float32, 1, 6, 8, 8))
		}
		return g
	}
	x := randInput(31, 1, 3, 8, 8)
	src := marshal(t, model(13, graph(false)))
	want := runModel(t, src, map[string]*nn.Tensor{"x": x})["y"]
	for _, mode := range []string{QuantizeDynamic, QuantizeStatic} {
		q, rep, err := Quantize(src, "bn.onnx", QuantizeOptions{Mode: mode, Calibration: []map[string]*nn.Tensor{{"x": x}}})
		if err != nil {
			t.Fatal(err)
		}
		if ops := opCounts(t, q); ops["BatchNormalization"] != 0 || len(rep.Folded) != 1 {
			t.Fatalf("%s: BatchNormalization not folded: %v, %v", mode, ops, rep.Folded)
		}
		got := runModel(t, q, map[string]*nn.Tensor{"x": x})["y"]
		if d, p := maxAbs(want.F32, got.F32); d > 0.03*p {
			t.Errorf("%s: int8 with the folded BatchNormalization differs by %g (peak %g)", mode, d, p)
		}
	}
	q, rep, err := Quantize(marshal(t, model(13, graph(true))), "bn.onnx", QuantizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ops := opCounts(t, q); ops["BatchNormalization"] != 1 || len(rep.Folded) != 0 {
		t.Fatalf("a BatchNormalization whose input is also an output was folded: %v", ops)
	}
}
