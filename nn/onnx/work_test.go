package onnx

import (
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// TestRunWorkBudget: models whose every tensor is small but whose products
// or windows would take unbounded time are refused by Options.MaxRunWork
// before the work is done, with the node named.
func TestRunWorkBudget(t *testing.T) {
	f32 := func(shape ...int) *nn.Tensor {
		x, err := nn.New(nn.Float32, shape, 1<<28)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	matmuls := func(n int) *pb.GraphProto {
		g := &pb.GraphProto{Name: strp("chain"), Input: []*pb.ValueInfoProto{valueProto("x", nn.Float32, 64, 64)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32, 64, 64)}}
		prev := "x"
		for i := 1; i <= n; i++ {
			out := "m" + string(rune('0'+i))
			if i == n {
				out = "y"
			}
			g.Node = append(g.Node, nodep("MatMul", "m"+string(rune('0'+i)), []string{prev, "x"}, []string{out}))
			prev = out
		}
		return g
	}
	cases := []struct {
		name  string
		g     *pb.GraphProto
		opts  Options
		feed  map[string]*nn.Tensor
		want  string // "" when the run must succeed
		nodes string
	}{
		{"chain within budget", matmuls(2), Options{MaxRunWork: 600_000}, map[string]*nn.Tensor{"x": f32(64, 64)}, "", ""},
		{"chain past budget", matmuls(4), Options{MaxRunWork: 600_000}, map[string]*nn.Tensor{"x": f32(64, 64)}, "MatMul of 64 x 64 x 64", `node "m3" (MatMul)`},
		{"batched MatMul", &pb.GraphProto{Name: strp("bmm"),
			Node:   []*pb.NodeProto{nodep("MatMul", "bmm", []string{"a", "b"}, []string{"y"})},
			Input:  []*pb.ValueInfoProto{valueProto("a", nn.Float32, 512, 1, 256), valueProto("b", nn.Float32, 256, 256)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}},
			Options{MaxRunWork: 1 << 24}, map[string]*nn.Tensor{"a": f32(512, 1, 256), "b": f32(256, 256)}, "MatMul of 512 x 256 x 256", `node "bmm"`},
		{"Gemm", &pb.GraphProto{Name: strp("gemm"),
			Node:   []*pb.NodeProto{nodep("Gemm", "gm", []string{"a", "b"}, []string{"y"})},
			Input:  []*pb.ValueInfoProto{valueProto("a", nn.Float32, 128, 128), valueProto("b", nn.Float32, 128, 128)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}},
			Options{MaxRunWork: 1 << 20}, map[string]*nn.Tensor{"a": f32(128, 128), "b": f32(128, 128)}, "Gemm of 128 x 128 x 128", `node "gm"`},
		{"Conv", &pb.GraphProto{Name: strp("conv"),
			Node:   []*pb.NodeProto{nodep("Conv", "cv", []string{"x", "w"}, []string{"y"}, intsAttr("pads", 8, 8, 8, 8))},
			Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 16, 32, 32), valueProto("w", nn.Float32, 16, 16, 17, 17)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}},
			Options{MaxRunWork: 1 << 24}, map[string]*nn.Tensor{"x": f32(1, 16, 32, 32), "w": f32(16, 16, 17, 17)}, "convolution of 16384 x 16 x 289", `node "cv" (Conv)`},
		// 16 MB of input and a window a quarter of it: 2^40 comparisons
		// under the default budget.
		{"MaxPool window bomb, default budget", &pb.GraphProto{Name: strp("pool"),
			Node:   []*pb.NodeProto{nodep("MaxPool", "mp", []string{"x"}, []string{"y"}, intsAttr("kernel_shape", 1024, 1024))},
			Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 1, 2048, 2048)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}},
			Options{}, map[string]*nn.Tensor{"x": f32(1, 1, 2048, 2048)}, "pooling of 1 x 1050625 x 1048576", `node "mp" (MaxPool)`},
		{"elementwise chain past budget", &pb.GraphProto{Name: strp("adds"),
			Node: []*pb.NodeProto{nodep("Add", "a1", []string{"x", "x"}, []string{"a1"}), nodep("Add", "a2", []string{"a1", "x"}, []string{"a2"}),
				nodep("Add", "a3", []string{"a2", "x"}, []string{"y"})},
			Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1000)},
			Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}},
			Options{MaxRunWork: 2500}, map[string]*nn.Tensor{"x": f32(1000)}, "output of 1000 x 1 x 1", `node "a3" (Add)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(marshal(t, model(13, tc.g)), "work.onnx", "", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, gpu.NewCPU())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for range 2 { // each Run has its own budget
				_, err = s.Run(tc.feed)
				if tc.want == "" {
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.nodes) || !strings.Contains(err.Error(), "Options.MaxRunWork") {
					t.Fatalf("got %v, want an error naming %s and %q", err, tc.nodes, tc.want)
				}
			}
		})
	}
}

// TestFoldWorkBudget: constant folding at NewSession is under the same budget.
func TestFoldWorkBudget(t *testing.T) {
	g := &pb.GraphProto{Name: strp("fold"),
		Node: []*pb.NodeProto{nodep("ConstantOfShape", "c", []string{"s"}, []string{"c"}),
			nodep("MatMul", "mm", []string{"c", "c"}, []string{"y"})},
		Initializer: []*pb.TensorProto{i64Tensor("s", []int64{2}, 256, 256)},
		Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "fold.onnx", "", Options{MaxRunWork: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSession(m, gpu.NewCPU()); err == nil || !strings.Contains(err.Error(), "Options.MaxRunWork") || !strings.Contains(err.Error(), "mm") {
		t.Fatalf("folding a 256^3 product under a 2^20 budget: %v", err)
	}
}

// TestBloopRangeSplits checks that bloopRange over any cut of the flat
// output range visits each output element once, with the input offsets
// the whole-range loop gives it (the split elementwise operators rely on
// it).
func TestBloopRangeSplits(t *testing.T) {
	for _, c := range [][2][]int{
		{{2, 3, 4, 5}, {2, 3, 4, 5}},
		{{1, 3, 4, 5}, {1, 3, 1, 1}},
		{{2, 3, 4, 5}, {5}},
		{{2, 1, 4, 1}, {1, 3, 1, 5}},
		{{7}, {1}},
		{{1}, {1}},
		{{3, 1, 5}, {3, 4, 1}},
	} {
		shape, err := broadcast(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		sa, sb := bstrides(c[0], shape), bstrides(c[1], shape)
		total := 1
		for _, d := range shape {
			total *= d
		}
		want := make([][2]int, total)
		bloop(shape, sa, sb, func(o, ia, ib, n, da, db int) {
			for i := 0; i < n; i++ {
				want[o+i] = [2]int{ia + i*da, ib + i*db}
			}
		})
		for cut := 0; cut <= total; cut++ {
			for cut2 := cut; cut2 <= total; cut2 += 3 {
				got := make([][2]int, total)
				seen := make([]int, total)
				for _, r := range [][2]int{{0, cut}, {cut, cut2}, {cut2, -1}} {
					bloopRange(shape, sa, sb, r[0], r[1], func(o, ia, ib, n, da, db int) {
						for i := 0; i < n; i++ {
							got[o+i] = [2]int{ia + i*da, ib + i*db}
							seen[o+i]++
						}
					})
				}
				for o := range got {
					if seen[o] != 1 || got[o] != want[o] {
						t.Fatalf("%v x %v cut at %d, %d: element %d seen %d times at %v, want once at %v", c[0], c[1], cut, cut2, o, seen[o], got[o], want[o])
					}
				}
			}
		}
	}
}

// TestConcatF32Ranges checks that concatF32 over a cut of the output's flat
// range writes exactly that range, with what a whole Concat writes there.
func TestConcatF32Ranges(t *testing.T) {
	mk := func(shape []int, base float32) *nn.Tensor {
		x, _ := nn.New(nn.Float32, shape, 1<<20)
		for i := range x.F32 {
			x.F32[i] = base + float32(i)
		}
		return x
	}
	// [2,3,4] ++ [2,1,4] ++ [2,2,4] on axis 1: outer 2, inner 4
	parts := []*nn.Tensor{mk([]int{2, 3, 4}, 0), mk([]int{2, 1, 4}, 100), mk([]int{2, 2, 4}, 200)}
	const total, ax, inner, outer = 48, 1, 4, 2
	want := make([]float32, total)
	concatF32(want, parts, ax, inner, outer, 0, total)
	if want[12] != 100 || want[16] != 200 || want[24] != 12 {
		t.Fatalf("whole concat wrong: %v", want)
	}
	for lo := 0; lo <= total; lo++ {
		for hi := lo; hi <= total; hi++ {
			got := make([]float32, total)
			for i := range got {
				got[i] = -1
			}
			concatF32(got, parts, ax, inner, outer, lo, hi)
			for i := range got {
				if in := i >= lo && i < hi; (in && got[i] != want[i]) || (!in && got[i] != -1) {
					t.Fatalf("range [%d, %d): element %d = %v, want %v", lo, hi, i, got[i], want[i])
				}
			}
		}
	}
}
