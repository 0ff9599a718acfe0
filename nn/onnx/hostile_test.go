package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Builders for small models written in the tests themselves.

func i64p(v int64) *int64   { return &v }
func i32p(v int32) *int32   { return &v }
func strp(v string) *string { return &v }
func attrTypep(t pb.AttributeProto_AttributeType) *pb.AttributeProto_AttributeType {
	return &t
}

func valueProto(name string, dt nn.DType, dims ...any) *pb.ValueInfoProto {
	sh := &pb.TensorShapeProto{}
	for _, d := range dims {
		switch v := d.(type) {
		case int:
			sh.Dim = append(sh.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
		case string:
			sh.Dim = append(sh.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: v}})
		}
	}
	return &pb.ValueInfoProto{Name: strp(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: i32p(int32(dt)), Shape: sh}}}}
}

func nodep(op, name string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
	return &pb.NodeProto{OpType: strp(op), Name: strp(name), Input: in, Output: out, Attribute: attrs}
}

func graphAttr(name string, g *pb.GraphProto) *pb.AttributeProto {
	return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_GRAPH), G: g}
}

func tensorAttr(name string, t *pb.TensorProto) *pb.AttributeProto {
	return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_TENSOR), T: t}
}

func i64Tensor(name string, dims []int64, vals ...int64) *pb.TensorProto {
	return &pb.TensorProto{Name: strp(name), DataType: i32p(int32(nn.Int64)), Dims: dims, Int64Data: vals}
}

func model(opset int64, g *pb.GraphProto) *pb.ModelProto {
	return &pb.ModelProto{IrVersion: i64p(8), Graph: g, OpsetImport: []*pb.OperatorSetIdProto{{Domain: strp(""), Version: i64p(opset)}}}
}

func marshal(tb testing.TB, m *pb.ModelProto) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// reluGraph is x -> Relu -> y, the smallest valid model.
func reluGraph() *pb.GraphProto {
	return &pb.GraphProto{Name: strp("g"),
		Node:   []*pb.NodeProto{nodep("Relu", "r", []string{"x"}, []string{"y"})},
		Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, "batch", 4)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32, "batch", 4)}}
}

// nestedIf wraps a Relu graph in depth levels of If.
func nestedIf(depth int) *pb.GraphProto {
	inner := &pb.GraphProto{Name: strp("leaf"),
		Node:   []*pb.NodeProto{nodep("Relu", "r", []string{"x"}, []string{"y0"})},
		Output: []*pb.ValueInfoProto{valueProto("y0", nn.Float32)}}
	for i := 1; i <= depth; i++ {
		out := "y" + strings.Repeat("'", i)
		inner = &pb.GraphProto{Name: strp("level"),
			Node: []*pb.NodeProto{nodep("If", "if", []string{"c"}, []string{out},
				graphAttr("then_branch", inner), graphAttr("else_branch", inner))},
			Output: []*pb.ValueInfoProto{valueProto(out, nn.Float32)}}
	}
	inner.Input = []*pb.ValueInfoProto{valueProto("x", nn.Float32, 4), valueProto("c", nn.Bool)}
	return inner
}

// TestHostileModels: each malformed model is refused with an error that
// says what is wrong, at load or at NewSession, without a panic.
func TestHostileModels(t *testing.T) {
	huge := i64Tensor("shape", []int64{2}, 1<<20, 1<<20)
	cases := []struct {
		name  string
		data  func(t *testing.T) []byte
		want  string // in the error
		stage string // "load" or "session"
	}{
		{"empty file", func(*testing.T) []byte { return nil }, "no graph", "load"},
		{"wrong bytes", func(*testing.T) []byte { return []byte("this is not a protobuf \xff\xff\xff\xff") }, "not an ONNX ModelProto", "load"},
		{"cycle", func(t *testing.T) []byte {
			g := reluGraph()
			g.Node = []*pb.NodeProto{nodep("Add", "a", []string{"x", "b"}, []string{"a"}), nodep("Relu", "b", []string{"a"}, []string{"b"}), nodep("Relu", "y", []string{"b"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, "cycle", "load"},
		{"undefined input", func(t *testing.T) []byte {
			g := reluGraph()
			g.Node[0].Input = []string{"nowhere"}
			return marshal(t, model(13, g))
		}, `input "nowhere" is not defined`, "load"},
		{"output defined twice", func(t *testing.T) []byte {
			g := reluGraph()
			g.Node = append(g.Node, nodep("Relu", "r2", []string{"x"}, []string{"y"}))
			return marshal(t, model(13, g))
		}, "produced twice", "load"},
		{"undefined graph output", func(t *testing.T) []byte {
			g := reluGraph()
			g.Output = append(g.Output, valueProto("ghost", nn.Float32))
			return marshal(t, model(13, g))
		}, `output "ghost" is not produced`, "load"},
		{"initializer claims 2^40 elements", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(1), Dims: []int64{1 << 20, 1 << 20}, RawData: make([]byte, 100)}}
			return marshal(t, model(13, g))
		}, "exceeds the limit", "load"},
		{"initializer claims more bytes than present", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(1), Dims: []int64{1000}, RawData: make([]byte, 100)}}
			return marshal(t, model(13, g))
		}, "needs 4000 bytes of raw data, has 100", "load"},
		{"initializer with too few typed values", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(1), Dims: []int64{1000}, FloatData: []float32{1, 2}}}
			return marshal(t, model(13, g))
		}, "needs 1000 elements, has 2", "load"},
		{"negative dimension", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(1), Dims: []int64{-1}}}
			return marshal(t, model(13, g))
		}, "dimension 0 is -1", "load"},
		{"unsupported dtype", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(11), Dims: []int64{1}, DoubleData: []float64{1}}}
			return marshal(t, model(13, g))
		}, `initializer "w": unsupported: dtype DOUBLE`, "load"},
		{"opset too new", func(t *testing.T) []byte { return marshal(t, model(99, reluGraph())) }, "opset 99", "load"},
		{"opset too old", func(t *testing.T) []byte { return marshal(t, model(7, reluGraph())) }, "opset 7", "load"},
		{"deep If nesting", func(t *testing.T) []byte { return marshal(t, model(13, nestedIf(12))) }, "nested deeper than 8", "load"},
		{"unknown operator", func(t *testing.T) []byte {
			g := reluGraph()
			g.Node[0].OpType = strp("FancyAttention")
			return marshal(t, model(13, g))
		}, `node "r": FancyAttention (ai.onnx opset 13): operator not implemented`, "session"},
		{"float16 graph input", func(t *testing.T) []byte {
			g := reluGraph()
			g.Input[0] = valueProto("x", nn.DType(10), "batch", 4)
			return marshal(t, model(13, g))
		}, `value "x" has dtype FLOAT16`, "session"},
		{"cycle through an If branch", func(t *testing.T) []byte {
			g := reluGraph()
			branch := &pb.GraphProto{Name: strp("b"), Node: []*pb.NodeProto{nodep("Relu", "in_branch", []string{"late"}, []string{"o"})},
				Output: []*pb.ValueInfoProto{{Name: strp("o")}}}
			g.Input = append(g.Input, valueProto("c", nn.Bool))
			g.Node = []*pb.NodeProto{nodep("If", "if", []string{"c"}, []string{"early"}, graphAttr("then_branch", branch), graphAttr("else_branch", branch)),
				nodep("Relu", "late", []string{"early"}, []string{"late"}), nodep("Relu", "y", []string{"late"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, "cycle", "load"},
		{"Resize of an empty axis", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{i64Tensor("sz", []int64{2}, 3, 8), {Name: strp("e"), DataType: i32p(1), Dims: []int64{0}}}
			g.Node = []*pb.NodeProto{nodep("Slice", "empty", []string{"x", "z0", "z0"}, []string{"x0"}), nodep("Resize", "rs", []string{"x0", "", "", "sz"}, []string{"y"})}
			g.Initializer = append(g.Initializer, i64Tensor("z0", []int64{1}, 0))
			return marshal(t, model(13, g))
		}, "cannot resize an empty axis 0 to 3", "run"},
		{"unsupported attribute", func(t *testing.T) []byte {
			g := reluGraph()
			g.Node[0].Attribute = []*pb.AttributeProto{{Name: strp("bogus"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(1)}}
			return marshal(t, model(13, g))
		}, `node "r": Relu (ai.onnx opset 13): attribute "bogus" not supported`, "session"},
		{"ConstantOfShape bomb", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{huge}
			g.Node = []*pb.NodeProto{nodep("ConstantOfShape", "bomb", []string{"shape"}, []string{"z"}), nodep("Add", "y", []string{"x", "z"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, `node "bomb" (ConstantOfShape) (opset 13): invalid model: shape [1048576 1048576] exceeds the limit`, "session"},
		{"Expand bomb", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{huge}
			g.Node = []*pb.NodeProto{nodep("Expand", "bomb", []string{"x", "shape"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, "exceeds the limit", "run"},
		{"Reshape bomb", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{huge}
			g.Node = []*pb.NodeProto{nodep("Reshape", "bomb", []string{"x", "shape"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, "cannot reshape", "run"},
		{"Range bomb", func(t *testing.T) []byte {
			g := reluGraph()
			g.Initializer = []*pb.TensorProto{i64Tensor("a", nil, 0), i64Tensor("b", nil, 1<<40), i64Tensor("d", nil, 1)}
			g.Node = []*pb.NodeProto{nodep("Range", "bomb", []string{"a", "b", "d"}, []string{"r"}), nodep("Cast", "c", []string{"r"}, []string{"rf"},
				&pb.AttributeProto{Name: strp("to"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(1)}), nodep("Add", "y", []string{"x", "rf"}, []string{"y"})}
			return marshal(t, model(13, g))
		}, "exceeds the limit", "session"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.data(t), "hostile.onnx", "", Options{})
			if tc.stage == "load" {
				if err == nil {
					t.Fatalf("loaded; want an error containing %q", tc.want)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "hostile.onnx: ") {
					t.Fatalf("error %q; want it to name the file and contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			s, err := NewSession(m, gpu.NewCPU())
			if tc.stage == "run" && err == nil {
				x := &nn.Tensor{DType: nn.Float32, Shape: []int{1, 4}, F32: make([]float32, 4)}
				_, err = s.Run(map[string]*nn.Tensor{"x": x})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLiveBytesBudget: tensors each under the element limit cannot add up
// past Options.MaxLiveBytes, at run time or when folding constants.
func TestLiveBytesBudget(t *testing.T) {
	cos := func(name, in, out string) *pb.NodeProto {
		return nodep("ConstantOfShape", name, []string{in}, []string{out})
	}
	g := &pb.GraphProto{Name: strp("budget"),
		Node:   []*pb.NodeProto{cos("a", "s", "a"), cos("b", "s", "b"), nodep("Add", "c", []string{"a", "b"}, []string{"c"}), nodep("Add", "y", []string{"c", "a"}, []string{"y"})},
		Input:  []*pb.ValueInfoProto{valueProto("s", nn.Int64, 2)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "budget.onnx", "", Options{MaxLiveBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	run := func(rows int64) error {
		_, err := s.Run(map[string]*nn.Tensor{"s": {DType: nn.Int64, Shape: []int{2}, I64: []int64{rows, 1000}}})
		return err
	}
	if err := run(100); err != nil { // 400 KB each: fits
		t.Fatal(err)
	}
	if err := run(300); err == nil || !strings.Contains(err.Error(), `node "b" (ConstantOfShape)`) || !strings.Contains(err.Error(), "Options.MaxLiveBytes") {
		t.Fatalf("two 1.2 MB tensors under a 2 MB budget: %v", err)
	}
	if err := run(100); err != nil { // each Run has its own budget
		t.Fatal(err)
	}
	// The same shapes as constants are folded at NewSession, under the same budget.
	g.Input = nil
	g.Initializer = []*pb.TensorProto{i64Tensor("s", []int64{2}, 300, 1000)}
	m, err = Decode(marshal(t, model(13, g)), "budget.onnx", "", Options{MaxLiveBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSession(m, gpu.NewCPU()); err == nil || !strings.Contains(err.Error(), "Options.MaxLiveBytes") {
		t.Fatalf("folding past the budget: %v", err)
	}
}

// TestTruncatedModel cuts a real model at many lengths: each prefix is an
// error or (if the cut falls between fields) a model that still validates;
// never a panic.
func TestTruncatedModel(t *testing.T) {
	data, err := os.ReadFile(sharedModel(t, "ch_ppocr_mobile_v2.0_cls_infer.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, n := range []int{1, 2, 7, 100, 1000, 4096, len(data) / 3, len(data) / 2, len(data) - 1} {
		if _, err := Decode(data[:n], "cut.onnx", "", Options{}); err != nil {
			refused++
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("cut at %d: %v is not ErrInvalid", n, err)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no truncated prefix was refused")
	}
}

func TestSubgraphDepthWithinLimit(t *testing.T) {
	m, err := Decode(marshal(t, model(13, nestedIf(3))), "if.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint8{0, 1} {
		out, err := s.Run(map[string]*nn.Tensor{
			"x": {DType: nn.Float32, Shape: []int{4}, F32: []float32{-1, 2, -3, 4}},
			"c": {DType: nn.Bool, Shape: []int{}, U8: []uint8{c}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := out["y'''"].F32
		if want := []float32{0, 2, 0, 4}; !equalF32(got, want) {
			t.Fatalf("cond %d: got %v, want %v", c, got, want)
		}
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExternalData loads a weight from a file beside the model and refuses
// locations outside the model's directory or ranges past the file's end.
func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), []byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64}, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.bin"), make([]byte, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(loc string, offset, length string) string {
		g := reluGraph()
		ext := []*pb.StringStringEntryProto{{Key: strp("location"), Value: strp(loc)}}
		if offset != "" {
			ext = append(ext, &pb.StringStringEntryProto{Key: strp("offset"), Value: strp(offset)})
		}
		if length != "" {
			ext = append(ext, &pb.StringStringEntryProto{Key: strp("length"), Value: strp(length)})
		}
		loc2 := pb.TensorProto_EXTERNAL
		g.Initializer = []*pb.TensorProto{{Name: strp("w"), DataType: i32p(1), Dims: []int64{4}, DataLocation: &loc2, ExternalData: ext}}
		g.Node = []*pb.NodeProto{nodep("Add", "add", []string{"x", "w"}, []string{"y"})}
		p := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(p, marshal(t, model(13, g)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := Load(build("w.bin", "", ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(map[string]*nn.Tensor{"x": {DType: nn.Float32, Shape: []int{1, 4}, F32: []float32{1, 1, 1, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out["y"].F32; !equalF32(got, []float32{2, 3, 4, 5}) {
		t.Fatalf("got %v", got)
	}
	for _, tc := range []struct{ loc, off, length, want string }{
		{"../secret.bin", "", "", "not a path inside the model's directory"},
		{filepath.Join(filepath.Dir(dir), "secret.bin"), "", "", "not a path inside the model's directory"},
		{"w.bin", "8", "", "lie beyond its end"},
		{"w.bin", "", "8", "length 8, tensor needs 16 bytes"},
		{"missing.bin", "", "", "no such file"},
	} {
		_, err := Load(build(tc.loc, tc.off, tc.length), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("location %q offset %q length %q: error %v, want %q", tc.loc, tc.off, tc.length, err, tc.want)
		}
	}
	// A symbolic link inside the directory pointing out of it is refused too.
	if err := os.Symlink(filepath.Join(filepath.Dir(dir), "secret.bin"), filepath.Join(dir, "link.bin")); err == nil {
		if _, err := Load(build("link.bin", "", ""), Options{}); err == nil || !strings.Contains(err.Error(), "resolves outside") {
			t.Errorf("symlink out of the directory: %v", err)
		}
	}
}

// TestDigestCoversExternalData: a model's digest (what a manifest pins) is
// its file's SHA-256 when it is self-contained, and covers every byte of
// its external data files when it has them, so swapping the weights beside
// a pinned model changes the digest. External files of one model share
// MaxFileBytes.
func TestDigestCoversExternalData(t *testing.T) {
	dir := t.TempDir()
	weights := []byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64}
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ext := func(loc string) *pb.TensorProto {
		l := pb.TensorProto_EXTERNAL
		return &pb.TensorProto{Name: strp("w"), DataType: i32p(1), Dims: []int64{4}, DataLocation: &l,
			ExternalData: []*pb.StringStringEntryProto{{Key: strp("location"), Value: strp(loc)}}}
	}
	g := reluGraph()
	g.Initializer = []*pb.TensorProto{ext("w.bin")}
	g.Node = []*pb.NodeProto{nodep("Add", "add", []string{"x", "w"}, []string{"y"})}
	modelBytes := marshal(t, model(13, g))
	path := write("m.onnx", modelBytes)
	write("w.bin", weights)

	m, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fileSum := sha256.Sum256(modelBytes)
	wSum := sha256.Sum256(weights)
	want := []ExternalFile{{Location: "w.bin", Bytes: 16, SHA256: hex.EncodeToString(wSum[:])}}
	if got := m.ExternalData(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ExternalData = %+v, want %+v", got, want)
	}
	text := "fennec-onnx-digest-v1\nmodel " + hex.EncodeToString(fileSum[:]) + "\nexternal w.bin 16 " + hex.EncodeToString(wSum[:]) + "\n"
	textSum := sha256.Sum256([]byte(text))
	if got := m.Digest(); got != hex.EncodeToString(textSum[:]) {
		t.Fatalf("Digest = %s, want the SHA-256 of %q", got, text)
	}
	if m.Digest() == hex.EncodeToString(fileSum[:]) {
		t.Fatal("a model with external data is pinned by its .onnx file's bytes alone")
	}
	if info := m.Info(); info.Digest != m.Digest() || len(info.External) != 1 {
		t.Fatalf("Info: digest %q, external %v", info.Digest, info.External)
	}

	// The same .onnx with other weights beside it: another digest.
	swapped := append([]byte(nil), weights...)
	swapped[3] = 0x40
	write("w.bin", swapped)
	m2, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Digest() == m.Digest() {
		t.Fatal("swapping the external data file kept the digest")
	}

	// Self-contained: the digest is the file's SHA-256 (sha256sum's).
	sc := reluGraph()
	scBytes := marshal(t, model(13, sc))
	m3, err := Decode(scBytes, "sc.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	scSum := sha256.Sum256(scBytes)
	if m3.Digest() != hex.EncodeToString(scSum[:]) || len(m3.ExternalData()) != 0 {
		t.Fatalf("self-contained digest %s, want %x", m3.Digest(), scSum)
	}

	// The external files of one model share MaxFileBytes: a weights file
	// larger than the limit (the model file itself is under it) is refused.
	write("w.bin", append(append([]byte(nil), weights...), make([]byte, len(modelBytes))...))
	if _, err := Load(path, Options{MaxFileBytes: int64(len(modelBytes)) + 8}); err != nil {
		if !strings.Contains(err.Error(), "limit on a model's external data") {
			t.Fatalf("over the external data limit: %v", err)
		}
	} else {
		t.Fatal("external data larger than MaxFileBytes loaded")
	}

	// Two locations naming one file (w.bin and ./w.bin) are refused, so
	// one file cannot appear twice in the digest under two names.
	g2 := reluGraph()
	w2 := ext("./w.bin")
	w2.Name = strp("w2")
	g2.Initializer = []*pb.TensorProto{ext("w.bin"), w2}
	g2.Node = []*pb.NodeProto{nodep("Add", "add", []string{"x", "w"}, []string{"y0"}), nodep("Add", "add2", []string{"y0", "w2"}, []string{"y"})}
	p2 := write("m2.onnx", marshal(t, model(13, g2)))
	if _, err := Load(p2, Options{}); err == nil || !strings.Contains(err.Error(), "name the same file") {
		t.Fatalf("two names for one external file: %v", err)
	}
}

// TestInputChecks: Run refuses inputs of the wrong dtype, rank or fixed dim,
// and symbolic dims bound inconsistently.
func TestInputChecks(t *testing.T) {
	g := reluGraph()
	g.Input = append(g.Input, valueProto("x2", nn.Float32, "batch", 4))
	g.Node = []*pb.NodeProto{nodep("Add", "add", []string{"x", "x2"}, []string{"y"})}
	m, err := Decode(marshal(t, model(13, g)), "in.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	f := func(shape ...int) *nn.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return &nn.Tensor{DType: nn.Float32, Shape: shape, F32: make([]float32, n)}
	}
	for _, tc := range []struct {
		name  string
		x, x2 *nn.Tensor
		want  string
	}{
		{"ok", f(2, 4), f(2, 4), ""},
		{"fixed dim", f(2, 5), f(2, 5), "declares [batch 4]"},
		{"rank", f(8), f(2, 4), "rank 1"},
		{"batch differs", f(2, 4), f(3, 4), "batch is 2 in another input"},
		{"dtype", &nn.Tensor{DType: nn.Int64, Shape: []int{1, 4}, I64: make([]int64, 4)}, f(1, 4), "dtype i64"},
		{"bad data length", &nn.Tensor{DType: nn.Float32, Shape: []int{1, 4}, F32: make([]float32, 3)}, f(1, 4), "holds 3 elements"},
	} {
		_, err := s.Run(map[string]*nn.Tensor{"x": tc.x, "x2": tc.x2})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestEmptyProducts: a product over an empty inner dimension is zeros (the
// SGEMM kernels need k >= 1, so the executor must not hand them k = 0).
func TestEmptyProducts(t *testing.T) {
	g := &pb.GraphProto{Name: strp("mm"),
		Node:   []*pb.NodeProto{nodep("MatMul", "mm", []string{"a", "b"}, []string{"y"})},
		Input:  []*pb.ValueInfoProto{valueProto("a", nn.Float32, 2, 0), valueProto("b", nn.Float32, 0, 3)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "mm.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(map[string]*nn.Tensor{
		"a": {DType: nn.Float32, Shape: []int{2, 0}, F32: []float32{}},
		"b": {DType: nn.Float32, Shape: []int{0, 3}, F32: []float32{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if y := out["y"]; y.String() != "f32[2 3]" || !equalF32(y.F32, make([]float32, 6)) {
		t.Fatalf("got %v %v", y, y.F32)
	}
}
