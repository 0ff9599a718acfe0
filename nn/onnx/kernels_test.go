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
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// naiveDepthwise is the textbook definition the fast kernel must match.
func naiveDepthwise(w *window, x, wt, out []float32) {
	for b := 0; b < w.n; b++ {
		for ch := 0; ch < w.ch; ch++ {
			for oy := 0; oy < w.oh; oy++ {
				for ox := 0; ox < w.ow; ox++ {
					var acc float32
					for ki := 0; ki < w.kh; ki++ {
						for kj := 0; kj < w.kw; kj++ {
							iy, ix := oy*w.sh-w.pt+ki*w.dh, ox*w.sw-w.pl+kj*w.dw
							if iy < 0 || iy >= w.h || ix < 0 || ix >= w.w {
								continue
							}
							acc += x[((b*w.ch+ch)*w.h+iy)*w.w+ix] * wt[(ch*w.kh+ki)*w.kw+kj]
						}
					}
					out[((b*w.ch+ch)*w.oh+oy)*w.ow+ox] = acc
				}
			}
		}
	}
}

// TestDepthwiseKernel: the phase-split and the small-plane kernels against the definition over
// strides, dilations, asymmetric pads and odd sizes.
func TestDepthwiseKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr int }{
		{8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
		{9, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
		{12, 10, 5, 5, 2, 1, 1, 1, 2, 2, 2, 2},
		{11, 13, 5, 5, 1, 2, 1, 1, 2, 2, 2, 2},
		{10, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
		{7, 9, 3, 2, 3, 2, 1, 2, 0, 1, 2, 0},
		{5, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
		{1, 17, 1, 5, 1, 1, 1, 1, 0, 2, 0, 2},
		{4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			w := &window{n: 2, ch: 3, h: tc.h, w: tc.w, kh: tc.kh, kw: tc.kw, sh: tc.sh, sw: tc.sw, dh: tc.dh, dw: tc.dw,
				pt: tc.pt, pl: tc.pl, pb: tc.pb, pr: tc.pr}
			w.oh = (tc.h+tc.pt+tc.pb-(tc.dh*(tc.kh-1)+1))/tc.sh + 1
			w.ow = (tc.w+tc.pl+tc.pr-(tc.dw*(tc.kw-1)+1))/tc.sw + 1
			x := make([]float32, w.n*w.ch*w.h*w.w)
			wt := make([]float32, w.ch*w.kh*w.kw)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range wt {
				wt[i] = float32(rng.NormFloat64())
			}
			got, want := make([]float32, w.n*w.ch*w.oh*w.ow), make([]float32, w.n*w.ch*w.oh*w.ow)
			work := make([]float32, depthwiseWork(w))
			for i := range work {
				work[i] = float32(math.NaN()) // the kernel must not read stale scratch
			}
			naiveDepthwise(w, x, wt, want)
			small := make([]float32, len(got))
			depthwise(w, x, wt, got, work)
			depthwiseSmall(w, x, wt, nil, 0, small, make([]float32, depthwiseSmallWork(w)))
			// with the kernel transposed beforehand, channels [1, ch) of
			// image 0 from a kernel of ch+2 channels (the split of a
			// threaded run)
			pre := make([]float32, len(got))
			if w.ch > 1 {
				taps := w.kh * w.kw
				kt := make([]float32, (w.ch+2)*taps)
				big := make([]float32, (w.ch+2)*taps)
				copy(big, wt)
				transposeTaps(kt, big, w.ch+2, taps)
				sub := *w
				sub.n, sub.ch = 1, w.ch-1
				plane, hw := w.oh*w.ow, w.h*w.w
				copy(pre, small)
				depthwiseSmall(&sub, x[hw:], wt[taps:], kt[1:], w.ch+2, pre[plane:], make([]float32, depthwiseSmallWork(&sub)))
			} else {
				copy(pre, small)
			}
			for name, res := range map[string][]float32{"depthwise": got, "depthwiseSmall": small, "depthwiseSmall pre-transposed": pre} {
				for i := range res {
					if d := math.Abs(float64(res[i] - want[i])); !(d <= 1e-5+1e-5*math.Abs(float64(want[i]))) {
						t.Fatalf("%s: [%d] = %v, want %v", name, i, res[i], want[i])
					}
				}
			}
		})
	}
}

// TestIm2colPhased: the phased unrolling holds the plain one's columns, at
// row stride w2 instead of ow.
func TestIm2colPhased(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct{ h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr int }{
		{8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
		{9, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
		{10, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
		{7, 9, 3, 2, 3, 2, 1, 2, 0, 1, 2, 0},
		{1, 17, 1, 5, 1, 2, 1, 1, 0, 2, 0, 2},
		{76, 32, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1},
	} {
		w := &window{n: 1, ch: 3, h: tc.h, w: tc.w, kh: tc.kh, kw: tc.kw, sh: tc.sh, sw: tc.sw, dh: tc.dh, dw: tc.dw,
			pt: tc.pt, pl: tc.pl, pb: tc.pb, pr: tc.pr}
		w.oh = (tc.h+tc.pt+tc.pb-(tc.dh*(tc.kh-1)+1))/tc.sh + 1
		w.ow = (tc.w+tc.pl+tc.pr-(tc.dw*(tc.kw-1)+1))/tc.sw + 1
		x := make([]float32, w.ch*w.h*w.w)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		kk := w.ch * w.kh * w.kw
		_, w2, planeSz := phaseDims(w)
		plain, phased := make([]float32, kk*w.oh*w.ow), make([]float32, kk*w.oh*w2)
		im2col(w, x, w.ch, plain)
		im2colPhased(w, x, w.ch, phased, make([]float32, w.sh*w.sw*planeSz))
		for r := 0; r < kk; r++ {
			for oy := 0; oy < w.oh; oy++ {
				for ox := 0; ox < w.ow; ox++ {
					if a, b := phased[r*w.oh*w2+oy*w2+ox], plain[r*w.oh*w.ow+oy*w.ow+ox]; a != b {
						t.Fatalf("%+v: row %d (%d,%d): %v, want %v", tc, r, oy, ox, a, b)
					}
				}
			}
		}
	}
}

// TestMaxPoolPhased: the phased (and, where it applies, the clipped) MaxPool against the definition, ceil_mode's
// partial last windows and a NaN input included.
func TestMaxPoolPhased(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr int
		ceil                                         bool
	}{
		{16, 16, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, false},
		{15, 17, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, true},
		{9, 20, 1, 2, 1, 2, 1, 1, 0, 0, 0, 0, false},
		{12, 19, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true},
		{10, 18, 3, 3, 1, 1, 2, 2, 2, 2, 0, 1, false},
		{28, 8, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, false},
		{6, 2, 1, 2, 1, 2, 1, 1, 0, 0, 0, 0, false},
		{6, 34, 1, 2, 1, 2, 1, 1, 0, 0, 0, 0, false},
		{72, 32, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, false},
		{13, 11, 3, 2, 2, 3, 2, 1, 0, 0, 0, 0, false},
		{32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false}, // t_resnet's pool
		{11, 9, 3, 3, 2, 2, 1, 1, 1, 0, 1, 2, true},
		{7, 10, 2, 3, 3, 2, 1, 1, 1, 2, 0, 2, false},
	} {
		w := &window{n: 1, ch: 2, h: tc.h, w: tc.w, kh: tc.kh, kw: tc.kw, sh: tc.sh, sw: tc.sw, dh: tc.dh, dw: tc.dw,
			pt: tc.pt, pl: tc.pl, pb: tc.pb, pr: tc.pr}
		outDim := func(in, p0, p1, k, d, s int) int {
			num := in + p0 + p1 - (d*(k-1) + 1)
			if !tc.ceil {
				return num/s + 1
			}
			o := (num+s-1)/s + 1
			if (o-1)*s >= in+p0 {
				o--
			}
			return o
		}
		w.oh, w.ow = outDim(tc.h, tc.pt, tc.pb, tc.kh, tc.dh, tc.sh), outDim(tc.w, tc.pl, tc.pr, tc.kw, tc.dw, tc.sw)
		x := make([]float32, w.ch*w.h*w.w)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		x[5] = float32(math.NaN())
		got, want := make([]float32, w.ch*w.oh*w.ow), make([]float32, w.ch*w.oh*w.ow)
		maxPoolPhased(w, x, got, make([]float32, maxPoolWork(w)))
		var clipped []float32
		if w.clippable() {
			clipped = make([]float32, len(got))
			maxPoolClipped(w, x, clipped, make([]float32, maxPoolClippedWork(w)), 0, w.ch)
		}
		for p := 0; p < w.ch; p++ {
			for oy := 0; oy < w.oh; oy++ {
				for ox := 0; ox < w.ow; ox++ {
					m := float32(math.Inf(-1))
					for ki := 0; ki < w.kh; ki++ {
						for kj := 0; kj < w.kw; kj++ {
							iy, ix := oy*w.sh-w.pt+ki*w.dh, ox*w.sw-w.pl+kj*w.dw
							if iy >= 0 && iy < w.h && ix >= 0 && ix < w.w {
								m = max(m, x[(p*w.h+iy)*w.w+ix])
							}
						}
					}
					want[(p*w.oh+oy)*w.ow+ox] = m
				}
			}
		}
		for i := range got {
			if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("%+v: [%d] = %v, want %v", tc, i, got[i], want[i])
			}
			if clipped != nil && clipped[i] != want[i] && !(clipped[i] != clipped[i] && want[i] != want[i]) {
				t.Fatalf("%+v: clipped [%d] = %v, want %v", tc, i, clipped[i], want[i])
			}
		}
		if w.inside() {
			inside := make([]float32, len(want))
			maxPoolInside(w, x, inside, 0, w.ch)
			pairs := make([]float32, len(want))
			if w.kw == 2 && w.sw == 2 && w.w == 2*w.ow && w.kh <= 2 {
				maxPoolPairs(w, x, pairs, make([]float32, w.oh*w.w+w.oh*w.ow), 0, w.ch)
			} else {
				copy(pairs, want)
			}
			for i := range inside {
				if inside[i] != want[i] && !(inside[i] != inside[i] && want[i] != want[i]) {
					t.Fatalf("%+v: inside kernel [%d] = %v, want %v", tc, i, inside[i], want[i])
				}
				if pairs[i] != want[i] && !(pairs[i] != pairs[i] && want[i] != want[i]) {
					t.Fatalf("%+v: pairs kernel [%d] = %v, want %v", tc, i, pairs[i], want[i])
				}
			}
		}
	}
}

// TestHostileWindows: strides, pads and dilations at the attribute limits
// reach the phase-split and channel-last kernels without a panic: each run
// either succeeds or fails with an error.
func TestHostileWindows(t *testing.T) {
	big := int64(math.MaxInt32)
	ints := func(name string, v ...int64) *pb.AttributeProto {
		return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
	}
	cases := []struct {
		name  string
		node  *pb.NodeProto
		inits []*pb.TensorProto
	}{
		{"depthwise, huge strides and pads", nodep("Conv", "c", []string{"x", "w"}, []string{"y"}, ints("strides", big, big), ints("pads", big, big, big, big),
			&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(2)}), []*pb.TensorProto{scalarInit("w", 1, 2, 1, 3, 3)}},
		{"depthwise, huge dilation", nodep("Conv", "c", []string{"x", "w"}, []string{"y"}, ints("dilations", big, 1), ints("pads", big, 1, big, 1),
			&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(2)}), []*pb.TensorProto{scalarInit("w", 1, 2, 1, 3, 3)}},
		{"conv, huge strides and pads", nodep("Conv", "c", []string{"x", "w"}, []string{"y"}, ints("strides", big, 3), ints("pads", big, 2, big, 2)),
			[]*pb.TensorProto{scalarInit("w", 1, 3, 2, 3, 3)}},
		{"maxpool, huge strides and pads", nodep("MaxPool", "p", []string{"x"}, []string{"y"}, ints("kernel_shape", 2, 2), ints("strides", big, big), ints("pads", 1, 1, 1, 1)), nil},
		{"maxpool, ceil mode, stride 3", nodep("MaxPool", "p", []string{"x"}, []string{"y"}, ints("kernel_shape", 3, 3), ints("strides", 3, 3),
			&pb.AttributeProto{Name: strp("ceil_mode"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(1)}), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &pb.GraphProto{Name: strp("h"), Node: []*pb.NodeProto{tc.node}, Initializer: tc.inits,
				Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 2, 9, 11)},
				Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
			m, err := Decode(marshal(t, model(13, g)), "h.onnx", "", Options{})
			if err != nil {
				t.Logf("refused at load: %v", err)
				return
			}
			s, err := NewSession(m, gpu.NewCPU())
			if err != nil {
				t.Logf("refused at plan: %v", err)
				return
			}
			x, _ := nn.New(nn.Float32, []int{1, 2, 9, 11}, 1000)
			_, err = s.Run(map[string]*nn.Tensor{"x": x})
			t.Logf("run: %v", err)
		})
	}
}

// TestInternalOpRefused: FusedConv is the fusion pass's own node; a model
// file naming it gets the unsupported-operator error, not the kernel.
func TestInternalOpRefused(t *testing.T) {
	g := &pb.GraphProto{Name: strp("g"), Node: []*pb.NodeProto{nodep("FusedConv", "f", []string{"x", "w", ""}, []string{"y"})},
		Initializer: []*pb.TensorProto{scalarInit("w", 1, 1, 1, 1, 1)},
		Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, 1, 2, 2)},
		Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "f.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSession(m, gpu.NewCPU()); err == nil || !strings.Contains(err.Error(), "operator not implemented") {
		t.Fatalf("NewSession: %v", err)
	}
}

// naiveConv is the textbook grouped convolution (NCHW, one image).
func naiveConv(x []float32, ch, h, wd int, wt []float32, m, g, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow int) []float32 {
	out := make([]float32, m*oh*ow)
	cg, mg := ch/g, m/g
	for o := 0; o < m; o++ {
		gi := o / mg
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var acc float64
				for c := 0; c < cg; c++ {
					for ki := 0; ki < kh; ki++ {
						for kj := 0; kj < kw; kj++ {
							iy, ix := oy*sh-pt+ki*dh, ox*sw-pl+kj*dw
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							acc += float64(x[((gi*cg+c)*h+iy)*wd+ix]) * float64(wt[((o*cg+c)*kh+ki)*kw+kj])
						}
					}
				}
				out[(o*oh+oy)*ow+ox] = float32(acc)
			}
		}
	}
	return out
}

// TestConvPaths: Conv on the CPU backend (each window with the direct kernel
// where it applies, and without it) against the definition for the
// windows that take each product path: unpadded stride 1 read in place (kw 1,
// kw > 1 with and without dilation, groups), phased with pads and strides, and
// plain im2col.
func TestConvPaths(t *testing.T) {
	defer func() { directOn = true }()
	rng := rand.New(rand.NewPCG(5, 6))
	ints := func(name string, v ...int64) *pb.AttributeProto {
		return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
	}
	for ci, tc := range []struct{ ch, h, w, m, g, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr int }{
		{24, 14, 9, 12, 1, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0}, // embedding_model's 3x1
		{8, 10, 12, 7, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0},
		{6, 11, 30, 5, 1, 2, 3, 1, 1, 2, 2, 0, 0, 0, 0},
		{8, 9, 10, 6, 2, 1, 3, 1, 1, 1, 1, 0, 0, 0, 0},
		{5, 12, 10, 9, 1, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1}, // embedding_model's 1x3
		{5, 12, 16, 9, 1, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1},
		// padded only left and right (the edge-product path)
		{1, 14, 12, 24, 1, 3, 3, 1, 1, 1, 1, 0, 1, 0, 1}, // embedding_model's first 3x3
		{6, 5, 16, 4, 2, 1, 3, 1, 1, 1, 1, 0, 2, 0, 0},
		{3, 6, 33, 5, 1, 2, 3, 1, 1, 2, 2, 0, 1, 0, 3},
		{4, 3, 32, 20, 1, 1, 5, 1, 1, 1, 1, 0, 2, 0, 2},
		{4, 13, 11, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
		{4, 9, 9, 3, 1, 3, 3, 3, 3, 1, 1, 0, 0, 0, 0},
		// the direct kernel's shapes (t_resnet's stem and stages) and odd
		// ones: channels not a multiple of 16, groups, dilations,
		// asymmetric pads, strides 2 and 3, planes of one position
		{3, 64, 64, 16, 1, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3},
		{16, 16, 16, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
		{16, 16, 16, 32, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
		{32, 8, 8, 64, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
		{64, 4, 4, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
		{48, 5, 7, 48, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
		{6, 13, 11, 17, 1, 3, 3, 1, 1, 1, 1, 2, 0, 1, 3},
		{8, 12, 9, 10, 2, 3, 2, 2, 1, 2, 2, 1, 2, 2, 0},
		{6, 15, 14, 33, 3, 5, 3, 3, 2, 1, 2, 2, 1, 0, 2},
		{5, 3, 3, 20, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0},
		{7, 1, 9, 9, 1, 1, 3, 1, 3, 1, 1, 0, 1, 0, 1},
	} {
		oh := (tc.h+tc.pt+tc.pb-(tc.kh-1)*tc.dh-1)/tc.sh + 1
		ow := (tc.w+tc.pl+tc.pr-(tc.kw-1)*tc.dw-1)/tc.sw + 1
		wt := randTensor(rng, "w", false, int64(tc.m), int64(tc.ch/tc.g), int64(tc.kh), int64(tc.kw))
		// every other case with a bias, every fourth with a Relu after it
		// (fused into the convolution's epilogue)
		withBias, withRelu := ci%2 == 1, ci%4 == 3
		ins, inits := []string{"x", "w"}, []*pb.TensorProto{wt}
		var bt *pb.TensorProto
		if withBias {
			bt = randTensor(rng, "b", false, int64(tc.m))
			ins, inits = append(ins, "b"), append(inits, bt)
		}
		convOut := "y"
		var relu []*pb.NodeProto
		if withRelu {
			convOut = "c"
			relu = append(relu, nodep("Relu", "relu", []string{"c"}, []string{"y"}))
		}
		g := &pb.GraphProto{Name: strp("conv"),
			Node: append([]*pb.NodeProto{nodep("Conv", "conv", ins, []string{convOut},
				&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(int64(tc.g))},
				ints("strides", int64(tc.sh), int64(tc.sw)), ints("dilations", int64(tc.dh), int64(tc.dw)),
				ints("pads", int64(tc.pt), int64(tc.pl), int64(tc.pb), int64(tc.pr)))}, relu...),
			Initializer: inits,
			Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, tc.ch, tc.h, tc.w)},
			Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
		m, err := Decode(marshal(t, model(13, g)), "conv.onnx", "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []struct {
			threads int
			direct  bool
		}{{1, true}, {2, true}, {1, false}, {2, false}} {
			threads := run.threads
			directOn = run.direct
			be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, be)
			if err != nil {
				t.Fatal(err)
			}
			x, _ := nn.New(nn.Float32, []int{1, tc.ch, tc.h, tc.w}, 1<<20)
			for i := range x.F32 {
				x.F32[i] = float32(rng.NormFloat64())
			}
			out, err := s.Run(map[string]*nn.Tensor{"x": x})
			s.Close()
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			want := naiveConv(x.F32, tc.ch, tc.h, tc.w, wt.FloatData, tc.m, tc.g, tc.kh, tc.kw, tc.sh, tc.sw, tc.dh, tc.dw, tc.pt, tc.pl, oh, ow)
			for i := range want {
				if withBias {
					want[i] += bt.FloatData[i/(oh*ow)]
				}
				if withRelu {
					want[i] = max(want[i], 0)
				}
			}
			got := out["y"]
			if !equalInts(got.Shape, []int{1, tc.m, oh, ow}) {
				t.Fatalf("%+v: shape %v, want [1 %d %d %d]", tc, got.Shape, tc.m, oh, ow)
			}
			for i, v := range want {
				if d := math.Abs(float64(got.F32[i] - v)); !(d <= 1e-4*(1+math.Abs(float64(v)))) {
					t.Fatalf("%+v threads %d direct %v: [%d] = %v, want %v", tc, threads, run.direct, i, got.F32[i], v)
				}
			}
		}
	}
}

// TestConvTransposeTiled: a ConvTranspose whose kernel equals its stride
// (written into place) against the definition, with and without bias,
// 2-D and 1-D, groups.
func TestConvTransposeTiled(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ints := func(name string, v ...int64) *pb.AttributeProto {
		return &pb.AttributeProto{Name: strp(name), Type: attrTypep(pb.AttributeProto_INTS), Ints: v}
	}
	for _, tc := range []struct{ ch, h, w, mg, g, kh, kw int }{
		{24, 5, 7, 24, 1, 2, 2}, {3, 4, 5, 2, 1, 3, 3}, {4, 3, 6, 3, 2, 2, 3}, {5, 1, 9, 4, 1, 1, 2},
	} {
		for _, withBias := range []bool{false, true} {
			wt := randTensor(rng, "w", false, int64(tc.ch), int64(tc.mg), int64(tc.kh), int64(tc.kw))
			inputs := []string{"x", "w"}
			init := []*pb.TensorProto{wt}
			m := tc.mg * tc.g
			var bias []float32
			if withBias {
				bt := randTensor(rng, "b", false, int64(m))
				bias = bt.FloatData
				inputs = append(inputs, "b")
				init = append(init, bt)
			}
			g := &pb.GraphProto{Name: strp("ct"),
				Node: []*pb.NodeProto{nodep("ConvTranspose", "ct", inputs, []string{"y"},
					&pb.AttributeProto{Name: strp("group"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(int64(tc.g))},
					ints("strides", int64(tc.kh), int64(tc.kw)))},
				Initializer: init,
				Input:       []*pb.ValueInfoProto{valueProto("x", nn.Float32, 1, tc.ch, tc.h, tc.w)},
				Output:      []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
			md, err := Decode(marshal(t, model(13, g)), "ct.onnx", "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			be, _ := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1})
			s, err := NewSession(md, be)
			if err != nil {
				t.Fatal(err)
			}
			x, _ := nn.New(nn.Float32, []int{1, tc.ch, tc.h, tc.w}, 1<<20)
			for i := range x.F32 {
				x.F32[i] = float32(rng.NormFloat64())
			}
			out, err := s.Run(map[string]*nn.Tensor{"x": x})
			s.Close()
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			oh, ow := tc.h*tc.kh, tc.w*tc.kw
			cg := tc.ch / tc.g
			got := out["y"].F32
			for o := 0; o < m; o++ {
				gi, oc := o/tc.mg, o%tc.mg
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						iy, ki, ix, kj := oy/tc.kh, oy%tc.kh, ox/tc.kw, ox%tc.kw
						var want float64
						if withBias {
							want = float64(bias[o])
						}
						for c := 0; c < cg; c++ {
							ci := gi*cg + c
							want += float64(x.F32[(ci*tc.h+iy)*tc.w+ix]) * float64(wt.FloatData[((ci*tc.mg+oc)*tc.kh+ki)*tc.kw+kj])
						}
						if v := got[(o*oh+oy)*ow+ox]; math.Abs(float64(v)-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("%+v bias %v: [%d,%d,%d] = %v, want %v", tc, withBias, o, oy, ox, v, want)
						}
					}
				}
			}
		}
	}
}

// TestTranspose2D: every perm of some rank-3 and rank-4 shapes (unit axes
// included) that transpose2D takes gives, as batched 2-D transposes, what
// the index definition gives; the rotations it must take are taken.
func TestTranspose2D(t *testing.T) {
	var perms func(n int) [][]int64
	perms = func(n int) [][]int64 {
		if n == 1 {
			return [][]int64{{0}}
		}
		var out [][]int64
		for _, p := range perms(n - 1) {
			for i := 0; i <= len(p); i++ {
				q := append(append(append([]int64{}, p[:i]...), int64(n-1)), p[i:]...)
				out = append(out, q)
			}
		}
		return out
	}
	taken := 0
	for _, shape := range [][]int{{1, 1, 257, 5}, {2, 3, 4}, {3, 1, 5, 2}, {2, 3, 4, 5}, {1, 9, 1, 8}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i)
		}
		for _, perm := range perms(len(shape)) {
			batch, rows, cols, ok := transpose2D(shape, perm)
			if !ok {
				continue
			}
			taken++
			if batch*rows*cols != n {
				t.Fatalf("%v %v: %d x %d x %d for %d elements", shape, perm, batch, rows, cols, n)
			}
			got := make([]float32, n)
			for b := 0; b < batch; b++ {
				o := b * rows * cols
				vec.Transpose(got[o:o+rows*cols], x[o:o+rows*cols], rows, cols)
			}
			// the definition: out[idx] = x[idx permuted back]
			oshape := make([]int, len(shape))
			for i, p := range perm {
				oshape[i] = shape[p]
			}
			st := strides(shape)
			idx := make([]int, len(shape))
			for j := 0; j < n; j++ {
				r, src := j, 0
				for i := len(oshape) - 1; i >= 0; i-- {
					idx[i] = r % oshape[i]
					r /= oshape[i]
				}
				for i, p := range perm {
					src += idx[i] * st[p]
				}
				if got[j] != x[src] {
					t.Fatalf("%v perm %v: [%d] = %v, want %v", shape, perm, j, got[j], x[src])
				}
			}
		}
	}
	if _, _, _, ok := transpose2D([]int{1, 1, 257, 5}, []int64{0, 1, 3, 2}); !ok {
		t.Fatal("the melspectrogram's transpose was not taken")
	}
	if _, _, _, ok := transpose2D([]int{2, 3, 4}, []int64{1, 0, 2}); ok {
		t.Fatal("a swap that is not a rotation was taken")
	}
	if taken < 10 {
		t.Fatalf("only %d perms taken", taken)
	}
}

// TestGeluKernels: the vector Gelu kernels against float64 math.Erf and
// math.Tanh over [-12, 12], odd lengths for the chunk tails.
func TestGeluKernels(t *testing.T) {
	n := 3*geluChunk + 37
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(-12 + 24*float64(i)/float64(n-1))
	}
	x[5], x[6] = 0, float32(math.Copysign(0, -1))
	geluErf(y, x)
	for i, v := range x {
		f := float64(v)
		want := 0.5 * f * (1 + math.Erf(f/math.Sqrt2))
		if d := math.Abs(float64(y[i]) - want); !(d <= 2e-7*max(1, math.Abs(f))) {
			t.Fatalf("geluErf(%v) = %v, want %v (diff %.3g)", v, y[i], want, d)
		}
	}
	geluTanh(y, x)
	for i, v := range x {
		f := float64(v)
		want := 0.5 * f * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(f+0.044715*f*f*f)))
		if d := math.Abs(float64(y[i]) - want); !(d <= 4e-7*max(1, math.Abs(f))) {
			t.Fatalf("geluTanh(%v) = %v, want %v (diff %.3g)", v, y[i], want, d)
		}
	}
}

// TestWhereBroadcast: Where's row walk against the per-element definition
// over broadcasts of each operand, f32 and int64.
func TestWhereBroadcast(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ c, x, y []int }{
		{[]int{12, 12}, []int{1, 4, 12, 12}, []int{}},
		{[]int{2, 1, 5}, []int{3, 1}, []int{2, 3, 5}},
		{[]int{1}, []int{4, 6}, []int{6}},
		{[]int{}, []int{}, []int{}},
		{[]int{3, 0}, []int{3, 1}, []int{1}},
	} {
		for _, dt := range []nn.DType{nn.Float32, nn.Int64} {
			cond, _ := nn.New(nn.Bool, tc.c, 1<<20)
			for i := range cond.U8 {
				cond.U8[i] = uint8(rng.IntN(2))
			}
			x, _ := nn.New(dt, tc.x, 1<<20)
			y, _ := nn.New(dt, tc.y, 1<<20)
			for i := range x.Len() {
				if dt == nn.Float32 {
					x.F32[i] = float32(i + 1)
				} else {
					x.I64[i] = int64(i + 1)
				}
			}
			for i := range y.Len() {
				if dt == nn.Float32 {
					y.F32[i] = float32(-i - 1)
				} else {
					y.I64[i] = int64(-i - 1)
				}
			}
			g := &pb.GraphProto{Name: strp("where"),
				Node: []*pb.NodeProto{nodep("Where", "where", []string{"c", "x", "y"}, []string{"z"})},
				Input: []*pb.ValueInfoProto{valueProto("c", nn.Bool, anys(tc.c)...), valueProto("x", dt, anys(tc.x)...),
					valueProto("y", dt, anys(tc.y)...)},
				Output: []*pb.ValueInfoProto{valueProto("z", dt)}}
			m, err := Decode(marshal(t, model(16, g)), "where.onnx", "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			be, _ := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1})
			s, err := NewSession(m, be)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(map[string]*nn.Tensor{"c": cond, "x": x, "y": y})
			s.Close()
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			z := out["z"]
			s1, _ := broadcast(tc.c, tc.x)
			shape, _ := broadcast(s1, tc.y)
			if !equalInts(z.Shape, shape) {
				t.Fatalf("%+v: shape %v, want %v", tc, z.Shape, shape)
			}
			ic, ix, iy := indexer(tc.c, shape), indexer(tc.x, shape), indexer(tc.y, shape)
			for i := range z.Len() {
				src, j := y, iy(i)
				if cond.U8[ic(i)] != 0 {
					src, j = x, ix(i)
				}
				if dt == nn.Float32 && z.F32[i] != src.F32[j] || dt == nn.Int64 && z.I64[i] != src.I64[j] {
					t.Fatalf("%+v %v: element %d differs", tc, dt, i)
				}
			}
		}
	}
}

func anys(v []int) []any {
	out := make([]any, len(v))
	for i, d := range v {
		out[i] = d
	}
	return out
}

// TestReduceRows: the reductions' row walk against per-element loops over
// axis sets of a rank-3 input, with and without keepdims.
func TestReduceRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	x, _ := nn.New(nn.Float32, []int{3, 4, 5}, 1<<20)
	for i := range x.F32 {
		x.F32[i] = float32(rng.NormFloat64())
	}
	for _, axes := range [][]int64{{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}} {
		for _, op := range []string{"ReduceMax", "ReduceMean"} {
			g := &pb.GraphProto{Name: strp("r"),
				Node: []*pb.NodeProto{nodep(op, "r", []string{"x"}, []string{"y"},
					&pb.AttributeProto{Name: strp("axes"), Type: attrTypep(pb.AttributeProto_INTS), Ints: axes},
					&pb.AttributeProto{Name: strp("keepdims"), Type: attrTypep(pb.AttributeProto_INT), I: i64p(0)})},
				Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 3, 4, 5)},
				Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
			m, err := Decode(marshal(t, model(11, g)), "r.onnx", "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, gpu.NewCPU())
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(map[string]*nn.Tensor{"x": x})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			red := [3]bool{}
			for _, a := range axes {
				red[a] = true
			}
			want := map[[3]int][]float32{}
			for i := 0; i < 3; i++ {
				for j := 0; j < 4; j++ {
					for k := 0; k < 5; k++ {
						key := [3]int{i, j, k}
						for d := range key {
							if red[d] {
								key[d] = 0
							}
						}
						want[key] = append(want[key], x.F32[(i*4+j)*5+k])
					}
				}
			}
			if len(out["y"].F32) != len(want) {
				t.Fatalf("%s %v: %d outputs, want %d", op, axes, len(out["y"].F32), len(want))
			}
			o := 0
			for i := 0; i < 3; i++ {
				for j := 0; j < 4; j++ {
					for k := 0; k < 5; k++ {
						key := [3]int{i, j, k}
						if red[0] && i > 0 || red[1] && j > 0 || red[2] && k > 0 {
							continue
						}
						vs := want[key]
						var w float64
						if op == "ReduceMax" {
							w = math.Inf(-1)
							for _, v := range vs {
								w = math.Max(w, float64(v))
							}
						} else {
							for _, v := range vs {
								w += float64(v)
							}
							w /= float64(len(vs))
						}
						if d := math.Abs(float64(out["y"].F32[o]) - w); d > 1e-5 {
							t.Fatalf("%s %v: [%d] = %v, want %v", op, axes, o, out["y"].F32[o], w)
						}
						o++
					}
				}
			}
		}
	}
}
