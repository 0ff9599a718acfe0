package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
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

// TestDepthwiseKernel: the phase-split kernel against the definition over
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
			depthwise(w, x, wt, got, work)
			naiveDepthwise(w, x, wt, want)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5+1e-5*math.Abs(float64(want[i]))) {
					t.Fatalf("[%d] = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}
