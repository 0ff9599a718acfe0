package gputest

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
)

// quantRef is the quantization rule every backend follows:
// q = roundHalfEven(x * float32(1/scale)) clamped to [-127, 127].
func quantRef(x, scale float32) float64 {
	v := float64(x * (1 / scale))
	return math.Max(-127, math.Min(127, math.RoundToEven(v)))
}

func scaleRef(maxAbs float32) float32 {
	if !(maxAbs > 0) {
		return 1
	}
	return maxAbs / 127
}

func testQuantScales(h *H) {
	q, ok := h.B.(gpu.Quantizer)
	if !ok {
		h.T.Skip("backend does not implement gpu.Quantizer")
	}
	for _, tc := range []struct {
		shape []int
		axis  int
		per   bool
	}{{[]int{7, 33}, 0, true}, {[]int{7, 33}, 1, true}, {[]int{7, 33}, -1, true}, {[]int{7, 33}, 0, false}, {[]int{2, 5, 3}, 1, true}, {[]int{257}, 0, false}} {
		n := numel(tc.shape)
		xd := h.Rand(n, -3, 3)
		x := h.F32(tc.shape, xd)
		ax, _ := gpu.NormAxis(tc.axis, len(tc.shape))
		outer, L, inner := layout(tc.shape, ax)
		if !tc.per {
			outer, L, inner = 1, 1, n
		}
		sshape := []int{}
		if tc.per {
			sshape = []int{L}
		}
		st := h.F32(sshape, nil)
		must(h, q.QuantScales(st, x, tc.axis), fmt.Sprintf("QuantScales %v axis %d", tc.shape, tc.axis))
		scales := h.ReadF32(st)
		want := make([]float64, len(scales))
		mx := make([]float32, len(scales))
		for o := 0; o < outer; o++ {
			for k := 0; k < L; k++ {
				for j := 0; j < inner; j++ {
					v := float32(math.Abs(float64(xd[(o*L+k)*inner+j])))
					if v > mx[k] {
						mx[k] = v
					}
				}
			}
		}
		for k := range want {
			want[k] = float64(scaleRef(mx[k]))
		}
		h.Close(fmt.Sprintf("QuantScales %v axis %d", tc.shape, tc.axis), scales, want, nil, TolArith, 0)
		qt, err := h.B.New(gpu.I8, tc.shape)
		must(h, err, "New i8")
		must(h, q.Quantize(qt, x, st, tc.axis), "Quantize")
		qb := make([]byte, n)
		must(h, h.B.Read(qt, qb), "Read i8")
		back := h.F32(tc.shape, nil)
		must(h, q.Dequantize(back, qt, st, tc.axis), "Dequantize")
		bd := h.ReadF32(back)
		for o := 0; o < outer; o++ {
			for k := 0; k < L; k++ {
				for j := 0; j < inner; j++ {
					i := (o*L+k)*inner + j
					if got, w := float64(int8(qb[i])), quantRef(xd[i], scales[k]); got != w {
						h.T.Fatalf("Quantize %v [%d] = %v, want %v", tc.shape, i, got, w)
					}
					if e := math.Abs(float64(bd[i] - xd[i])); e > float64(scales[k])/2*1.001 {
						h.T.Fatalf("round trip %v [%d]: error %v > scale/2", tc.shape, i, e)
					}
				}
			}
		}
	}
	// errors
	x := h.F32([]int{2, 3}, nil)
	qt, _ := h.B.New(gpu.I8, []int{2, 3})
	if err := q.Quantize(qt, x, h.F32([]int{2}, nil), 1); err == nil {
		h.T.Error("Quantize with 2 scales for 3 channels succeeded")
	}
	if err := q.Quantize(x, x, h.F32([]int{1}, []float32{1}), 0); err == nil {
		h.T.Error("Quantize into f32 succeeded")
	}
	if err := q.Dequantize(x, x, h.F32([]int{1}, []float32{1}), 0); err == nil {
		h.T.Error("Dequantize from f32 succeeded")
	}
}

func testMatMulInt8(h *H) {
	q, ok := h.B.(gpu.Quantizer)
	if !ok {
		h.T.Skip("backend does not implement gpu.Quantizer")
	}
	for _, s := range [][3]int{{1, 1, 1}, {1, 30, 16}, {64, 30, 16}, {7, 65, 33}, {33, 257, 7}, {3, 784, 10}} {
		m, k, n := s[0], s[1], s[2]
		xd, wd := h.Rand(m*k, -2, 2), h.Rand(k*n, -1, 1)
		x, w := h.F32([]int{m, k}, xd), h.F32([]int{k, n}, wd)
		ws := h.F32([]int{n}, nil)
		must(h, q.QuantScales(ws, w, 1), "QuantScales")
		wq, err := h.B.New(gpu.I8, []int{k, n})
		must(h, err, "New i8")
		must(h, q.Quantize(wq, w, ws, 1), "Quantize")
		out := h.F32([]int{m, n}, nil)
		must(h, q.MatMulInt8(out, x, wq, ws), fmt.Sprintf("MatMulInt8 %v", s))
		scales := h.ReadF32(ws)
		qb := make([]byte, k*n)
		must(h, h.B.Read(wq, qb), "Read")
		want := make([]float64, m*n)
		scale := make([]float64, m*n)
		for i := 0; i < m; i++ {
			var mx float32
			for _, v := range xd[i*k : (i+1)*k] {
				mx = float32(math.Max(float64(mx), math.Abs(float64(v))))
			}
			sx := scaleRef(mx)
			for j := 0; j < n; j++ {
				var acc, abs float64
				for p := 0; p < k; p++ {
					v := quantRef(xd[i*k+p], sx) * float64(int8(qb[p*n+j]))
					acc += v
					abs += math.Abs(v)
				}
				f := float64(sx) * float64(scales[j])
				want[i*n+j], scale[i*n+j] = acc*f, abs*f
			}
		}
		h.Close(fmt.Sprintf("MatMulInt8 %v", s), h.ReadF32(out), want, scale, TolArith, 0)
		// a new weight value must be seen (no stale cached layout)
		wd2 := make([]byte, k*n)
		for i := range wd2 {
			wd2[i] = byte(int8(h.R.IntN(255) - 127))
		}
		must(h, h.B.Write(wq, wd2), "Write i8")
		must(h, q.MatMulInt8(out, x, wq, ws), "MatMulInt8 after Write")
		got := h.ReadF32(out)
		var mx float32
		for _, v := range xd[:k] {
			mx = float32(math.Max(float64(mx), math.Abs(float64(v))))
		}
		sx := scaleRef(mx)
		var acc float64
		for p := 0; p < k; p++ {
			acc += quantRef(xd[p], sx) * float64(int8(wd2[p*n]))
		}
		if w := acc * float64(sx) * float64(scales[0]); math.Abs(float64(got[0])-w) > 1e-5*(1+math.Abs(w)) {
			h.T.Errorf("MatMulInt8 after rewriting w: %v, want %v", got[0], w)
		}
	}
	x, w := h.F32([]int{2, 3}, nil), h.F32([]int{3, 4}, nil)
	wq, _ := h.B.New(gpu.I8, []int{3, 4})
	if err := q.MatMulInt8(h.F32([]int{2, 4}, nil), x, w, h.F32([]int{4}, nil)); err == nil {
		h.T.Error("MatMulInt8 with f32 weights succeeded")
	}
	if err := q.MatMulInt8(h.F32([]int{2, 5}, nil), x, wq, h.F32([]int{4}, nil)); err == nil {
		h.T.Error("MatMulInt8 with a wrong out shape succeeded")
	}
	if err := q.MatMulInt8(h.F32([]int{2, 4}, nil), x, wq, h.F32([]int{3}, nil)); err == nil {
		h.T.Error("MatMulInt8 with 3 scales for 4 columns succeeded")
	}
}

func testKLDistill(h *H) {
	d, ok := h.B.(gpu.Distiller)
	if !ok {
		h.T.Skip("backend does not implement gpu.Distiller")
	}
	for _, T := range []float32{1, 2, 4} {
		for _, bc := range [][2]int{{1, 2}, {7, 10}, {33, 3}} {
			batch, classes := bc[0], bc[1]
			sd, td := h.Rand(batch*classes, -4, 4), h.Rand(batch*classes, -4, 4)
			s, te := h.F32([]int{batch, classes}, sd), h.F32([]int{batch, classes}, td)
			g := h.F32([]int{batch, classes}, nil)
			ref := func(p []float64) float64 {
				var tot float64
				for b := 0; b < batch; b++ {
					tr := make([]float64, classes)
					sr := make([]float64, classes)
					for j := range tr {
						tr[j] = float64(td[b*classes+j]) / float64(T)
						sr[j] = p[b*classes+j] / float64(T)
					}
					lt, ls := logSumExp(tr), logSumExp(sr)
					for j := range tr {
						pt := math.Exp(tr[j] - lt)
						tot += pt * ((tr[j] - lt) - (sr[j] - ls))
					}
				}
				return float64(T) * float64(T) * tot / float64(batch)
			}
			got, err := d.KLDistill(g, s, te, T)
			must(h, err, "KLDistill")
			p64 := make([]float64, len(sd))
			for i, v := range sd {
				p64[i] = float64(v)
			}
			h.Close(fmt.Sprintf("KLDistill T=%v %v", T, bc), []float32{got}, []float64{ref(p64)}, nil, TolLoss, AtolLoss)
			grad := make([]float64, len(sd))
			for i := range sd {
				x0 := p64[i]
				grad[i] = numDeriv(func(x float64) float64 { p64[i] = x; v := ref(p64); p64[i] = x0; return v }, x0)
			}
			h.Close(fmt.Sprintf("KLDistill T=%v %v gradient", T, bc), h.ReadF32(g), grad, nil, TolNumGrad, AtolNumGrad)
			// identical logits: zero loss
			l, err := d.KLDistill(nil, te, te, T)
			must(h, err, "KLDistill self")
			if math.Abs(float64(l)) > 1e-6 {
				h.T.Errorf("KL of a distribution with itself = %v", l)
			}
		}
	}
	a := h.F32([]int{2, 3}, nil)
	if _, err := d.KLDistill(nil, a, h.F32([]int{3, 2}, nil), 1); err == nil {
		h.T.Error("KLDistill with mismatched shapes succeeded")
	}
	if _, err := d.KLDistill(nil, a, a, 0); err == nil {
		h.T.Error("KLDistill at temperature 0 succeeded")
	}
}
