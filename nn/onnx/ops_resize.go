package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// convTranspose implements ConvTranspose for 1-D and 2-D inputs: per group,
// col = W_g^T x X_g on the backend, then col2im adds each column into the
// output. output_padding is honoured; output_shape and auto_pad other than
// NOTSET are not implemented.
func convTranspose(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x, wt := in[0], in[1]
	var bias *nn.Tensor
	if len(in) > 2 {
		bias = in[2]
	}
	if x.DType != nn.Float32 || wt.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: ConvTranspose of %v and %v", ErrUnsupported, x.DType, wt.DType)
	}
	if _, ok := c.n.attrs["output_shape"]; ok {
		return nil, fmt.Errorf("%w: output_shape", ErrUnsupported)
	}
	if ap := c.n.attrString("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "" {
		return nil, fmt.Errorf("%w: auto_pad %q", ErrUnsupported, ap)
	}
	r := len(x.Shape)
	if (r != 3 && r != 4) || len(wt.Shape) != r {
		return nil, fmt.Errorf("%w: input %v, weight %v (1-D and 2-D only)", ErrUnsupported, x.Shape, wt.Shape)
	}
	sp := r - 2
	ints := func(name string, n int, def int64) ([]int, error) {
		v, ok := c.n.attrInts(name)
		out := c.ints(n)
		for i := range out {
			out[i] = int(def)
		}
		if !ok {
			return out, nil
		}
		if len(v) != n {
			return nil, fmt.Errorf("%w: %s %v (want %d values)", ErrInvalid, name, v, n)
		}
		for i, e := range v {
			if e < 0 || e > math.MaxInt32 || (def == 1 && e == 0) {
				return nil, fmt.Errorf("%w: %s %v", ErrInvalid, name, v)
			}
			out[i] = int(e)
		}
		return out, nil
	}
	st, err := ints("strides", sp, 1)
	if err != nil {
		return nil, err
	}
	dl, err := ints("dilations", sp, 1)
	if err != nil {
		return nil, err
	}
	pads, err := ints("pads", 2*sp, 0)
	if err != nil {
		return nil, err
	}
	op, err := ints("output_padding", sp, 0)
	if err != nil {
		return nil, err
	}
	g := int(c.n.attrInt("group", 1))
	n, ch := x.Shape[0], x.Shape[1]
	if g <= 0 || ch%g != 0 || wt.Shape[0] != ch {
		return nil, fmt.Errorf("%w: group %d with input %v and weight %v", ErrInvalid, g, x.Shape, wt.Shape)
	}
	mg := wt.Shape[1]
	m := mg * g
	// Treat 1-D as 2-D of height 1.
	h, w, kh, kw := 1, x.Shape[2], 1, wt.Shape[2]
	sh, sw, dh, dw := 1, st[0], 1, dl[0]
	pt, pl, pb, pr, oph, opw := 0, pads[0], 0, pads[1], 0, op[0]
	if sp == 2 {
		h, w, kh, kw = x.Shape[2], x.Shape[3], wt.Shape[2], wt.Shape[3]
		sh, sw, dh, dw = st[0], st[1], dl[0], dl[1]
		pt, pl, pb, pr, oph, opw = pads[0], pads[1], pads[2], pads[3], op[0], op[1]
	}
	oh := sh*(h-1) + oph + (kh-1)*dh + 1 - pt - pb
	ow := sw*(w-1) + opw + (kw-1)*dw + 1 - pl - pr
	if oh <= 0 || ow <= 0 {
		return nil, fmt.Errorf("%w: output would be %dx%d", ErrInvalid, oh, ow)
	}
	shape := []int{n, m, oh, ow}
	if sp == 1 {
		shape = []int{n, m, ow}
	}
	if bias != nil && (bias.DType != nn.Float32 || bias.Len() != m) {
		return nil, fmt.Errorf("%w: bias %v for %d output channels", ErrInvalid, bias, m)
	}
	// Kernel = stride, no pads or dilation (the DBNet head's 2x2 stride-2
	// upsampling): every output element has exactly one tap, so the
	// columns are written into place, not added into a cleared output.
	tiled := kh == sh && kw == sw && dh == 1 && dw == 1 && pt+pl+pb+pr == 0 && oph == 0 && opw == 0
	var out *nn.Tensor
	if tiled {
		out, err = c.allocFull(nn.Float32, shape)
	} else {
		out, err = c.alloc(nn.Float32, shape)
	}
	if err != nil {
		return nil, err
	}
	cg := ch / g
	kk := mg * kh * kw
	plane := h * w
	if _, err := nn.Elements([]int{kk, plane}, c.limit); err != nil {
		return nil, fmt.Errorf("%w: column buffer: %v", ErrInvalid, err)
	}
	col := c.s.hostGet(kk * plane)
	defer c.s.hostPut(col)
	for b := 0; b < n; b++ {
		for gi := 0; gi < g; gi++ {
			xg := x.F32[(b*ch+gi*cg)*plane : (b*ch+gi*cg+cg)*plane]
			wg := wt.F32[gi*cg*kk : (gi+1)*cg*kk] // [cg, kk]
			if wT := c.smallTaps(g == 1 && c.isConst(wt), wg, cg, kk); wT != nil {
				// the constant kernel transposed once per node, so the
				// product reads it in place instead of packing it
				if err := c.gemm(col, wT, xg, kk, cg, plane, false, false, true, false); err != nil {
					return nil, err
				}
			} else if err := c.gemm(col, wg, xg, kk, cg, plane, true, false, c.isConst(wt), false); err != nil {
				return nil, err
			}
			for oc := 0; oc < mg; oc++ {
				dst := out.F32[(b*m+gi*mg+oc)*oh*ow : (b*m+gi*mg+oc+1)*oh*ow]
				if tiled {
					var bv float32
					if bias != nil {
						bv = bias.F32[gi*mg+oc]
					}
					convTransposeTiled(dst, col[oc*kh*kw*plane:(oc+1)*kh*kw*plane], h, w, kh, kw, bv)
					continue
				}
				for ki := 0; ki < kh; ki++ {
					for kj := 0; kj < kw; kj++ {
						row := col[((oc*kh+ki)*kw+kj)*plane:][:plane]
						// The input columns this tap puts inside the
						// output: ix*sw + ox0 in [0, ow).
						ox0 := kj*dw - pl
						lo, hi := tapRange(ox0, sw, w, ow)
						if lo >= hi {
							continue
						}
						for iy := 0; iy < h; iy++ {
							oy := iy*sh - pt + ki*dh
							if oy < 0 || oy >= oh {
								continue
							}
							d := dst[oy*ow+ox0+lo*sw : oy*ow+ox0+(hi-1)*sw+1]
							r := row[iy*w+lo : iy*w+hi]
							if sw == 1 {
								vec.Add(d, d, r)
								continue
							}
							for i, v := range r {
								d[i*sw] += v
							}
						}
					}
				}
				if bias != nil {
					v := bias.F32[gi*mg+oc]
					for i := range dst {
						dst[i] += v
					}
				}
			}
		}
	}
	return c.one(out), nil
}

// convTransposeTiled writes one output channel of a ConvTranspose whose
// kernel equals its stride (kh x kw, no pads): output (iy*kh+ki, ix*kw+kj)
// is column row (ki, kj) of col at input pixel (iy, ix), plus bias.
func convTransposeTiled(dst, col []float32, h, w, kh, kw int, bias float32) {
	plane, ow := h*w, w*kw
	for iy := 0; iy < h; iy++ {
		for ki := 0; ki < kh; ki++ {
			o := dst[(iy*kh+ki)*ow : (iy*kh+ki+1)*ow]
			if kw == 2 {
				a := col[(ki*2)*plane+iy*w:][:w]
				b := col[(ki*2+1)*plane+iy*w:][:w]
				o = o[:2*w]
				for ix := range a {
					o[2*ix] = a[ix] + bias
					o[2*ix+1] = b[ix] + bias
				}
				continue
			}
			for kj := 0; kj < kw; kj++ {
				src := col[(ki*kw+kj)*plane+iy*w:][:w]
				for ix, v := range src {
					o[ix*kw+kj] = v + bias
				}
			}
		}
	}
}

// resize implements Resize (opset 11+) with scales or sizes: mode nearest
// (any rank, every nearest_mode) and linear (the last two axes), with the
// half_pixel, pytorch_half_pixel, asymmetric and align_corners coordinate
// transformations.
func resize(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if x.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: Resize of %v", ErrUnsupported, x.DType)
	}
	r := len(x.Shape)
	mode := c.n.attrString("mode", "nearest")
	ctm := c.n.attrString("coordinate_transformation_mode", "half_pixel")
	nmode := c.n.attrString("nearest_mode", "round_prefer_floor")
	if c.n.opset < 11 {
		return nil, fmt.Errorf("%w: Resize before opset 11", ErrUnsupported)
	}
	scales := make([]float64, r)
	shape := make([]int, r)
	var sizesT, scalesT *nn.Tensor
	if len(in) > 3 && in[3] != nil && in[3].Len() > 0 {
		sizesT = in[3]
	} else if len(in) > 2 && in[2] != nil && in[2].Len() > 0 {
		scalesT = in[2]
	} else {
		return nil, fmt.Errorf("%w: Resize needs scales or sizes", ErrInvalid)
	}
	if sizesT != nil {
		sz, err := ints(sizesT)
		if err != nil {
			return nil, err
		}
		if len(sz) != r {
			return nil, fmt.Errorf("%w: sizes %v for rank %d", ErrInvalid, sz, r)
		}
		for i, s := range sz {
			if s < 0 || s > math.MaxInt32 {
				return nil, fmt.Errorf("%w: sizes %v", ErrInvalid, sz)
			}
			shape[i] = int(s)
			if x.Shape[i] > 0 {
				scales[i] = float64(s) / float64(x.Shape[i])
			}
		}
	} else {
		if scalesT.DType != nn.Float32 || scalesT.Len() != r {
			return nil, fmt.Errorf("%w: scales %v for rank %d", ErrInvalid, scalesT, r)
		}
		for i, s := range scalesT.F32 {
			d := float64(x.Shape[i]) * float64(s)
			if !(s > 0) || d > math.MaxInt32 {
				return nil, fmt.Errorf("%w: scales %v", ErrInvalid, scalesT.F32)
			}
			scales[i] = float64(s)
			shape[i] = int(math.Floor(d))
		}
	}
	for i := range shape {
		if x.Shape[i] == 0 && shape[i] > 0 {
			return nil, fmt.Errorf("%w: cannot resize an empty axis %d to %d", ErrInvalid, i, shape[i])
		}
	}
	src := func(axis, o int) float64 {
		in, outLen, s := float64(x.Shape[axis]), float64(shape[axis]), scales[axis]
		switch ctm {
		case "asymmetric":
			return float64(o) / s
		case "align_corners":
			if outLen <= 1 {
				return 0
			}
			return float64(o) * (in - 1) / (outLen - 1)
		case "pytorch_half_pixel":
			if outLen <= 1 {
				return 0
			}
			return (float64(o)+0.5)/s - 0.5
		default: // half_pixel
			return (float64(o)+0.5)/s - 0.5
		}
	}
	if ctm != "asymmetric" && ctm != "align_corners" && ctm != "pytorch_half_pixel" && ctm != "half_pixel" {
		return nil, fmt.Errorf("%w: coordinate_transformation_mode %q", ErrUnsupported, ctm)
	}
	st := strides(x.Shape)
	switch mode {
	case "nearest":
		near := func(v float64, n int) int {
			var i float64
			switch nmode {
			case "floor":
				i = math.Floor(v)
			case "ceil":
				i = math.Ceil(v)
			case "round_prefer_ceil":
				i = math.Floor(v + 0.5)
			default: // round_prefer_floor
				i = math.Ceil(v - 0.5)
			}
			return min(max(int(i), 0), n-1)
		}
		var mb [nn.MaxRank][]int
		if r > nn.MaxRank {
			return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, r, nn.MaxRank)
		}
		maps := mb[:r]
		for k := 0; k < r; k++ {
			maps[k] = c.ints(shape[k])
			for o := range maps[k] {
				maps[k][o] = near(src(k, o), x.Shape[k]) * st[k]
			}
		}
		if x.DType == nn.Float32 && r >= 2 && sameInts(shape[:r-2], x.Shape[:r-2]) {
			// The usual case (spatial axes only): row by row, and an
			// output row that repeats the previous source row is a copy.
			ih, iw := x.Shape[r-2], x.Shape[r-1]
			oh, ow := shape[r-2], shape[r-1]
			my, mx := maps[r-2], maps[r-1]
			res, err := c.alloc(nn.Float32, shape)
			if err != nil {
				return nil, err
			}
			// (each mode allocates only the tensor it returns: a buffer
			// allocated and not returned would never go back to the pool)
			outer := x.Len() / max(1, ih*iw)
			// planes split over the threads
			if grain := max(1, elemGrain/max(1, oh*ow)); c.serial(outer, grain) {
				resizeNearest(x.F32, res.F32, my, mx, ih, iw, oh, ow, 0, outer)
			} else {
				xf, rf := x.F32, res.F32
				c.parallel(outer, grain, func(lo, hi int) { resizeNearest(xf, rf, my, mx, ih, iw, oh, ow, lo, hi) })
			}
			return c.one(res), nil
		}
		res, err := gatherCopy(c, x, shape, func(idx []int) int {
			j := 0
			for k, v := range idx {
				j += maps[k][v]
			}
			return j
		})
		if err != nil {
			return nil, err
		}
		return c.one(res), nil
	case "linear":
		if r < 2 {
			return nil, fmt.Errorf("%w: linear Resize of rank %d", ErrUnsupported, r)
		}
		for k := 0; k < r-2; k++ {
			if shape[k] != x.Shape[k] {
				return nil, fmt.Errorf("%w: linear Resize of axis %d (only the last two)", ErrUnsupported, k)
			}
		}
		taps := func(axis int) []tap {
			t := make([]tap, shape[axis])
			n := x.Shape[axis]
			for o := range t {
				v := min(max(src(axis, o), 0), float64(n-1))
				i0 := int(math.Floor(v))
				i1 := min(i0+1, n-1)
				t[o] = tap{i0, i1, float32(v - float64(i0))}
			}
			return t
		}
		out, err := c.alloc(nn.Float32, shape)
		if err != nil {
			return nil, err
		}
		ty, tx := taps(r-2), taps(r-1)
		ih, iw := x.Shape[r-2], x.Shape[r-1]
		outer := x.Len() / max(1, ih*iw)
		oh, ow := shape[r-2], shape[r-1]
		// planes split over the threads
		if grain := max(1, elemGrain/max(1, 2*oh*ow)); c.serial(outer, grain) {
			resizeLinear(x.F32, out.F32, ty, tx, ih, iw, oh, ow, 0, outer)
		} else {
			xf, of := x.F32, out.F32
			c.parallel(outer, grain, func(lo, hi int) { resizeLinear(xf, of, ty, tx, ih, iw, oh, ow, lo, hi) })
		}
		return c.one(out), nil
	}
	return nil, fmt.Errorf("%w: mode %q", ErrUnsupported, mode)
}

// resizeNearest writes planes [lo, hi) of a nearest Resize over the last
// two axes: my and mx are the source row offsets and column indices of
// each output row and column; an output row that repeats the previous
// source row is a copy.
func resizeNearest(x, res []float32, my, mx []int, ih, iw, oh, ow, lo, hi int) {
	for p := lo; p < hi; p++ {
		img := x[p*ih*iw : (p+1)*ih*iw]
		dst := res[p*oh*ow : (p+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			row := dst[oy*ow : (oy+1)*ow]
			if oy > 0 && my[oy] == my[oy-1] {
				copy(row, dst[(oy-1)*ow:oy*ow])
				continue
			}
			src := img[my[oy] : my[oy]+iw]
			for ox := range row {
				row[ox] = src[mx[ox]]
			}
		}
	}
}

// tap is one output coordinate of a linear Resize: its two source
// coordinates and the weight of the second.
type tap struct {
	i0, i1 int
	w1     float32
}

// resizeLinear writes planes [lo, hi) of a linear Resize over the last two
// axes, with the row taps ty and column taps tx.
func resizeLinear(x, out []float32, ty, tx []tap, ih, iw, oh, ow, lo, hi int) {
	for p := lo; p < hi; p++ {
		img := x[p*ih*iw : (p+1)*ih*iw]
		dst := out[p*oh*ow : (p+1)*oh*ow]
		for oy, a := range ty {
			r0, r1 := img[a.i0*iw:], img[a.i1*iw:]
			for ox, b := range tx {
				top := r0[b.i0] + (r0[b.i1]-r0[b.i0])*b.w1
				bot := r1[b.i0] + (r1[b.i1]-r1[b.i0])*b.w1
				dst[oy*ow+ox] = top + (bot-top)*a.w1
			}
		}
	}
}

func init() {
	reg("ConvTranspose", opDef{since: 1, attrs: []string{"kernel_shape", "strides", "dilations", "pads", "auto_pad", "group", "output_padding", "output_shape"},
		minIn: 2, maxIn: 3, run: convTranspose, backend: true, foldable: true})
	reg("Resize", opDef{since: 11, attrs: []string{"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside", "extrapolation_value"},
		minIn: 1, maxIn: 4, run: resize, foldable: true})
}
