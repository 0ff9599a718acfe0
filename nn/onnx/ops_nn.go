package onnx

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// window describes a 2-D sliding window (Conv, pooling); 1-D operators are
// run as 2-D with a height of 1.
type window struct {
	n, ch, h, w      int // input batch, channels, height, width
	kh, kw           int
	sh, sw, dh, dw   int
	pt, pl, pb, pr   int // pads top, left, bottom, right
	oh, ow           int
	oneD             bool
	countIncludePads bool
}

// winCache keeps a node's last window: a steady-state run sees the same
// input shapes every time, and reading the attributes again allocates.
type winCache struct {
	p    atomic.Pointer[winEntry]
	rows atomic.Pointer[rowsEntry]  // gatherRows, for the window in p
	dwT  atomic.Pointer[dwTEntry]   // depthwiseSmall's transposed constant kernel
	qmm  atomic.Pointer[qmmEntry]   // MatMulInteger's packed constant s8 weights
	qcv  atomic.Pointer[qconvEntry] // ConvInteger's packed constant s8 weights, per group
	dcv  atomic.Pointer[dconvEntry] // the direct convolution's plan
}

// qconvEntry is a constant s8 Conv weight [m, cg, kh, kw] laid out per
// group as rows [m/g, cg*kh*kw] for gpu's s8 x u8 product, for the
// constant at src.
type qconvEntry struct {
	src   *uint8
	m, kk int
	rows  []*gpu.S8Rows
	// packs is the same weight as [cg*kh*kw, m/g] column panels per group
	// for runPatchRows, made on its first use
	once  sync.Once
	packs []*gpu.U8S8Weights
	err   error
}

// qmmEntry is a constant s8 weight [k, n] packed for gpu's u8 x s8
// product, for the constant at src.
type qmmEntry struct {
	src  *uint8
	k, n int
	w    *gpu.U8S8Weights
}

// dwTEntry is a depthwise kernel [ch][taps] transposed to [taps][ch], for
// the constant kernel at src.
type dwTEntry struct {
	src      *float32
	ch, taps int
	kt       []float32
}

type rowsEntry struct {
	w      window // by value: callers pass copies of the node's window
	cg     int
	direct bool
	rows   []int
}

type winEntry struct {
	shape, k []int
	ceil     bool
	w        window
}

// makeWindow returns the window of node c.n for input x and a kernel of
// spatial size k; the result is shared and must not be changed.
func makeWindow(c *kctx, x *nn.Tensor, k []int, ceil bool) (*window, error) {
	if c.n.wc != nil {
		if e := c.n.wc.p.Load(); e != nil && e.ceil == ceil && slices.Equal(e.shape, x.Shape) && slices.Equal(e.k, k) {
			return &e.w, nil
		}
	}
	w, err := readWindow(c, x, k, ceil)
	if err != nil {
		return nil, err
	}
	if c.n.wc != nil {
		c.n.wc.p.Store(&winEntry{shape: slices.Clone(x.Shape), k: slices.Clone(k), ceil: ceil, w: *w})
	}
	return w, nil
}

// readWindow reads kernel_shape, strides, dilations, pads, auto_pad and
// ceil_mode for input x (NCW or NCHW) and a kernel of spatial size k.
func readWindow(c *kctx, x *nn.Tensor, k []int, ceil bool) (*window, error) {
	r := len(x.Shape)
	if r != 3 && r != 4 {
		return nil, fmt.Errorf("%w: input %v: only 1-D and 2-D windows (rank 3 or 4) are implemented", ErrUnsupported, x.Shape)
	}
	sp := r - 2
	if len(k) != sp {
		return nil, fmt.Errorf("%w: kernel_shape %v for input %v", ErrInvalid, slices.Clone(k), slices.Clone(x.Shape))
	}
	get := func(name string, n int, def int) ([]int, error) {
		v, ok := c.n.attrInts(name)
		out := make([]int, n)
		for i := range out {
			out[i] = def
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
	st, err := get("strides", sp, 1)
	if err != nil {
		return nil, err
	}
	dl, err := get("dilations", sp, 1)
	if err != nil {
		return nil, err
	}
	pads, err := get("pads", 2*sp, 0)
	if err != nil {
		return nil, err
	}
	w := &window{n: x.Shape[0], ch: x.Shape[1], h: 1, kh: 1, sh: 1, dh: 1}
	in := x.Shape[2:]
	for _, v := range k {
		if v <= 0 {
			return nil, fmt.Errorf("%w: kernel_shape %v", ErrInvalid, k)
		}
	}
	auto := c.n.attrString("auto_pad", "NOTSET")
	out := make([]int, sp)
	for i := 0; i < sp; i++ {
		ek := dl[i]*(k[i]-1) + 1
		switch auto {
		case "NOTSET", "":
			num := in[i] + pads[i] + pads[i+sp] - ek
			if num < 0 {
				return nil, fmt.Errorf("%w: window %d larger than padded input %v", ErrInvalid, ek, x.Shape)
			}
			if ceil {
				out[i] = (num+st[i]-1)/st[i] + 1
				// The last window must start inside the input or left pad.
				if (out[i]-1)*st[i] >= in[i]+pads[i] {
					out[i]--
				}
			} else {
				out[i] = num/st[i] + 1
			}
		case "VALID":
			pads[i], pads[i+sp] = 0, 0
			if in[i] < ek {
				return nil, fmt.Errorf("%w: window %d larger than input %v", ErrInvalid, ek, x.Shape)
			}
			out[i] = (in[i]-ek)/st[i] + 1
		case "SAME_UPPER", "SAME_LOWER":
			out[i] = (in[i] + st[i] - 1) / st[i]
			total := max(0, (out[i]-1)*st[i]+ek-in[i])
			if auto == "SAME_UPPER" {
				pads[i], pads[i+sp] = total/2, total-total/2
			} else {
				pads[i], pads[i+sp] = total-total/2, total/2
			}
		default:
			return nil, fmt.Errorf("%w: auto_pad %q", ErrInvalid, auto)
		}
	}
	if sp == 1 {
		w.oneD = true
		w.w, w.kw, w.sw, w.dw, w.pl, w.pr, w.ow, w.oh = in[0], k[0], st[0], dl[0], pads[0], pads[1], out[0], 1
	} else {
		w.h, w.w, w.kh, w.kw = in[0], in[1], k[0], k[1]
		w.sh, w.sw, w.dh, w.dw = st[0], st[1], dl[0], dl[1]
		w.pt, w.pl, w.pb, w.pr = pads[0], pads[1], pads[2], pads[3]
		w.oh, w.ow = out[0], out[1]
	}
	return w, nil
}

func (w *window) outShape(ch int) []int {
	var sh [4]int
	return w.outShapeIn(&sh, ch)
}

// outShapeIn writes the output shape into sh (the caller's array, so that
// a kernel's shape need not be allocated).
func (w *window) outShapeIn(sh *[4]int, ch int) []int {
	if w.oneD {
		*sh = [4]int{w.n, ch, w.ow}
		return sh[:3]
	}
	*sh = [4]int{w.n, ch, w.oh, w.ow}
	return sh[:4]
}

func conv(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	out, _, _, err := convCore(c, in, true, false)
	return out, err
}

// convCore runs a Conv; the bias (validated either way) is added when
// addBias is set or the kernel adds it anyway (the direct kernel starts
// its accumulators at it), and biased says whether it was (a FusedConv
// adds it in its epilogue otherwise). relu asks for max(0, x) after the
// bias where the kernel can apply it in its store (the direct kernel);
// relued says whether it was.
func convCore(c *kctx, in []*nn.Tensor, addBias, relu bool) (res []*nn.Tensor, biased, relued bool, err error) {
	x, wt := in[0], in[1]
	var bias *nn.Tensor
	if len(in) > 2 {
		bias = in[2]
	}
	if x.DType != nn.Float32 || wt.DType != nn.Float32 {
		return nil, false, false, fmt.Errorf("%w: Conv of %v and %v", ErrUnsupported, x.DType, wt.DType)
	}
	if len(wt.Shape) != len(x.Shape) {
		return nil, false, false, fmt.Errorf("%w: weight %v for input %v", ErrInvalid, wt.Shape, x.Shape)
	}
	k := wt.Shape[2:]
	if ks, ok := c.n.attrInts("kernel_shape"); ok {
		for i := range ks {
			if i >= len(k) || ks[i] != int64(k[i]) {
				return nil, false, false, fmt.Errorf("%w: kernel_shape %v differs from weight %v", ErrInvalid, ks, wt.Shape)
			}
		}
	}
	win, err := makeWindow(c, x, k, false)
	if err != nil {
		return nil, false, false, err
	}
	g := int(c.n.attrInt("group", 1))
	m := wt.Shape[0]
	if g <= 0 || win.ch%g != 0 || m%g != 0 || wt.Shape[1] != win.ch/g {
		return nil, false, false, fmt.Errorf("%w: group %d with input %v and weight %v", ErrInvalid, g, x.Shape, wt.Shape)
	}
	if bias != nil && (bias.DType != nn.Float32 || bias.Len() != m) {
		return nil, false, false, fmt.Errorf("%w: bias %v for %d output channels", ErrInvalid, bias, m)
	}
	// The whole convolution is charged before its output is allocated.
	if err := c.charge("convolution", win.n*m*win.oh*win.ow, win.ch/g, win.kh*win.kw); err != nil {
		return nil, false, false, err
	}
	c.charged = true
	var osh [4]int
	out, err := c.allocFull(nn.Float32, win.outShapeIn(&osh, m)) // every kernel below writes all of it
	if err != nil {
		return nil, false, false, err
	}
	cg, mg := win.ch/g, m/g
	kk := cg * win.kh * win.kw
	plane := win.oh * win.ow
	if cg == 1 && mg == 1 {
		if err := c.depthwise(win, x.F32, wt.F32, out.F32, c.isConst(wt)); err != nil {
			return nil, false, false, err
		}
	} else if _, isCPU := c.s.be.(*gpu.CPU); useDirect(win, cg, mg, isCPU) {
		var b []float32
		if bias != nil {
			b = bias.F32
		}
		if err := c.convDirect(win, x.F32, wt.F32, b, out.F32, g, cg, mg, c.isConst(wt), relu); err != nil {
			return nil, false, false, err
		}
		return c.one(out), bias != nil, relu, nil
	} else {
		direct1x1 := win.kh == 1 && win.kw == 1 && win.sh == 1 && win.sw == 1 && win.pt+win.pl+win.pb+win.pr == 0
		// Phased im2col (see im2colPhased) when its extra columns cost
		// at most a quarter more work.
		_, w2, planeSz := phaseDims(win)
		// Not for a strided 1x1 convolution (the downsampling shortcut of
		// a residual block): it reads one phase of sh*sw, and im2col
		// subsamples that one straight into the product's rows instead
		// of splitting all of them (t_resnet's two were 11 us each).
		phased := !direct1x1 && win.kh*win.kw > 1 && (plane >= 256 || win.sh*win.sw == 1) && win.phaseable() && 4*w2 <= 5*win.ow
		cols := plane // columns of the product
		if phased {
			cols = win.oh * w2
		}
		// On the CPU backend a phased product reads its B rows straight
		// out of the phase planes of all cg channels (gpu.CPU.SgemmRows):
		// im2col without the copy.
		cpu, isCPU := c.s.be.(*gpu.CPU)
		// Unpadded, stride 1: B's rows lie in the input itself, tap
		// (ch, ki, kj) at ch*h*w + ki*dh*w + kj*dw, each a run of oh*w
		// less (kw-1)*dw floats (the last one ends at the input's end),
		// so nothing is copied; the kw-1 columns past ow in each output
		// row are computed and dropped as for a phased product. With
		// kw == 1 (embedding_model's 3x1 convolutions) nothing is dropped.
		rowStride := w2 // elements between output rows in the product
		noPad := win.sh == 1 && win.sw == 1 && win.pt+win.pl+win.pb+win.pr == 0
		inPlace := !direct1x1 && isCPU && noPad && (win.kw == 1 || 4*win.w <= 5*win.ow) &&
			win.oh*win.w-(win.kw-1)*win.dw >= smallN
		if inPlace {
			phased = false
			cols = win.oh*win.w - (win.kw-1)*win.dw
			rowStride = win.w
		}
		// Stride 1 padded only left and right by (kw-1)*dw in all (the
		// 1x3 convolutions of embedding_model): output (y, ox) is flat
		// position y*w+ox, and the unpadded in-place product over flat
		// positions, written at offset pl, is right wherever the window
		// does not cross a row's edge. The oh*(pl+pr) edge positions are
		// then one small product of their own (convEdges). No phase
		// planes, no extra columns to drop.
		rowPad := !direct1x1 && !inPlace && isCPU && win.sh == 1 && win.sw == 1 && win.pt == 0 && win.pb == 0 &&
			win.pl+win.pr > 0 && win.pl+win.pr == (win.kw-1)*win.dw && win.ow == win.w &&
			8*(win.pl+win.pr) <= win.w && win.oh*win.w-(win.kw-1)*win.dw >= smallN
		var ecol, eres []float32
		var rows []int
		nEdge := win.oh * (win.pl + win.pr)
		if rowPad {
			phased = false
			cols = win.oh*win.w - (win.kw-1)*win.dw
			rows = c.gatherRows(win, cg, true)
			if err := c.checkWork("edge buffer", kk+mg, nEdge); err != nil {
				return nil, false, false, err
			}
			ecol = c.s.hostGet(kk * nEdge)
			defer c.s.hostPut(ecol)
			eres = c.s.hostGet(mg * nEdge)
			defer c.s.hostPut(eres)
		}
		gather := phased && isCPU && cols >= smallN
		var col, dec, tmp []float32
		if inPlace {
			rows = c.gatherRows(win, cg, true)
			if cols != plane {
				if err := c.checkWork("product buffer", mg, cols); err != nil {
					return nil, false, false, err
				}
				tmp = c.s.hostGet(mg * cols)
				defer c.s.hostPut(tmp)
			}
		}
		if !direct1x1 && !gather && !inPlace && !rowPad {
			if err := c.checkWork("im2col buffer", kk, cols); err != nil {
				return nil, false, false, err
			}
			col = c.s.hostGet(kk * cols)
			defer c.s.hostPut(col)
		}
		if phased {
			nd := win.sh * win.sw * planeSz
			if gather {
				if err := c.checkWork("im2col phases", cg, nd); err != nil {
					return nil, false, false, err
				}
				nd *= cg
				rows = c.gatherRows(win, cg, false)
			}
			if err := c.checkWork("im2col phases", nd, 1); err != nil {
				return nil, false, false, err
			}
			dec = c.s.hostGet(nd)
			defer c.s.hostPut(dec)
			if cols != plane {
				if err := c.checkWork("product buffer", mg, cols); err != nil {
					return nil, false, false, err
				}
				tmp = c.s.hostGet(mg * cols)
				defer c.s.hostPut(tmp)
			}
		}
		wConst := c.isConst(wt)
		for b := 0; b < win.n; b++ {
			for gi := 0; gi < g; gi++ {
				src := x.F32[(b*win.ch+gi*cg)*win.h*win.w:]
				dst := out.F32[(b*m+gi*mg)*plane : (b*m+gi*mg+mg)*plane]
				res := dst
				if tmp != nil {
					res = tmp
				}
				wg := wt.F32[gi*mg*kk : (gi+1)*mg*kk]
				switch {
				case rowPad:
					if err := cpu.SgemmRowsLd(mg, cols, kk, wg, src[:cg*win.h*win.w], rows, dst[win.pl:], plane); err != nil {
						return nil, false, false, err
					}
					c.s.deviceCalls.Add(1)
					convEdgeCols(win, src, cg, ecol)
					if err := c.gemm(eres, wg, ecol, mg, kk, nEdge, false, false, wConst, false); err != nil {
						return nil, false, false, err
					}
					convEdgeScatter(win, eres, dst, mg)
				case inPlace:
					if err := cpu.SgemmRows(mg, cols, kk, wg, src[:cg*win.h*win.w], rows, res); err != nil {
						return nil, false, false, err
					}
					c.s.deviceCalls.Add(1)
				case gather:
					h2, w2, planeSz := phaseDims(win)
					per := win.sh * win.sw * planeSz
					for ch := 0; ch < cg; ch++ {
						splitPhases(win, src[ch*win.h*win.w:(ch+1)*win.h*win.w], dec[ch*per:(ch+1)*per], h2, w2, planeSz)
					}
					if err := cpu.SgemmRows(mg, cols, kk, wg, dec, rows, res); err != nil {
						return nil, false, false, err
					}
					c.s.deviceCalls.Add(1)
				default:
					switch {
					case direct1x1:
						col = src[:kk*plane]
					case phased:
						im2colPhased(win, src, cg, col, dec)
					default:
						im2col(win, src, cg, col)
					}
					if err := c.gemm(res, wg, col, mg, kk, cols, false, false, wConst, false); err != nil {
						return nil, false, false, err
					}
				}
				if tmp != nil { // drop the extra columns
					dropColumns(dst, tmp, mg*win.oh, win.ow, win.oh, cols, rowStride)
				}
			}
		}
	}
	if bias != nil && addBias {
		for b := 0; b < win.n; b++ {
			for o := 0; o < m; o++ {
				row := out.F32[(b*m+o)*plane : (b*m+o+1)*plane]
				vec.Affine(row, row, 1, bias.F32[o]) // x*1 + b rounds as x + b
			}
		}
	}
	return c.one(out), bias != nil && addBias, false, nil
}

// convEdgeCols unrolls, for a window padded only left and right, the
// input windows of the oh*(pl+pr) output positions whose window crosses a
// row's edge (per output row: columns [0, pl), then [w-pr, w)) into
// col[cg*kh*kw, (pl+pr)*oh], edge by edge (column e*oh+y), zeros for the
// pads.
func convEdgeCols(w *window, x []float32, cg int, col []float32) {
	ne := w.pl + w.pr
	n := w.oh * ne
	r := 0
	for ch := 0; ch < cg; ch++ {
		img := x[ch*w.h*w.w : (ch+1)*w.h*w.w]
		for ki := 0; ki < w.kh; ki++ {
			base := ki * w.dh * w.w
			for kj := 0; kj < w.kw; kj++ {
				dst := col[r*n : (r+1)*n]
				r++
				for e := 0; e < ne; e++ {
					d := dst[e*w.oh : (e+1)*w.oh]
					ix := edgeColumn(w, e) - w.pl + kj*w.dw
					if ix < 0 || ix >= w.w {
						clear(d)
						continue
					}
					src := img[base+ix:]
					for y := range d {
						d[y] = src[y*w.w]
					}
				}
			}
		}
	}
}

// edgeColumn is the output column of edge e (see convEdgeCols).
func edgeColumn(w *window, e int) int {
	if e < w.pl {
		return e
	}
	return w.w - (w.pl + w.pr) + e
}

// convEdgeScatter writes the edge product res[mg, (pl+pr)*oh] into its
// output positions (see convEdgeCols).
func convEdgeScatter(w *window, res, out []float32, mg int) {
	ne := w.pl + w.pr
	n := w.oh * ne
	plane := w.oh * w.ow
	for o := 0; o < mg; o++ {
		src := res[o*n : (o+1)*n]
		dst := out[o*plane : (o+1)*plane]
		for e := 0; e < ne; e++ {
			d := dst[edgeColumn(w, e):]
			for y, v := range src[e*w.oh : (e+1)*w.oh] {
				d[y*w.ow] = v
			}
		}
	}
}

// dropColumns copies the ow leading columns of each of the n output rows
// (oh per channel) out of a product whose rows are stride apart (a
// channel's rows start cols apart) into dst, densely.
func dropColumns(dst, tmp []float32, n, ow, oh, cols, stride int) {
	for r := 0; r < n; r += oh {
		for y := 0; y < oh; y++ {
			d := dst[(r+y)*ow : (r+y+1)*ow]
			src := tmp[(r/oh)*cols+y*stride:][:ow]
			if ow < 16 {
				for i := range d {
					d[i] = src[i]
				}
				continue
			}
			copy(d, src)
		}
	}
}

func fill(s []float32, v float32) {
	if v == 0 && len(s) >= 16 {
		clear(s)
		return
	}
	// a loop: a pad of a few floats costs less than a call to memclr
	for i := range s {
		s[i] = v
	}
}

// maxPoolPhased is MaxPool as elementwise maxima of the stride phases of
// the image padded with -Inf (see depthwise): kh*kw vector passes over the
// plane. The pads are widened to cover ceil_mode's last windows. work holds
// maxPoolWork floats.
func maxPoolPhased(w *window, x, out, work []float32) {
	e := maxPoolWindow(w)
	h2, w2, planeSz := phaseDims(e)
	phases := e.sh * e.sw
	dec, tmp := work[:phases*planeSz], work[phases*planeSz:phases*planeSz+e.oh*w2]
	plane := e.oh * e.ow
	negInf := float32(math.Inf(-1))
	for p := 0; p < e.n*e.ch; p++ {
		splitPhasesPad(e, x[p*e.h*e.w:(p+1)*e.h*e.w], dec, h2, w2, planeSz, negInf)
		first := true
		for ki := 0; ki < e.kh; ki++ {
			ry, oy := (ki*e.dh)%e.sh, (ki*e.dh)/e.sh
			for kj := 0; kj < e.kw; kj++ {
				rx, ox := (kj*e.dw)%e.sw, (kj*e.dw)/e.sw
				src := dec[(ry*e.sw+rx)*planeSz+oy*w2+ox:][:len(tmp)]
				if first {
					copy(tmp, src)
					first = false
				} else {
					vec.Max(tmp, tmp, src)
				}
			}
		}
		dst := out[p*plane : (p+1)*plane]
		for oy := 0; oy < e.oh; oy++ {
			copy(dst[oy*e.ow:(oy+1)*e.ow], tmp[oy*w2:oy*w2+e.ow])
		}
	}
}

// inside reports whether every window of w lies inside the image (no top
// or left pad, the last window ending before the bottom and right edges).
func (w *window) inside() bool {
	return w.pt == 0 && w.pl == 0 && w.oh > 0 && w.ow > 0 &&
		(w.oh-1)*w.sh+(w.kh-1)*w.dh < w.h && (w.ow-1)*w.sw+(w.kw-1)*w.dw < w.w
}

// maxPoolInside runs maxPoolInside, on vectors (maxPoolPairs) for the
// 2-wide, stride-2 windows over an even width.
func (c *kctx) maxPoolInside(w *window, x, out []float32, lo, hi int) {
	if w.kw == 2 && w.sw == 2 && w.dw == 1 && w.w == 2*w.ow && (w.kh == 1 || w.kh == 2 && w.dh == 1) {
		work := c.s.hostGet(w.oh*w.w + w.oh*w.ow)
		maxPoolPairs(w, x, out, work, lo, hi)
		c.s.hostPut(work)
		return
	}
	maxPoolInside(w, x, out, lo, hi)
}

// maxPoolPairs is MaxPool for kw == sw == 2 over a width of 2*ow, kh 1
// or 2: per plane, the maximum of each output row's kh input rows (a
// vector pass per row) into work, then of its even and odd elements (two
// plane-long gathers and a vector maximum). work holds oh*w + oh*ow floats.
func maxPoolPairs(w *window, x, out, work []float32, lo, hi int) {
	hw, plane := w.h*w.w, w.oh*w.ow
	rows, odd := work[:w.oh*w.w], work[w.oh*w.w:w.oh*w.w+plane]
	for p := lo; p < hi; p++ {
		img := x[p*hw : (p+1)*hw]
		dst := out[p*plane : (p+1)*plane]
		for oy := 0; oy < w.oh; oy++ {
			y0 := oy * w.sh
			r := rows[oy*w.w : (oy+1)*w.w]
			if w.kh == 2 {
				vec.Max(r, img[y0*w.w:(y0+1)*w.w], img[(y0+1)*w.w:(y0+2)*w.w])
			} else {
				copy(r, img[y0*w.w:(y0+1)*w.w])
			}
		}
		vec.Gather2(dst, rows)
		vec.Gather2(odd, rows[1:])
		vec.Max(dst, dst, odd)
	}
}

// maxPoolInside is MaxPool over planes [lo, hi) for a window that is
// inside (see window.inside). A NaN in a window gives NaN, as in the
// general kernel.
func maxPoolInside(w *window, x, out []float32, lo, hi int) {
	hw, plane := w.h*w.w, w.oh*w.ow
	for p := lo; p < hi; p++ {
		img := x[p*hw : (p+1)*hw]
		dst := out[p*plane : (p+1)*plane]
		for oy := 0; oy < w.oh; oy++ {
			row := dst[oy*w.ow : (oy+1)*w.ow]
			y0 := oy * w.sh
			if w.kw == 2 && w.dw == 1 && (w.kh == 1 || w.kh == 2 && w.dh == 1) {
				r0 := img[y0*w.w : (y0+1)*w.w]
				r1 := r0
				if w.kh == 2 {
					r1 = img[(y0+1)*w.w : (y0+2)*w.w]
				}
				for ox := range row {
					j := ox * w.sw
					row[ox] = max(r0[j], r0[j+1], r1[j], r1[j+1])
				}
				continue
			}
			for ox := range row {
				x0 := ox * w.sw
				m := img[y0*w.w+x0]
				for ki := 0; ki < w.kh; ki++ {
					r := img[(y0+ki*w.dh)*w.w+x0:]
					for kj := 0; kj < w.kw; kj++ {
						m = max(m, r[kj*w.dw])
					}
				}
				row[ox] = m
			}
		}
	}
}

// clippable reports whether maxPoolClipped suits w: a horizontal stride
// of 2 or more (stride 1 keeps the vector passes of maxPoolPhased), no
// dilation, and
// every window, clipped to the image, keeps at least one row and one
// column (a window wholly in the pads would need -Inf).
func (w *window) clippable() bool {
	if w.sw < 2 || w.dh != 1 || w.dw != 1 || w.oh <= 0 || w.ow <= 0 || w.w > 1<<16 {
		return false
	}
	for oy := 0; oy < w.oh; oy++ {
		if y0 := oy*w.sh - w.pt; max(y0, 0) >= min(y0+w.kh, w.h) {
			return false
		}
	}
	for ox := 0; ox < w.ow; ox++ {
		if x0 := ox*w.sw - w.pl; max(x0, 0) >= min(x0+w.kw, w.w) {
			return false
		}
	}
	return true
}

// maxPoolClipped is MaxPool over planes [lo, hi) for a clippable window:
// per output row, the vector maximum of its window's rows that lie in the
// image, then per output the maximum of its columns that do. The pads are
// never materialised (maxPoolPhased copies each plane into -Inf padded
// stride phases first, t_resnet's pool spent most of its 28 us there).
// A NaN in a window gives NaN, as in the general kernel.
func (c *kctx) maxPoolClipped(w *window, x, out []float32, lo, hi int) {
	r := c.s.hostGet(maxPoolClippedWork(w))
	maxPoolClipped(w, x, out, r, lo, hi)
	c.s.hostPut(r)
}

// clippedRow is the row stride of maxPoolClipped's padded plane of row
// maxima for a horizontal stride of 2: even, and wide enough for the left
// pad, the image and every window.
func clippedRow(w *window) int {
	return roundUp2(max(w.pl+w.w, 2*(w.ow-1)+w.kw))
}

func roundUp2(n int) int { return (n + 1) &^ 1 }

// maxPoolClippedWork is the scratch maxPoolClipped needs, in floats.
func maxPoolClippedWork(w *window) int {
	if w.sw != 2 {
		return w.w
	}
	w2 := clippedRow(w)
	return w.oh*w2 + w.kw + w.oh*w2
}

// maxPoolClipped is the kernel of kctx.maxPoolClipped; r holds
// maxPoolClippedWork floats. With a horizontal stride of 2 the row maxima
// go into a plane padded with -Inf left and right (an even row stride w2),
// whose taps kj are then whole-plane stride-2 gathers from offset kj and
// vector maxima, the extra w2/2-ow columns dropped at the end; otherwise
// each output takes a scalar maximum over its clipped columns.
func maxPoolClipped(w *window, x, out, r []float32, lo, hi int) {
	hw, plane := w.h*w.w, w.oh*w.ow
	negInf := float32(math.Inf(-1))
	if w.sw == 2 {
		w2 := clippedRow(w)
		h2 := w2 / 2
		v := r[:w.oh*w2+w.kw]
		acc, g := r[len(v):len(v)+w.oh*h2], r[len(v)+w.oh*h2:len(v)+2*w.oh*h2]
		fill(v[w.oh*w2:], negInf)
		for p := lo; p < hi; p++ {
			img := x[p*hw : (p+1)*hw]
			for oy := 0; oy < w.oh; oy++ {
				y0 := oy*w.sh - w.pt
				ya, yb := max(y0, 0), min(y0+w.kh, w.h)
				vr := v[oy*w2 : (oy+1)*w2]
				fill(vr[:w.pl], negInf)
				m := vr[w.pl : w.pl+w.w]
				copy(m, img[ya*w.w:(ya+1)*w.w])
				for y := ya + 1; y < yb; y++ {
					vec.Max(m, m, img[y*w.w:(y+1)*w.w])
				}
				fill(vr[w.pl+w.w:], negInf)
			}
			vec.Gather2(acc, v)
			for kj := 1; kj < w.kw; kj++ {
				vec.Gather2(g, v[kj:])
				vec.Max(acc, acc, g)
			}
			dst := out[p*plane : (p+1)*plane]
			for oy := 0; oy < w.oh; oy++ {
				copy(dst[oy*w.ow:(oy+1)*w.ow], acc[oy*h2:oy*h2+w.ow])
			}
		}
		return
	}
	r = r[:w.w]
	for p := lo; p < hi; p++ {
		img := x[p*hw : (p+1)*hw]
		dst := out[p*plane : (p+1)*plane]
		for oy := 0; oy < w.oh; oy++ {
			y0 := oy*w.sh - w.pt
			ya, yb := max(y0, 0), min(y0+w.kh, w.h)
			copy(r, img[ya*w.w:(ya+1)*w.w])
			for y := ya + 1; y < yb; y++ {
				vec.Max(r, r, img[y*w.w:(y+1)*w.w])
			}
			row := dst[oy*w.ow : (oy+1)*w.ow]
			for ox := range row {
				x0 := ox*w.sw - w.pl
				xa, xb := max(x0, 0), min(x0+w.kw, w.w)
				m := r[xa]
				for _, v := range r[xa+1 : xb] {
					m = max(m, v)
				}
				row[ox] = m
			}
		}
	}
}

// maxPoolPart pools planes [lo, hi) (over images and channels).
func (c *kctx) maxPoolPart(win *window, x, out []float32, nw, lo, hi int) {
	hw, plane := win.h*win.w, win.oh*win.ow
	sub := *win
	sub.n, sub.ch = 1, hi-lo
	work := c.s.hostGet(nw)
	maxPoolPhased(&sub, x[lo*hw:hi*hw], out[lo*plane:hi*plane], work)
	c.s.hostPut(work)
}

// maxPoolWindow is w with the bottom and right pads widened so that every
// window (ceil_mode's last ones included) lies inside the padded image.
func maxPoolWindow(w *window) *window {
	e := *w
	e.pb = max(e.pb, (e.oh-1)*e.sh+(e.kh-1)*e.dh+1-e.h-e.pt)
	e.pr = max(e.pr, (e.ow-1)*e.sw+(e.kw-1)*e.dw+1-e.w-e.pl)
	return &e
}

func maxPoolWork(w *window) int {
	e := maxPoolWindow(w)
	_, w2, planeSz := phaseDims(e)
	return e.sh*e.sw*planeSz + e.oh*w2
}

// maxPhaseStride bounds the strides the phase-split kernels take: a model
// may declare any stride, and sh*sw phase planes of a huge stride would be
// mostly padding (or overflow); the plain kernels run those.
const maxPhaseStride = 4

// phaseable reports whether the phase-split kernels suit w: small strides,
// and a padded image not much larger than the input and output planes (huge
// pads or dilations, which a model may declare, go to the plain kernels,
// whose scratch the input and output bound). float64 keeps the products of
// hostile sizes from overflowing.
func (w *window) phaseable() bool {
	if w.sh > maxPhaseStride || w.sw > maxPhaseStride {
		return false
	}
	padded := float64(w.h+w.pt+w.pb+w.sh) * float64(w.w+w.pl+w.pr+w.sw)
	return padded <= 4*(float64(w.h)*float64(w.w)+float64(w.oh)*float64(w.ow))+1024
}

// checkWork refuses a scratch buffer of a*b floats above the element limit
// (the product checked without overflow).
func (c *kctx) checkWork(what string, a, b int) error {
	hi, lo := bits.Mul64(uint64(max(a, 0)), uint64(max(b, 0)))
	if a < 0 || b < 0 || hi != 0 || lo > uint64(c.limit) {
		return fmt.Errorf("%w: %s of %d x %d floats exceeds the limit of %d elements", ErrInvalid, what, a, b, c.limit)
	}
	return nil
}

// phaseDims returns the height and width of one stride phase of the padded
// image and the floats of one phase plane (a spare row included).
func phaseDims(w *window) (h2, w2, planeSz int) {
	ph, pw := w.h+w.pt+w.pb, w.w+w.pl+w.pr
	h2, w2 = (ph+w.sh-1)/w.sh, (pw+w.sw-1)/w.sw
	return h2, w2, (h2 + 1) * w2
}

// gatherRows returns the row offsets of the unrolled input in the phase
// planes of cg channels (the rows im2colPhased would copy), or, when direct,
// in the unpadded stride-1 input itself; cached per node and window.
func (c *kctx) gatherRows(w *window, cg int, direct bool) []int {
	if c.n.wc != nil {
		if e := c.n.wc.rows.Load(); e != nil && e.w == *w && e.cg == cg && e.direct == direct {
			return e.rows
		}
	}
	if direct {
		rows := make([]int, 0, cg*w.kh*w.kw)
		for ch := 0; ch < cg; ch++ {
			for ki := 0; ki < w.kh; ki++ {
				for kj := 0; kj < w.kw; kj++ {
					rows = append(rows, ch*w.h*w.w+ki*w.dh*w.w+kj*w.dw)
				}
			}
		}
		if c.n.wc != nil {
			c.n.wc.rows.Store(&rowsEntry{w: *w, cg: cg, direct: true, rows: rows})
		}
		return rows
	}
	_, w2, planeSz := phaseDims(w)
	per := w.sh * w.sw * planeSz
	rows := make([]int, 0, cg*w.kh*w.kw)
	for ch := 0; ch < cg; ch++ {
		for ki := 0; ki < w.kh; ki++ {
			ry, oy := (ki*w.dh)%w.sh, (ki*w.dh)/w.sh
			for kj := 0; kj < w.kw; kj++ {
				rx, ox := (kj*w.dw)%w.sw, (kj*w.dw)/w.sw
				rows = append(rows, ch*per+(ry*w.sw+rx)*planeSz+oy*w2+ox)
			}
		}
	}
	if c.n.wc != nil {
		c.n.wc.rows.Store(&rowsEntry{w: *w, cg: cg, rows: rows})
	}
	return rows
}

// im2colPhased unrolls cg channels of one image into col[cg*kh*kw, oh*w2]
// from the stride phases of each padded channel (see depthwise): every row of
// col is one contiguous copy out of a phase plane, at the price of w2-ow
// extra columns per output row, which the caller drops after the product.
// dec holds sh*sw phase planes.
func im2colPhased(w *window, x []float32, cg int, col, dec []float32) {
	h2, w2, planeSz := phaseDims(w)
	n := w.oh * w2
	r := 0
	for ch := 0; ch < cg; ch++ {
		splitPhases(w, x[ch*w.h*w.w:(ch+1)*w.h*w.w], dec, h2, w2, planeSz)
		for ki := 0; ki < w.kh; ki++ {
			ry, oy := (ki*w.dh)%w.sh, (ki*w.dh)/w.sh
			for kj := 0; kj < w.kw; kj++ {
				rx, ox := (kj*w.dw)%w.sw, (kj*w.dw)/w.sw
				copy(col[r*n:(r+1)*n], dec[(ry*w.sw+rx)*planeSz+oy*w2+ox:])
				r++
			}
		}
	}
}

// im2col unrolls cg channels of one image into col[cg*kh*kw, oh*ow].
func im2col(w *window, x []float32, cg int, col []float32) {
	plane := w.oh * w.ow
	r := 0
	for ch := 0; ch < cg; ch++ {
		img := x[ch*w.h*w.w : (ch+1)*w.h*w.w]
		for ki := 0; ki < w.kh; ki++ {
			for kj := 0; kj < w.kw; kj++ {
				dst := col[r*plane : (r+1)*plane]
				r++
				for oy := 0; oy < w.oh; oy++ {
					iy := oy*w.sh - w.pt + ki*w.dh
					row := dst[oy*w.ow : (oy+1)*w.ow]
					if iy < 0 || iy >= w.h {
						clear(row)
						continue
					}
					src := img[iy*w.w : (iy+1)*w.w]
					ix := kj*w.dw - w.pl
					if w.sw == 1 {
						// row[ox] = src[ox+ix] where 0 <= ox+ix < w
						lo := min(max(0, -ix), len(row))
						hi := max(lo, min(len(row), w.w-ix))
						if len(row) < 16 {
							// short rows (the 4- and 2-wide stages of
							// embedding_model): three runtime calls per
							// row cost more than the copy
							for ox := 0; ox < lo; ox++ {
								row[ox] = 0
							}
							d, s := row[lo:hi], src[lo+ix:hi+ix]
							for i := range d {
								d[i] = s[i]
							}
							for ox := hi; ox < len(row); ox++ {
								row[ox] = 0
							}
							continue
						}
						clear(row[:lo])
						copy(row[lo:hi], src[lo+ix:hi+ix])
						clear(row[hi:])
						continue
					}
					for ox := range row {
						if ix >= 0 && ix < w.w {
							row[ox] = src[ix]
						} else {
							row[ox] = 0
						}
						ix += w.sw
					}
				}
			}
		}
	}
}

// depthwise is the direct kernel for one input and one output channel per
// group: it runs on the host, since a 1 x k x plane product per channel
// would spend its time in backend calls.
//
// Each channel is first split into stride phases of its zero-padded image:
// phase (py, px) holds the padded pixels (y*sh+py, x*sw+px). Tap (ki, kj)
// then reads phase ((ki*dh)%sh, (kj*dw)%sw) at a fixed offset, and since the
// phase planes and the work plane share one row stride (W2), the tap is a
// single vector axpy over the whole plane, columns past ow included (they
// are computed and dropped). kh*kw long AVX2 axpys per channel instead of
// kh*kw*oh short ones, and no bounds tests in the inner loop.
func depthwise(w *window, x, wt, out, work []float32) {
	h2, w2, planeSz := phaseDims(w) // one spare row: the last taps read past oh rows
	phases := w.sh * w.sw
	dec, tmp := work[:phases*planeSz], work[phases*planeSz:phases*planeSz+w.oh*w2]
	plane := w.oh * w.ow
	// The tap offsets of each run of output rows do not depend on the
	// channel: worked out once here, not per channel (their divisions by
	// the strides were a tenth of the PP-OCR classifier's time).
	var pl dwPlan
	planned := w.kh*w.kw <= maxRegTaps && pl.make(w, w2, planeSz)
	for b := 0; b < w.n; b++ {
		for ch := 0; ch < w.ch; ch++ {
			img := x[(b*w.ch+ch)*w.h*w.w:][:w.h*w.w]
			k := wt[ch*w.kh*w.kw:][:w.kh*w.kw]
			dst := out[(b*w.ch+ch)*plane:][:plane]
			if planned {
				// Only the image's rows: no output the plan keeps reads a
				// pad row (its taps skip them, and a row's reads stay
				// inside its phase rows).
				splitPhasesCore(w, img, dec, h2, w2, planeSz, 0, false)
				pl.run(dec, k, dst, tmp, w2, w.ow)
				continue
			}
			splitPhases(w, img, dec, h2, w2, planeSz)
			if w.kh*w.kw <= maxRegTaps {
				depthwiseRows(w, dec, k, tmp, w2, planeSz)
				for oy := 0; oy < w.oh; oy++ {
					copy(dst[oy*w.ow:(oy+1)*w.ow], tmp[oy*w2:oy*w2+w.ow])
				}
				continue
			}
			clear(tmp)
			for ki := 0; ki < w.kh; ki++ {
				ry, oy := (ki*w.dh)%w.sh, (ki*w.dh)/w.sh
				// Only output rows whose input row lies inside the image
				// (not in the pads) get anything from this tap row: on a
				// short image (a text line's last stages are 2 or 3 rows
				// high) most of a 5x5 kernel's rows are padding.
				r0, r1 := tapRange(ki*w.dh-w.pt, w.sh, w.oh, w.h)
				if r0 >= r1 {
					continue
				}
				for kj := 0; kj < w.kw; kj++ {
					rx, ox := (kj*w.dw)%w.sw, (kj*w.dw)/w.sw
					src := dec[(ry*w.sw+rx)*planeSz+oy*w2+ox:][:len(tmp)]
					vec.Axpy(tmp[r0*w2:r1*w2], src[r0*w2:r1*w2], k[ki*w.kw+kj])
				}
			}
			for oy := 0; oy < w.oh; oy++ {
				copy(dst[oy*w.ow:(oy+1)*w.ow], tmp[oy*w2:oy*w2+w.ow])
			}
		}
	}
}

// maxRegTaps bounds the kernels depthwiseRows takes (its tap lists live on
// the stack); larger ones take the axpy per tap.
const maxRegTaps = 49

// dwPlan is depthwiseRows' tap lists for a window, shared by its channels:
// for each run of output rows the same kernel rows reach, the offsets of
// its taps in the phase planes and their indexes in the kernel.
type dwPlan struct {
	runs      [32]dwRun
	nr        int
	offs, idx [1024]int
}

type dwRun struct{ oy0, oy1, t0, t1 int }

// make fills the plan for w; false when it does not fit the arrays (the
// caller then takes depthwiseRows).
func (p *dwPlan) make(w *window, w2, planeSz int) bool {
	nt := 0
	p.nr = 0
	for oy := 0; oy < w.oh; {
		k0, k1 := tapRange(oy*w.sh-w.pt, w.dh, w.kh, w.h)
		end := oy + 1
		for end < w.oh {
			if e0, e1 := tapRange(end*w.sh-w.pt, w.dh, w.kh, w.h); e0 != k0 || e1 != k1 {
				break
			}
			end++
		}
		if p.nr == len(p.runs) || nt+(k1-k0)*w.kw > len(p.offs) {
			return false
		}
		t0 := nt
		for ki := k0; ki < k1; ki++ {
			ry, dy := (ki*w.dh)%w.sh, (ki*w.dh)/w.sh
			for kj := 0; kj < w.kw; kj++ {
				rx, dx := (kj*w.dw)%w.sw, (kj*w.dw)/w.sw
				p.offs[nt] = (ry*w.sw+rx)*planeSz + (dy+oy)*w2 + dx
				p.idx[nt] = ki*w.kw + kj
				nt++
			}
		}
		p.runs[p.nr] = dwRun{oy, end, t0, nt}
		p.nr++
		oy = end
	}
	return true
}

// run is depthwiseRows on the plan, into the output: one channel's output
// plane dst (rows of ow) from its phase planes dec (rows of w2) and
// kernel k. A run of several narrow rows is one Taps call over its rows
// in tmp (the columns past ow, computed from whatever follows a row in
// dec, are dropped when the rows are copied out); a single row, or rows
// of 64 and more, are summed straight into dst.
func (p *dwPlan) run(dec, k, dst, tmp []float32, w2, ow int) {
	var wts [maxRegTaps]float32
	for _, r := range p.runs[:p.nr] {
		if r.t0 == r.t1 {
			clear(dst[r.oy0*ow : r.oy1*ow])
			continue
		}
		n := r.t1 - r.t0
		for i, t := range p.idx[r.t0:r.t1] {
			wts[i] = k[t]
		}
		if r.oy1-r.oy0 > 1 && ow < 64 {
			rows := tmp[:(r.oy1-r.oy0)*w2]
			vec.Taps(rows, dec, p.offs[r.t0:r.t1], wts[:n])
			for oy := r.oy0; oy < r.oy1; oy++ {
				copy(dst[oy*ow:(oy+1)*ow], rows[(oy-r.oy0)*w2:])
			}
			continue
		}
		for oy := r.oy0; oy < r.oy1; oy++ {
			vec.Taps(dst[oy*ow:(oy+1)*ow], dec[(oy-r.oy0)*w2:], p.offs[r.t0:r.t1], wts[:n])
		}
	}
}

// depthwiseRows computes one channel's work plane tmp (oh rows of w2) from
// its phase planes dec: each output element is the sum of its taps, summed
// in registers (vec.Taps) rather than one plane-long axpy per tap, which
// reads and writes the plane kh*kw times. Runs of output rows that the same
// kernel rows reach (all of them but the rows near padding) are one call;
// taps whose input row is padding are left out, as depthwise's tapRange does.
func depthwiseRows(w *window, dec, k, tmp []float32, w2, planeSz int) {
	var offs [maxRegTaps]int
	var wts [maxRegTaps]float32
	for oy := 0; oy < w.oh; {
		k0, k1 := tapRange(oy*w.sh-w.pt, w.dh, w.kh, w.h)
		end := oy + 1
		for end < w.oh {
			if e0, e1 := tapRange(end*w.sh-w.pt, w.dh, w.kh, w.h); e0 != k0 || e1 != k1 {
				break
			}
			end++
		}
		nt := 0
		for ki := k0; ki < k1; ki++ {
			ry, dy := (ki*w.dh)%w.sh, (ki*w.dh)/w.sh
			for kj := 0; kj < w.kw; kj++ {
				rx, dx := (kj*w.dw)%w.sw, (kj*w.dw)/w.sw
				offs[nt] = (ry*w.sw+rx)*planeSz + (dy+oy)*w2 + dx
				wts[nt] = k[ki*w.kw+kj]
				nt++
			}
		}
		if nt == 0 {
			clear(tmp[oy*w2 : end*w2])
		} else {
			vec.Taps(tmp[oy*w2:end*w2], dec, offs[:nt], wts[:nt])
		}
		oy = end
	}
}

// depthwiseSmall is the kernel for narrow outputs (a few columns, where
// plane-long vectors would be mostly tails, as in the 4x4 and 2x2 stages of
// a mobile backbone). It runs channel-last: the image and the taps are
// transposed to [pixel][channel] and [tap][channel], so that each output
// pixel is a sum of channel-long vector multiply-adds over the taps that land
// inside the image; the result is transposed back. work holds
// depthwiseSmallWork floats.
// kt, when not nil, is wt already transposed: tap t of channel ch at
// kt[t*ldk+ch].
func depthwiseSmall(w *window, x, wt, kt []float32, ldk int, out, work []float32) {
	plane, hw, taps, C := w.oh*w.ow, w.h*w.w, w.kh*w.kw, w.ch
	xt, ot := work[:hw*C], work[(hw+taps)*C:(hw+taps+plane)*C]
	if kt == nil {
		kt, ldk = work[hw*C:(hw+taps)*C], C
		transposeTaps(kt, wt, C, taps)
	}
	for b := 0; b < w.n; b++ {
		vec.Transpose(xt, x[b*C*hw:(b+1)*C*hw], C, hw)
		clear(ot)
		for oy := 0; oy < w.oh; oy++ {
			y0 := oy*w.sh - w.pt
			k0, k1 := tapRange(y0, w.dh, w.kh, w.h)
			for ox := 0; ox < w.ow; ox++ {
				x0 := ox*w.sw - w.pl
				j0, j1 := tapRange(x0, w.dw, w.kw, w.w)
				acc := ot[(oy*w.ow+ox)*C : (oy*w.ow+ox+1)*C]
				for ki := k0; ki < k1; ki++ {
					iy := y0 + ki*w.dh
					for kj := j0; kj < j1; kj++ {
						ix := x0 + kj*w.dw
						vec.MulAdd(acc, xt[(iy*w.w+ix)*C:], kt[(ki*w.kw+kj)*ldk:])
					}
				}
			}
		}
		vec.Transpose(out[b*C*plane:(b+1)*C*plane], ot, plane, C)
	}
}

func transposeTaps(kt, wt []float32, C, taps int) { vec.Transpose(kt, wt, C, taps) }

// smallTaps returns, when use is set, the constant kernel wt ([C][taps])
// transposed for depthwiseSmall (or ConvTranspose's product),
// made once per node (the transpose cost as much as the 2x2 and 4x4
// stages' arithmetic).
func (c *kctx) smallTaps(use bool, wt []float32, C, taps int) []float32 {
	if !use || c.n.wc == nil || len(wt) == 0 {
		return nil
	}
	if e := c.n.wc.dwT.Load(); e != nil && e.src == &wt[0] && e.ch == C && e.taps == taps {
		return e.kt
	}
	kt := make([]float32, C*taps)
	transposeTaps(kt, wt, C, taps)
	c.n.wc.dwT.Store(&dwTEntry{src: &wt[0], ch: C, taps: taps, kt: kt})
	return kt
}

// depthwise runs the depthwise kernel that suits the plane, its channels
// split over the backend's threads (each part an independent depthwise
// over fewer channels of one image, with its own scratch). wConst says wt
// is a constant of the session.
func (c *kctx) depthwise(win *window, x, wt, out []float32, wConst bool) error {
	small := win.ow < 9 || !win.phaseable()
	taps, plane := win.kh*win.kw, win.oh*win.ow
	// per image (neither counts the batch); assigned once, so that the
	// parallel closure below captures it by value (a reassigned variable
	// is captured by reference and moved to the heap on every call)
	nw := depthwiseNeed(win, small)
	if err := c.checkWork("depthwise buffer", nw, 1); err != nil {
		return err
	}
	kt := c.smallTaps(small && wConst, wt, win.ch, taps) // assigned once: captured by value below
	// a depthwise multiply-add costs several of a packed product's (no
	// register blocking; stride phases and edges): parts of a quarter of
	// partWork's multiply-adds take about as long as a product's part
	grain := max(1, partWork/max(1, 4*plane*taps))
	for b := 0; b < win.n; b++ {
		if c.serial(win.ch, grain) {
			c.depthwisePart(win, x, wt, kt, out, small, nw, b, 0, win.ch)
			continue
		}
		c.parallel(win.ch, grain, func(lo, hi int) { c.depthwisePart(win, x, wt, kt, out, small, nw, b, lo, hi) })
	}
	return nil
}

// depthwisePart runs channels [lo, hi) of image b; kt is the whole
// kernel transposed for depthwiseSmall, or nil.
func (c *kctx) depthwisePart(win *window, x, wt, kt, out []float32, small bool, nw, b, lo, hi int) {
	hw, taps, plane := win.h*win.w, win.kh*win.kw, win.oh*win.ow
	sub := *win
	sub.n, sub.ch = 1, hi-lo
	base := b*win.ch + lo
	xs, ws, os := x[base*hw:(base+sub.ch)*hw], wt[lo*taps:hi*taps], out[base*plane:(base+sub.ch)*plane]
	work := c.s.hostGet(nw)
	if small {
		var kts []float32
		if kt != nil {
			kts = kt[lo:]
		}
		depthwiseSmall(&sub, xs, ws, kts, win.ch, os, work)
	} else {
		depthwise(&sub, xs, ws, os, work)
	}
	c.s.hostPut(work)
}

// depthwiseSmallWork is the scratch depthwiseSmall needs, in floats.
// depthwiseNeed is the work buffer of one image's depthwise.
func depthwiseNeed(w *window, small bool) int {
	if small {
		return depthwiseSmallWork(w)
	}
	return depthwiseWork(w)
}

func depthwiseSmallWork(w *window) int {
	return (w.h*w.w + w.kh*w.kw + w.oh*w.ow) * w.ch
}

// tapRange returns the taps [t0, t1) of a k-tap window starting at input
// coordinate p0 (step d) that fall inside [0, n).
func tapRange(p0, d, k, n int) (int, int) {
	t0 := 0
	if p0 < 0 {
		t0 = (-p0 + d - 1) / d
	}
	t1 := k
	if last := n - 1 - p0; last < 0 {
		t1 = 0
	} else {
		t1 = min(k, last/d+1)
	}
	return t0, max(t0, t1)
}

// depthwiseWork is the scratch depthwise needs, in floats.
func depthwiseWork(w *window) int {
	_, w2, planeSz := phaseDims(w)
	return w.sh*w.sw*planeSz + w.oh*w2
}

// splitPhases writes the stride phases of the zero-padded image img into
// dec (see depthwise).
func splitPhases(w *window, img, dec []float32, h2, w2, planeSz int) {
	splitPhasesPad(w, img, dec, h2, w2, planeSz, 0)
}

// splitPhasesPad is splitPhases with pad as the value outside the image.
func splitPhasesPad(w *window, img, dec []float32, h2, w2, planeSz int, pad float32) {
	splitPhasesCore(w, img, dec, h2, w2, planeSz, pad, true)
}

// splitPhasesCore is splitPhasesPad; without padRows the rows that lie in
// the top and bottom pads and the spare row are left unwritten (for a
// reader that never reads them).
func splitPhasesCore(w *window, img, dec []float32, h2, w2, planeSz int, pad float32, padRows bool) {
	for py := 0; py < w.sh; py++ {
		for px := 0; px < w.sw; px++ {
			p := dec[(py*w.sw+px)*planeSz:][:planeSz]
			// stride 2: row[j] = src[ix+2j] for j in [j0, j1), the same
			// for every row
			var j0, j1 int
			if w.sw == 2 {
				j0, j1 = tapRange(px-w.pl, 2, w2, w.w)
				j0 = min(j0, w2)
				j1 = min(max(j1, j0), w2)
			}
			for y2 := 0; y2 <= h2; y2++ {
				row := p[y2*w2 : (y2+1)*w2]
				iy := y2*w.sh + py - w.pt
				if iy < 0 || iy >= w.h || y2 == h2 {
					if padRows {
						fill(row, pad)
					}
					continue
				}
				src := img[iy*w.w : (iy+1)*w.w]
				if w.sw == 1 {
					// row = [pl zeros][src][zeros]
					lo := min(w.pl, w2)
					fill(row[:lo], pad)
					n := copy(row[lo:], src)
					fill(row[lo+n:], pad)
					continue
				}
				ix := px - w.pl
				if w.sw == 2 {
					fill(row[:j0], pad)
					if j1 > j0 {
						vec.Gather2(row[j0:j1], src[ix+2*j0:])
					}
					fill(row[j1:], pad)
					continue
				}
				for j := range row {
					if ix >= 0 && ix < w.w {
						row[j] = src[ix]
					} else {
						row[j] = pad
					}
					ix += w.sw
				}
			}
		}
	}
}

func pool(isMax bool) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		x := in[0]
		if x.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: pooling of %v", ErrUnsupported, x.DType)
		}
		ks, ok := c.n.attrInts("kernel_shape")
		if !ok {
			return nil, fmt.Errorf("%w: kernel_shape is required", ErrInvalid)
		}
		if len(ks) > nn.MaxRank {
			return nil, fmt.Errorf("%w: kernel_shape %v", ErrInvalid, ks)
		}
		k := c.ints(len(ks))
		for i, v := range ks {
			if v <= 0 || v > math.MaxInt32 {
				return nil, fmt.Errorf("%w: kernel_shape %v", ErrInvalid, ks)
			}
			k[i] = int(v)
		}
		if c.n.attrInt("storage_order", 0) != 0 || len(c.n.outputs) > 1 && c.n.outputs[1] != "" {
			return nil, fmt.Errorf("%w: MaxPool indices output", ErrUnsupported)
		}
		shared, err := makeWindow(c, x, k, c.n.attrInt("ceil_mode", 0) != 0)
		if err != nil {
			return nil, err
		}
		win := shared // the node's cached window, read only
		if cip := c.n.attrInt("count_include_pad", 0) != 0; cip != shared.countIncludePads {
			w := *shared
			w.countIncludePads = cip
			win = &w
		}
		if err := c.charge("pooling", win.n*win.ch, win.oh*win.ow, win.kh*win.kw); err != nil {
			return nil, err
		}
		var shapeBuf [4]int
		out, err := c.alloc(nn.Float32, win.outShapeIn(&shapeBuf, win.ch))
		if err != nil {
			return nil, err
		}
		plane := win.oh * win.ow
		if isMax && win.inside() {
			// Windows that never reach the pads (the 2x2 / 1x2 stride-2
			// pools of embedding_model and the classifier): straight
			// loads, no phase planes and no bounds tests.
			n, grain := win.n*win.ch, max(1, partWork/max(1, plane*win.kh*win.kw))
			if c.serial(n, grain) {
				c.maxPoolInside(win, x.F32, out.F32, 0, n)
			} else {
				c.parallel(n, grain, func(lo, hi int) { c.maxPoolInside(win, x.F32, out.F32, lo, hi) })
			}
			return c.one(out), nil
		}
		if isMax && win.clippable() {
			// Padded windows, undilated (ResNet's 3x3 stride-2 pool with
			// pad 1): each window clipped to the image, no padded copy.
			if err := c.checkWork("pooling buffer", maxPoolClippedWork(win), 1); err != nil {
				return nil, err
			}
			n, grain := win.n*win.ch, max(1, partWork/max(1, plane*win.kh*win.kw))
			if c.serial(n, grain) {
				c.maxPoolClipped(win, x.F32, out.F32, 0, n)
			} else {
				c.parallel(n, grain, func(lo, hi int) { c.maxPoolClipped(win, x.F32, out.F32, lo, hi) })
			}
			return c.one(out), nil
		}
		if isMax && win.ow >= 8 && win.phaseable() {
			nw := maxPoolWork(win)
			if err := c.checkWork("pooling buffer", nw, 1); err != nil {
				return nil, err
			}
			n, grain := win.n*win.ch, max(1, partWork/max(1, plane*win.kh*win.kw))
			if c.serial(n, grain) {
				c.maxPoolPart(win, x.F32, out.F32, nw, 0, n)
			} else {
				c.parallel(n, grain, func(lo, hi int) { c.maxPoolPart(win, x.F32, out.F32, nw, lo, hi) })
			}
			return c.one(out), nil
		}
		for p := 0; p < win.n*win.ch; p++ {
			img := x.F32[p*win.h*win.w:][:win.h*win.w]
			dst := out.F32[p*plane:][:plane]
			for oy := 0; oy < win.oh; oy++ {
				for ox := 0; ox < win.ow; ox++ {
					acc := float32(math.Inf(-1))
					if !isMax {
						acc = 0
					}
					cnt := 0
					for ki := 0; ki < win.kh; ki++ {
						iy := oy*win.sh - win.pt + ki*win.dh
						for kj := 0; kj < win.kw; kj++ {
							ix := ox*win.sw - win.pl + kj*win.dw
							if iy < 0 || iy >= win.h || ix < 0 || ix >= win.w {
								if win.countIncludePads && iy < win.h+win.pb && ix < win.w+win.pr {
									cnt++
								}
								continue
							}
							v := img[iy*win.w+ix]
							cnt++
							if isMax {
								if v > acc || v != v {
									acc = v
								}
							} else {
								acc += v
							}
						}
					}
					if !isMax && cnt > 0 {
						acc /= float32(cnt)
					}
					dst[oy*win.ow+ox] = acc
				}
			}
		}
		return c.one(out), nil
	}
}

func globalPool(isMax bool) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		x := in[0]
		if x.DType != nn.Float32 || len(x.Shape) < 3 {
			return nil, fmt.Errorf("%w: global pooling of %v", ErrUnsupported, x)
		}
		var shapeBuf [8]int
		shape := append(shapeBuf[:0], x.Shape...)
		plane := 1
		for i := 2; i < len(shape); i++ {
			plane *= shape[i]
			shape[i] = 1
		}
		out, err := c.alloc(nn.Float32, shape)
		if err != nil {
			return nil, err
		}
		// planes split over the threads
		if n, grain := len(out.F32), max(1, elemGrain/max(1, plane)); c.serial(n, grain) {
			globalPoolPlanes(isMax, out.F32, x.F32, plane, 0, n)
		} else {
			of, xf := out.F32, x.F32
			c.parallel(n, grain, func(lo, hi int) { globalPoolPlanes(isMax, of, xf, plane, lo, hi) })
		}
		return c.one(out), nil
	}
}

// globalPoolPlanes pools planes [lo, hi) of x into out.
func globalPoolPlanes(isMax bool, out, x []float32, plane, lo, hi int) {
	for p := lo; p < hi; p++ {
		row := x[p*plane : (p+1)*plane]
		if isMax {
			m := float32(math.Inf(-1))
			for _, v := range row {
				m = max(m, v)
			}
			out[p] = m
			continue
		}
		out[p] = vec.Sum(row) / float32(plane)
	}
}

func batchNorm(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if c.n.attrInt("training_mode", 0) != 0 || len(c.n.outputs) > 1 {
		return nil, fmt.Errorf("%w: BatchNormalization in training mode", ErrUnsupported)
	}
	if x.DType != nn.Float32 || len(x.Shape) < 2 {
		return nil, fmt.Errorf("%w: input %v", ErrUnsupported, x)
	}
	ch := x.Shape[1]
	for i, t := range in[1:5] {
		if t.DType != nn.Float32 || t.Len() != ch {
			return nil, fmt.Errorf("%w: input %d is %v, want f32[%d]", ErrInvalid, i+1, t, ch)
		}
	}
	eps := float64(c.n.attrFloat("epsilon", 1e-5))
	scale, bias, mean, vr := in[1].F32, in[2].F32, in[3].F32, in[4].F32
	out, err := c.allocFull(nn.Float32, x.Shape)
	if err != nil {
		return nil, err
	}
	plane := x.Len() / max(1, x.Shape[0]*ch)
	planes := x.Shape[0] * ch
	if grain := max(1, elemGrain/max(1, plane)); c.serial(planes, grain) {
		bnPlanes(out.F32, x.F32, scale, bias, mean, vr, eps, ch, plane, 0, planes)
	} else {
		of, xf := out.F32, x.F32
		c.parallel(planes, grain, func(lo, hi int) { bnPlanes(of, xf, scale, bias, mean, vr, eps, ch, plane, lo, hi) })
	}
	return c.one(out), nil
}

// bnPlanes normalises planes [lo, hi) (image*ch + channel) of x into out.
func bnPlanes(out, x, scale, bias, mean, vr []float32, eps float64, ch, plane, lo, hi int) {
	for p := lo; p < hi; p++ {
		k := p % ch
		a := float32(float64(scale[k]) / math.Sqrt(float64(vr[k])+eps))
		s := bias[k] - mean[k]*a
		o := p * plane
		vec.Affine(out[o:o+plane], x[o:o+plane], a, s)
	}
}

func gemmOp(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a, b := in[0], in[1]
	if a.DType != nn.Float32 || b.DType != nn.Float32 || len(a.Shape) != 2 || len(b.Shape) != 2 {
		return nil, fmt.Errorf("%w: Gemm of %v and %v (want f32 matrices)", ErrUnsupported, a, b)
	}
	ta, tb := c.n.attrInt("transA", 0) != 0, c.n.attrInt("transB", 0) != 0
	alpha, beta := c.n.attrFloat("alpha", 1), c.n.attrFloat("beta", 1)
	m, k := a.Shape[0], a.Shape[1]
	if ta {
		m, k = k, m
	}
	kb, n := b.Shape[0], b.Shape[1]
	if tb {
		kb, n = n, kb
	}
	if k != kb {
		return nil, fmt.Errorf("%w: Gemm inner dimensions differ: %v x %v", ErrInvalid, a.Shape, b.Shape)
	}
	if err := c.charge("Gemm", m, k, n); err != nil {
		return nil, err
	}
	c.charged = true
	out, err := c.alloc(nn.Float32, []int{m, n})
	if err != nil {
		return nil, err
	}
	if err := c.gemm(out.F32, a.F32, b.F32, m, k, n, ta, tb, c.isConst(a), c.isConst(b)); err != nil {
		return nil, err
	}
	if alpha != 1 {
		for i := range out.F32 {
			out.F32[i] *= alpha
		}
	}
	if len(in) > 2 && in[2] != nil && beta != 0 {
		cc := in[2]
		if cc.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: C is %v", ErrInvalid, cc)
		}
		if _, err := broadcast(cc.Shape, out.Shape); err != nil || len(cc.Shape) > 2 {
			return nil, fmt.Errorf("%w: C %v does not broadcast to %v", ErrInvalid, cc.Shape, out.Shape)
		}
		ix := indexer(cc.Shape, out.Shape)
		for i := range out.F32 {
			out.F32[i] += beta * cc.F32[ix(i)]
		}
	}
	return c.one(out), nil
}

func matmul(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a, b := in[0], in[1]
	if a.DType != nn.Float32 || b.DType != nn.Float32 || len(a.Shape) == 0 || len(b.Shape) == 0 {
		return nil, fmt.Errorf("%w: MatMul of %v and %v (want f32)", ErrUnsupported, a, b)
	}
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k := as[len(as)-2], as[len(as)-1]
	kb, n := bs[len(bs)-2], bs[len(bs)-1]
	if k != kb {
		return nil, fmt.Errorf("%w: MatMul inner dimensions differ: %v x %v", ErrInvalid, a.Shape, b.Shape)
	}
	batch, err := broadcastInto(c.ints(nn.MaxRank)[:0], as[:len(as)-2], bs[:len(bs)-2]) // the error path keeps it: not the stack
	if err != nil {
		return nil, err
	}
	nbw := 1
	for _, d := range batch {
		if d != 0 && nbw > math.MaxInt/d {
			return nil, fmt.Errorf("%w: MatMul batch %v overflows", ErrInvalid, batch)
		}
		nbw *= d
	}
	if err := c.charge("MatMul", nbw*m, k, n); err != nil {
		return nil, err
	}
	c.charged = true
	var shb [nn.MaxRank + 2]int
	shape := append(append(shb[:0], batch...), m, n)
	out, err := c.alloc(nn.Float32, shape)
	if err != nil {
		return nil, err
	}
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	if len(bs) == 2 { // fold a's batch into its rows: one product
		if err := c.gemm(out.F32, a.F32, b.F32, nb*m, k, n, false, false, c.isConst(a), c.isConst(b)); err != nil {
			return nil, err
		}
	} else {
		// each operand's batch offset stepped like an odometer over the
		// broadcast batch (stride 0 where it broadcasts)
		r := len(batch)
		sa, sb, idx := c.ints(r), c.ints(r), c.ints(r)
		bstridesInto(sa, as[:len(as)-2], batch)
		bstridesInto(sb, bs[:len(bs)-2], batch)
		oa, ob := 0, 0
		for i := 0; i < nb; i++ {
			pa, pb := oa*m*k, ob*k*n
			for d := r - 1; d >= 0; d-- {
				idx[d]++
				oa, ob = oa+sa[d], ob+sb[d]
				if idx[d] < batch[d] {
					break
				}
				oa, ob = oa-sa[d]*batch[d], ob-sb[d]*batch[d]
				idx[d] = 0
			}
			if err := c.gemm(out.F32[i*m*n:], a.F32[pa:pa+m*k], b.F32[pb:pb+k*n], m, k, n, false, false, false, false); err != nil {
				return nil, err
			}
		}
	}
	// Drop the dimensions a 1-D operand added.
	final := shape
	if len(a.Shape) == 1 {
		var fb [nn.MaxRank + 1]int
		final = append(append(fb[:0], batch...), n)
	}
	if len(b.Shape) == 1 {
		final = final[:len(final)-1]
	}
	if len(final) == len(out.Shape) {
		return c.one(out), nil // the product's own shape
	}
	return c.viewOut(out, final), nil
}

func softmax(log bool) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		x := in[0]
		if x.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: softmax of %v", ErrUnsupported, x.DType)
		}
		r := len(x.Shape)
		def := int64(-1)
		if c.n.opset < 13 {
			def = 1
		}
		ax, err := normAxis(c.n.attrInt("axis", def), r)
		if err != nil {
			return nil, err
		}
		// Before opset 13 the input is flattened to 2-D at axis; from 13 the
		// reduction is along axis alone.
		outer, length, inner := 1, 1, 1
		for i, d := range x.Shape {
			switch {
			case i < ax:
				outer *= d
			case i == ax || c.n.opset < 13:
				length *= d
			default:
				inner *= d
			}
		}
		out, err := c.alloc(nn.Float32, x.Shape)
		if err != nil {
			return nil, err
		}
		if inner == 1 && length > 0 && length < 64 && !log {
			// short rows (attention over a few tokens): x-max row by row,
			// then one vector exp over the whole tensor (a call per short
			// row is mostly its 8-wide tail), then the sums
			for o := 0; o < outer; o++ {
				row, dst := x.F32[o*length:(o+1)*length], out.F32[o*length:(o+1)*length]
				mx := row[0]
				for _, v := range row[1:] {
					mx = max(mx, v)
				}
				if math.IsInf(float64(mx), 0) || mx != mx {
					for i := range dst {
						dst[i] = float32(math.NaN()) // marks the row for the exact path below
					}
					continue
				}
				for i, v := range row {
					dst[i] = v - mx
				}
			}
			gpu.ExpF32(out.F32, out.F32)
			for o := 0; o < outer; o++ {
				row, dst := x.F32[o*length:(o+1)*length], out.F32[o*length:(o+1)*length]
				var sum float64
				for _, e := range dst {
					sum += float64(e)
				}
				if sum != sum {
					softmaxStrided(dst, row, length, 1, false)
					continue
				}
				inv := float32(1 / sum)
				for i := range dst {
					dst[i] *= inv
				}
			}
			return c.one(out), nil
		}
		if inner == 1 && length > 0 {
			// contiguous rows: the max, then e^(x-max) and its sum in one
			// pass of gpu's vector exp
			for o := 0; o < outer; o++ {
				row, dst := x.F32[o*length:(o+1)*length], out.F32[o*length:(o+1)*length]
				mx := row[0]
				for _, v := range row[1:] {
					mx = max(mx, v)
				}
				if math.IsInf(float64(mx), 0) || mx != mx {
					softmaxStrided(dst, row, length, 1, log) // inf/NaN rows: the exact path
					continue
				}
				sum := gpu.ExpBiasSumF32(dst, row, -mx)
				if log {
					ls := mx + float32(math.Log(sum))
					for i, v := range row {
						dst[i] = v - ls
					}
				} else {
					vec.Affine(dst, dst, float32(1/sum), 0)
				}
			}
			return c.one(out), nil
		}
		for o := 0; o < outer; o++ {
			for in := 0; in < inner; in++ {
				base := o*length*inner + in
				softmaxStrided(out.F32[base:], x.F32[base:], length, inner, log)
			}
		}
		return c.one(out), nil
	}
}

// softmaxStrided is one softmax (or log-softmax) over length elements inner
// apart, exponentials in float64.
func softmaxStrided(out, x []float32, length, inner int, log bool) {
	mx := float32(math.Inf(-1))
	for j := 0; j < length; j++ {
		mx = max(mx, x[j*inner])
	}
	var sum float64
	for j := 0; j < length; j++ {
		e := math.Exp(float64(x[j*inner] - mx))
		sum += e
		out[j*inner] = float32(e)
	}
	for j := 0; j < length; j++ {
		i := j * inner
		if log {
			out[i] = x[i] - mx - float32(math.Log(sum))
		} else {
			out[i] = float32(float64(out[i]) / sum)
		}
	}
}

func init() {
	win := []string{"kernel_shape", "strides", "dilations", "pads", "auto_pad"}
	reg("Conv", opDef{since: 1, attrs: append(win, "group"), minIn: 2, maxIn: 3, run: conv, backend: true, foldable: true})
	// FusedConv is never in a model file: fuseEpilogues makes it.
	reg("FusedConv", opDef{since: 1, attrs: append(win, "group"), minIn: 2, maxIn: -1, run: fusedConv, backend: true, internal: true})
	reg("MaxPool", opDef{since: 8, attrs: append(win, "ceil_mode", "storage_order"), minIn: 1, maxIn: 1, run: pool(true), foldable: true})
	reg("AveragePool", opDef{since: 7, attrs: append(win, "ceil_mode", "count_include_pad"), minIn: 1, maxIn: 1, run: pool(false), foldable: true})
	reg("GlobalAveragePool", opDef{since: 1, minIn: 1, maxIn: 1, run: globalPool(false), foldable: true})
	reg("GlobalMaxPool", opDef{since: 1, minIn: 1, maxIn: 1, run: globalPool(true), foldable: true})
	reg("BatchNormalization", opDef{since: 9, attrs: []string{"epsilon", "momentum", "training_mode"}, minIn: 5, maxIn: 5, run: batchNorm, foldable: true})
	reg("Gemm", opDef{since: 7, attrs: []string{"alpha", "beta", "transA", "transB"}, minIn: 2, maxIn: 3, run: gemmOp, backend: true, foldable: true})
	reg("MatMul", opDef{since: 1, minIn: 2, maxIn: 2, run: matmul, backend: true, foldable: true})
	reg("Softmax", opDef{since: 1, attrs: []string{"axis"}, minIn: 1, maxIn: 1, run: softmax(false), foldable: true})
	reg("LogSoftmax", opDef{since: 1, attrs: []string{"axis"}, minIn: 1, maxIn: 1, run: softmax(true), foldable: true})
}
