package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

// Quantized operators: QuantizeLinear, DequantizeLinear,
// DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul and
// QLinearConv, with u8 and i8 data. The arithmetic follows onnxruntime's
// CPU kernels so that outputs agree bit for bit: products accumulate exactly
// in int32, requantisation multiplies the accumulator by the f32 scale
// a_scale*b_scale/y_scale and rounds half to even (nearbyintf), and
// DynamicQuantizeLinear rounds its zero point half away from zero as
// onnxruntime does.

// qrange is the value range of a quantized dtype.
func qrange(dt nn.DType) (lo, hi int32, err error) {
	switch dt {
	case nn.Uint8:
		return 0, 255, nil
	case nn.Int8:
		return -128, 127, nil
	}
	return 0, 0, fmt.Errorf("%w: quantized data of %v (want u8 or i8)", ErrUnsupported, dt)
}

// qval reads element i of a u8 or i8 tensor.
func qval(t *nn.Tensor, i int) int32 {
	if t.DType == nn.Int8 {
		return int32(int8(t.U8[i]))
	}
	return int32(t.U8[i])
}

// params is a scale or zero-point input: one value, or one per index of the
// quantization axis.
type params struct {
	n   int // 1 or the axis length
	f32 []float32
	q   *nn.Tensor // zero point (u8/i8), or i32 for DequantizeLinear of i32
}

func (p params) scale(i int) float32 {
	if p.n == 1 {
		return p.f32[0]
	}
	return p.f32[i]
}

func (p params) zero(i int) int32 {
	if p.q == nil {
		return 0
	}
	if p.n == 1 {
		i = 0
	}
	if p.q.DType == nn.Int32 {
		return p.q.I32[i]
	}
	return qval(p.q, i)
}

// scaleParam checks a scale input: f32, one value or axisLen values, each
// positive and finite (a zero scale divides by zero).
func scaleParam(what string, t *nn.Tensor, axisLen int) (params, error) {
	if t == nil {
		return params{}, fmt.Errorf("%w: %s is required", ErrInvalid, what)
	}
	if t.DType != nn.Float32 {
		return params{}, fmt.Errorf("%w: %s is %v (want f32)", ErrInvalid, what, t.DType)
	}
	n := t.Len()
	if len(t.Shape) > 1 || (n != 1 && n != axisLen) {
		return params{}, fmt.Errorf("%w: %s of shape %v (want a scalar or [%d])", ErrInvalid, what, t.Shape, axisLen)
	}
	for _, v := range t.F32 {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return params{}, fmt.Errorf("%w: %s %v is not a positive finite scale", ErrInvalid, what, v)
		}
	}
	return params{n: n, f32: t.F32}, nil
}

// zeroParam checks a zero-point input against the scale's length; nil is 0.
func zeroParam(what string, t *nn.Tensor, n int, want nn.DType) (*nn.Tensor, error) {
	if t == nil {
		return nil, nil
	}
	if want != 0 && t.DType != want {
		return nil, fmt.Errorf("%w: %s is %v, the data is %v", ErrInvalid, what, t.DType, want)
	}
	if _, _, err := qrange(t.DType); err != nil && t.DType != nn.Int32 {
		return nil, err
	}
	if len(t.Shape) > 1 || t.Len() != n {
		return nil, fmt.Errorf("%w: %s of shape %v (want %d values, as its scale)", ErrInvalid, what, t.Shape, n)
	}
	return t, nil
}

// quantAxis resolves the axis attribute for per-axis parameters; with one
// scale the axis is not used and not checked.
func quantAxis(c *kctx, x, scale *nn.Tensor) (axis, axisLen int, err error) {
	if len(x.Shape) == 0 || (scale != nil && scale.Len() == 1) {
		return 0, 1, nil
	}
	a := int(c.n.attrInt("axis", 1))
	if a < 0 {
		a += len(x.Shape)
	}
	if a < 0 || a >= len(x.Shape) {
		return 0, 0, fmt.Errorf("%w: axis %d for input %v", ErrInvalid, c.n.attrInt("axis", 1), x.Shape)
	}
	return a, x.Shape[a], nil
}

// refuseBlocked refuses opset-21 blocked quantization, which is not
// implemented.
func refuseBlocked(c *kctx) error {
	if b := c.n.attrInt("block_size", 0); b != 0 {
		return fmt.Errorf("%w: block_size %d (blocked quantization)", ErrUnsupported, b)
	}
	return nil
}

// axisIndex returns, for element i of shape, its index along axis.
func axisIndexer(shape []int, axis int) func(i int) int {
	inner := 1
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	n := shape[axis]
	return func(i int) int { return (i / inner) % n }
}

func saturate(v float32, lo, hi int32) int32 {
	r := math.RoundToEven(float64(v))
	if r < float64(lo) {
		return lo
	}
	if r > float64(hi) {
		return hi
	}
	return int32(r)
}

func storeU(t *nn.Tensor, i int, v int32) {
	if t.DType == nn.Int8 {
		t.U8[i] = uint8(int8(v))
	} else {
		t.U8[i] = uint8(v)
	}
}

func quantizeLinear(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	if err := refuseBlocked(c); err != nil {
		return nil, err
	}
	x := in[0]
	if x.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: QuantizeLinear of %v (want f32)", ErrUnsupported, x.DType)
	}
	axis, axisLen, err := quantAxis(c, x, in[1])
	if err != nil {
		return nil, err
	}
	sc, err := scaleParam("y_scale", in[1], axisLen)
	if err != nil {
		return nil, err
	}
	var zp *nn.Tensor
	if len(in) > 2 {
		if zp, err = zeroParam("y_zero_point", in[2], sc.n, 0); err != nil {
			return nil, err
		}
	}
	dt := nn.Uint8
	if zp != nil {
		dt = zp.DType
	}
	if od := c.n.attrInt("output_dtype", 0); od != 0 && nn.DType(od) != dt {
		if zp != nil {
			return nil, fmt.Errorf("%w: output_dtype %d differs from y_zero_point's %v", ErrInvalid, od, dt)
		}
		dt = nn.DType(od)
	}
	lo, hi, err := qrange(dt)
	if err != nil {
		return nil, err
	}
	sc.q = zp
	out, err := c.alloc(dt, x.Shape)
	if err != nil {
		return nil, err
	}
	idx := func(int) int { return 0 }
	if sc.n > 1 {
		idx = axisIndexer(x.Shape, axis)
	}
	for i, v := range x.F32 {
		j := idx(i)
		q := saturate(v/sc.scale(j)+float32(sc.zero(j)), lo, hi)
		storeU(out, i, q)
	}
	return []*nn.Tensor{out}, nil
}

func dequantizeLinear(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	if err := refuseBlocked(c); err != nil {
		return nil, err
	}
	x := in[0]
	if x.DType != nn.Uint8 && x.DType != nn.Int8 && x.DType != nn.Int32 {
		return nil, fmt.Errorf("%w: DequantizeLinear of %v (want u8, i8 or i32)", ErrUnsupported, x.DType)
	}
	axis, axisLen, err := quantAxis(c, x, in[1])
	if err != nil {
		return nil, err
	}
	sc, err := scaleParam("x_scale", in[1], axisLen)
	if err != nil {
		return nil, err
	}
	if len(in) > 2 {
		if sc.q, err = zeroParam("x_zero_point", in[2], sc.n, x.DType); err != nil {
			return nil, err
		}
		if x.DType == nn.Int32 && sc.q != nil {
			for _, z := range sc.q.I32 {
				if z != 0 {
					return nil, fmt.Errorf("%w: x_zero_point %d for i32 data (must be 0)", ErrInvalid, z)
				}
			}
		}
	}
	out, err := c.alloc(nn.Float32, x.Shape)
	if err != nil {
		return nil, err
	}
	idx := func(int) int { return 0 }
	if sc.n > 1 {
		idx = axisIndexer(x.Shape, axis)
	}
	n := x.Len()
	for i := 0; i < n; i++ {
		var v int32
		if x.DType == nn.Int32 {
			v = x.I32[i]
		} else {
			v = qval(x, i)
		}
		j := idx(i)
		out.F32[i] = float32(v-sc.zero(j)) * sc.scale(j)
	}
	return []*nn.Tensor{out}, nil
}

func dynamicQuantizeLinear(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if x.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: DynamicQuantizeLinear of %v (want f32)", ErrUnsupported, x.DType)
	}
	lo, hi := float32(0), float32(0)
	nan := false
	for _, v := range x.F32 { // comparisons, not min/max (their NaN and -0 rules cost 4 ns an element)
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		nan = nan || v != v
	}
	if nan {
		return nil, fmt.Errorf("%w: DynamicQuantizeLinear of an input with NaN", ErrInvalid)
	}
	if math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) {
		return nil, fmt.Errorf("%w: DynamicQuantizeLinear of an input with Inf", ErrInvalid)
	}
	scale := (hi - lo) / 255
	var zp int32
	if scale > 0 {
		z := min(max(0-lo/scale, 0), 255)
		zp = int32(math.Round(float64(z)))
	}
	y, err := c.alloc(nn.Uint8, x.Shape)
	if err != nil {
		return nil, err
	}
	if scale > 0 {
		zf, ys := float32(zp), y.U8[:len(x.F32)]
		for i, v := range x.F32 {
			r := math.RoundToEven(float64(v/scale + zf))
			if r < 0 {
				r = 0
			} else if r > 255 {
				r = 255
			}
			ys[i] = uint8(r)
		}
	}
	s, err := c.alloc(nn.Float32, nil)
	if err != nil {
		return nil, err
	}
	s.F32[0] = scale
	z, err := c.alloc(nn.Uint8, nil)
	if err != nil {
		return nil, err
	}
	z.U8[0] = uint8(zp)
	return []*nn.Tensor{y, s, z}, nil
}

// imatmul holds the operands of a quantized matrix product: a [..., m, k]
// times b [k, n] or [..., k, n], with numpy batch broadcasting.
type imatmul struct {
	a, b         *nn.Tensor
	m, k, n, nb  int
	batch, shape []int
	final        []int
	ia, ib       func(int) int
	azp, bzp     params // zero points: per row of a / per column of b
}

func newIMatmul(c *kctx, op string, a, b *nn.Tensor) (*imatmul, error) {
	if _, _, err := qrange(a.DType); err != nil {
		return nil, fmt.Errorf("%s A: %w", op, err)
	}
	if _, _, err := qrange(b.DType); err != nil {
		return nil, fmt.Errorf("%s B: %w", op, err)
	}
	if len(a.Shape) == 0 || len(b.Shape) == 0 {
		return nil, fmt.Errorf("%w: %s of scalars", ErrInvalid, op)
	}
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	p := &imatmul{a: a, b: b, m: as[len(as)-2], k: as[len(as)-1], n: bs[len(bs)-1]}
	if bs[len(bs)-2] != p.k {
		return nil, fmt.Errorf("%w: %s inner dimensions differ: %v x %v", ErrInvalid, op, a.Shape, b.Shape)
	}
	batch, err := broadcast(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return nil, err
	}
	p.batch = batch
	p.shape = append(append([]int{}, batch...), p.m, p.n)
	p.nb = 1
	for _, d := range batch {
		p.nb *= d
	}
	p.ia, p.ib = indexer(as[:len(as)-2], batch), indexer(bs[:len(bs)-2], batch)
	p.final = p.shape
	if len(a.Shape) == 1 {
		p.final = append(append([]int{}, batch...), p.n)
	}
	if len(b.Shape) == 1 {
		p.final = p.final[:len(p.final)-1]
	}
	return p, nil
}

// zeroPoints reads a zero point of a (per row: scalar or [m]) or of b (per
// column: scalar or [n]).
func (p *imatmul) zeroPoint(what string, t *nn.Tensor, data *nn.Tensor, per int) (params, error) {
	if t == nil {
		return params{n: 1}, nil
	}
	if t.DType != data.DType {
		return params{}, fmt.Errorf("%w: %s is %v, the data is %v", ErrInvalid, what, t.DType, data.DType)
	}
	n := t.Len()
	if len(t.Shape) > 1 || (n != 1 && n != per) {
		return params{}, fmt.Errorf("%w: %s of shape %v (want a scalar or [%d])", ErrInvalid, what, t.Shape, per)
	}
	return params{n: n, q: t}, nil
}

// run computes the int32 products into acc (nb*m*n).
func (p *imatmul) run(acc []int32) {
	m, k, n := p.m, p.k, p.n
	row := make([]int32, k)
	for bi := 0; bi < p.nb; bi++ {
		pa, pb := p.ia(bi)*m*k, p.ib(bi)*k*n
		o := acc[bi*m*n : (bi+1)*m*n]
		clear(o)
		for i := 0; i < m; i++ {
			za := p.azp.zero(i)
			for t := 0; t < k; t++ {
				row[t] = qval(p.a, pa+i*k+t) - za
			}
			oi := o[i*n : (i+1)*n]
			for t := 0; t < k; t++ {
				av := row[t]
				if av == 0 {
					continue
				}
				bo := pb + t*n
				for j := range oi {
					oi[j] += av * (qval(p.b, bo+j) - p.bzp.zero(j))
				}
			}
		}
	}
}

func matMulInteger(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	p, err := newIMatmul(c, "MatMulInteger", in[0], in[1])
	if err != nil {
		return nil, err
	}
	if len(in) > 2 {
		if p.azp, err = p.zeroPoint("a_zero_point", in[2], in[0], p.m); err != nil {
			return nil, err
		}
	}
	if len(in) > 3 {
		if p.bzp, err = p.zeroPoint("b_zero_point", in[3], in[1], p.n); err != nil {
			return nil, err
		}
	}
	out, err := c.alloc(nn.Int32, p.shape)
	if err != nil {
		return nil, err
	}
	if e := c.qmmWeights(p); e != nil {
		// u8 activations by constant s8 weights with zero weight zero
		// points (what fennec model quantize and onnxruntime's dynamic
		// quantizer write): gpu's VNNI product, less a_zero * column sum
		za := p.azp.zero(0)
		var scratch [4 * 1024]uint8
		if err := e.w.MatMulU8S8(out.I32, p.a.U8, p.nb*p.m, scratch[:]); err != nil {
			return nil, err
		}
		if za != 0 {
			for i := 0; i < p.nb*p.m; i++ {
				o := out.I32[i*p.n : (i+1)*p.n]
				for j, s := range e.w.ColSum {
					o[j] -= za * s
				}
			}
		}
		return []*nn.Tensor{view(out, p.final)}, nil
	}
	p.run(out.I32)
	return []*nn.Tensor{view(out, p.final)}, nil
}

// qmmWeights returns the packed weights of a MatMulInteger that gpu's u8 x
// s8 product can run (a u8 with one zero point, b a constant s8 [k, n] whose
// zero points are all 0), packed once per node; nil otherwise.
func (c *kctx) qmmWeights(p *imatmul) *qmmEntry {
	a, b := p.a, p.b
	if a.DType != nn.Uint8 || b.DType != nn.Int8 || len(b.Shape) != 2 || p.azp.n != 1 ||
		c.n.wc == nil || !c.isConst(b) || len(b.U8) == 0 || p.k == 0 {
		return nil
	}
	if p.bzp.q != nil {
		for i := range p.bzp.q.Len() {
			if qval(p.bzp.q, i) != 0 {
				return nil
			}
		}
	}
	k, n := p.k, p.n
	if e := c.n.wc.qmm.Load(); e != nil && e.src == &b.U8[0] && e.k == k && e.n == n {
		return e
	}
	s8 := make([]int8, len(b.U8)) // once per node
	for i, v := range b.U8 {
		s8[i] = int8(v)
	}
	w, err := gpu.PackU8S8Weights(s8, k, n)
	if err != nil {
		return nil
	}
	e := &qmmEntry{src: &b.U8[0], k: k, n: n, w: w}
	c.n.wc.qmm.Store(e)
	return e
}

func qlinearMatMul(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	a, b := in[0], in[3]
	p, err := newIMatmul(c, "QLinearMatMul", a, b)
	if err != nil {
		return nil, err
	}
	as, err := scaleParam("a_scale", in[1], p.m)
	if err != nil {
		return nil, err
	}
	if p.azp, err = p.zeroPoint("a_zero_point", in[2], a, p.m); err != nil {
		return nil, err
	}
	bsc, err := scaleParam("b_scale", in[4], p.n)
	if err != nil {
		return nil, err
	}
	if p.bzp, err = p.zeroPoint("b_zero_point", in[5], b, p.n); err != nil {
		return nil, err
	}
	ys, err := scaleParam("y_scale", in[6], 1)
	if err != nil {
		return nil, err
	}
	yz := in[7]
	if yz == nil {
		return nil, fmt.Errorf("%w: QLinearMatMul needs y_zero_point", ErrInvalid)
	}
	if yz.Len() != 1 {
		return nil, fmt.Errorf("%w: y_zero_point of shape %v (want a scalar)", ErrInvalid, yz.Shape)
	}
	lo, hi, err := qrange(yz.DType)
	if err != nil {
		return nil, err
	}
	accT, err := c.alloc(nn.Int32, p.shape) // the int32 accumulators, counted as live bytes
	if err != nil {
		return nil, err
	}
	acc := accT.I32
	p.run(acc)
	out, err := c.alloc(yz.DType, p.shape)
	if err != nil {
		return nil, err
	}
	zy := qval(yz, 0)
	for bi := 0; bi < p.nb; bi++ {
		for i := 0; i < p.m; i++ {
			for j := 0; j < p.n; j++ {
				o := (bi*p.m+i)*p.n + j
				mult := as.scale(i) * bsc.scale(j) / ys.f32[0]
				storeU(out, o, requant(acc[o], mult, zy, lo, hi))
			}
		}
	}
	return []*nn.Tensor{view(out, p.final)}, nil
}

// requant is onnxruntime's MlasRequantizeOutput: the accumulator times the
// f32 multiplier, clamped to the range less the zero point, rounded half to
// even, plus the zero point.
func requant(acc int32, mult float32, zp, lo, hi int32) int32 {
	v := float32(acc) * mult
	v = max(v, float32(lo-zp))
	v = min(v, float32(hi-zp))
	return int32(math.RoundToEven(float64(v))) + zp
}

// iconv holds a quantized convolution's operands.
type iconv struct {
	win  *window
	x, w *nn.Tensor
	g, m int
	xzp  int32
	wzp  params
}

func newIConv(c *kctx, op string, x, w *nn.Tensor) (*iconv, error) {
	if _, _, err := qrange(x.DType); err != nil {
		return nil, fmt.Errorf("%s x: %w", op, err)
	}
	if _, _, err := qrange(w.DType); err != nil {
		return nil, fmt.Errorf("%s w: %w", op, err)
	}
	if len(w.Shape) != len(x.Shape) {
		return nil, fmt.Errorf("%w: %s weight %v for input %v", ErrInvalid, op, w.Shape, x.Shape)
	}
	k := w.Shape[2:]
	if ks, ok := c.n.attrInts("kernel_shape"); ok {
		for i := range ks {
			if i >= len(k) || ks[i] != int64(k[i]) {
				return nil, fmt.Errorf("%w: kernel_shape %v differs from weight %v", ErrInvalid, ks, w.Shape)
			}
		}
	}
	win, err := makeWindow(c, x, k, false)
	if err != nil {
		return nil, err
	}
	g := int(c.n.attrInt("group", 1))
	m := w.Shape[0]
	if g <= 0 || win.ch%g != 0 || m%g != 0 || w.Shape[1] != win.ch/g {
		return nil, fmt.Errorf("%w: %s group %d with input %v and weight %v", ErrInvalid, op, g, x.Shape, w.Shape)
	}
	return &iconv{win: win, x: x, w: w, g: g, m: m, wzp: params{n: 1}}, nil
}

func (p *iconv) zeroPoints(xz, wz *nn.Tensor) error {
	if xz != nil {
		if xz.DType != p.x.DType || xz.Len() != 1 {
			return fmt.Errorf("%w: x_zero_point %v (want one %v value)", ErrInvalid, xz, p.x.DType)
		}
		p.xzp = qval(xz, 0)
	}
	if wz != nil {
		n := wz.Len()
		if wz.DType != p.w.DType || len(wz.Shape) > 1 || (n != 1 && n != p.m) {
			return fmt.Errorf("%w: w_zero_point %v (want a scalar or [%d] of %v)", ErrInvalid, wz, p.m, p.w.DType)
		}
		p.wzp = params{n: n, q: wz}
	}
	return nil
}

// run computes the int32 accumulators [n, m, oh, ow]; padding reads as the
// input's zero point (it contributes nothing).
func (p *iconv) run(acc []int32, bias []int32) {
	w := p.win
	cg, mg := w.ch/p.g, p.m/p.g
	plane := w.oh * w.ow
	kk := cg * w.kh * w.kw
	wt := make([]int32, kk)
	for b := 0; b < w.n; b++ {
		for oc := 0; oc < p.m; oc++ {
			grp := oc / mg
			zw := p.wzp.zero(oc)
			for t := 0; t < kk; t++ {
				wt[t] = qval(p.w, oc*kk+t) - zw
			}
			var b0 int32
			if bias != nil {
				b0 = bias[oc]
			}
			o := acc[(b*p.m+oc)*plane : (b*p.m+oc+1)*plane]
			for oy := 0; oy < w.oh; oy++ {
				for ox := 0; ox < w.ow; ox++ {
					s := b0
					for ci := 0; ci < cg; ci++ {
						xc := (b*w.ch + grp*cg + ci) * w.h * w.w
						for ky := 0; ky < w.kh; ky++ {
							iy := oy*w.sh - w.pt + ky*w.dh
							if iy < 0 || iy >= w.h {
								continue
							}
							for kx := 0; kx < w.kw; kx++ {
								ix := ox*w.sw - w.pl + kx*w.dw
								if ix < 0 || ix >= w.w {
									continue
								}
								s += (qval(p.x, xc+iy*w.w+ix) - p.xzp) * wt[(ci*w.kh+ky)*w.kw+kx]
							}
						}
					}
					o[oy*w.ow+ox] = s
				}
			}
		}
	}
}

func convInteger(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	p, err := newIConv(c, "ConvInteger", in[0], in[1])
	if err != nil {
		return nil, err
	}
	var xz, wz *nn.Tensor
	if len(in) > 2 {
		xz = in[2]
	}
	if len(in) > 3 {
		wz = in[3]
	}
	if err := p.zeroPoints(xz, wz); err != nil {
		return nil, err
	}
	out, err := c.alloc(nn.Int32, p.win.outShape(p.m))
	if err != nil {
		return nil, err
	}
	if e := c.qconvWeights(p); e != nil {
		p.runPacked(e, out.I32)
		return []*nn.Tensor{out}, nil
	}
	p.run(out.I32, nil)
	return []*nn.Tensor{out}, nil
}

// qconvWeights returns the packed weights of a ConvInteger that gpu's u8 x
// s8 product can run (u8 input, constant s8 weights with zero weight zero
// points), packed once per node; nil otherwise.
func (c *kctx) qconvWeights(p *iconv) *qconvEntry {
	w := p.w
	if p.x.DType != nn.Uint8 || w.DType != nn.Int8 || c.n.wc == nil || !c.isConst(w) || len(w.U8) == 0 {
		return nil
	}
	if p.wzp.q != nil {
		for i := range p.wzp.q.Len() {
			if qval(p.wzp.q, i) != 0 {
				return nil
			}
		}
	}
	win := p.win
	kk, mg := win.ch/p.g*win.kh*win.kw, p.m/p.g
	if e := c.n.wc.qcv.Load(); e != nil && e.src == &w.U8[0] && e.m == p.m && e.kk == kk && len(e.packs) == p.g {
		return e
	}
	e := &qconvEntry{src: &w.U8[0], m: p.m, kk: kk}
	b := make([]int8, kk*mg) // once per node
	for g := 0; g < p.g; g++ {
		for j := 0; j < mg; j++ {
			for t := 0; t < kk; t++ {
				b[t*mg+j] = int8(w.U8[(g*mg+j)*kk+t])
			}
		}
		pk, err := gpu.PackU8S8Weights(b, kk, mg)
		if err != nil {
			return nil
		}
		e.packs = append(e.packs, pk)
	}
	c.n.wc.qcv.Store(e)
	return e
}

// runPacked is run on gpu's u8 x s8 product: per image and group, the
// patches as u8 rows [plane, cg*kh*kw] (padding is the input's zero point),
// times the packed weights, less zero point x column sums, written back
// channel-major.
func (p *iconv) runPacked(e *qconvEntry, acc []int32) {
	w := p.win
	cg, mg := w.ch/p.g, p.m/p.g
	plane, kk := w.oh*w.ow, e.kk
	col := make([]uint8, plane*kk)
	prod := make([]int32, plane*mg)
	zp := uint8(p.xzp)
	var scratch [4 * 1024]uint8
	for b := 0; b < w.n; b++ {
		for g := 0; g < p.g; g++ {
			for oy := 0; oy < w.oh; oy++ {
				for ox := 0; ox < w.ow; ox++ {
					row := col[(oy*w.ow+ox)*kk : (oy*w.ow+ox+1)*kk]
					t := 0
					xg := p.x.U8[(b*w.ch+g*cg)*w.h*w.w : (b*w.ch+(g+1)*cg)*w.h*w.w]
					for ci := 0; ci < cg; ci++ {
						xc := xg[ci*w.h*w.w : (ci+1)*w.h*w.w]
						for ky := 0; ky < w.kh; ky++ {
							iy := oy*w.sh - w.pt + ky*w.dh
							ix0 := ox*w.sw - w.pl
							switch {
							case iy < 0 || iy >= w.h:
								for kx := range w.kw {
									row[t+kx] = zp
								}
							case w.dw == 1 && ix0 >= 0 && ix0+w.kw <= w.w: // a run inside the row
								src, dst := xc[iy*w.w+ix0:iy*w.w+ix0+w.kw], row[t:t+w.kw]
								if len(src) > 16 {
									copy(dst, src)
								} else {
									for kx, v := range src { // short runs: no memmove call
										dst[kx] = v
									}
								}
							default:
								for kx := range w.kw {
									ix := ix0 + kx*w.dw
									if ix < 0 || ix >= w.w {
										row[t+kx] = zp
									} else {
										row[t+kx] = xc[iy*w.w+ix]
									}
								}
							}
							t += w.kw
						}
					}
				}
			}
			pk := e.packs[g]
			pk.MatMulU8S8(prod, col, plane, scratch[:])
			for j := 0; j < mg; j++ {
				o := acc[(b*p.m+g*mg+j)*plane : (b*p.m+g*mg+j+1)*plane]
				corr := p.xzp * pk.ColSum[j]
				for i := range o {
					o[i] = prod[i*mg+j] - corr
				}
			}
		}
	}
}

func qlinearConv(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	p, err := newIConv(c, "QLinearConv", in[0], in[3])
	if err != nil {
		return nil, err
	}
	xs, err := scaleParam("x_scale", in[1], 1)
	if err != nil {
		return nil, err
	}
	ws, err := scaleParam("w_scale", in[4], p.m)
	if err != nil {
		return nil, err
	}
	if err := p.zeroPoints(in[2], in[5]); err != nil {
		return nil, err
	}
	ys, err := scaleParam("y_scale", in[6], 1)
	if err != nil {
		return nil, err
	}
	yz := in[7]
	if yz == nil || yz.Len() != 1 {
		return nil, fmt.Errorf("%w: QLinearConv needs a scalar y_zero_point", ErrInvalid)
	}
	lo, hi, err := qrange(yz.DType)
	if err != nil {
		return nil, err
	}
	var bias []int32
	if len(in) > 8 && in[8] != nil {
		bt := in[8]
		if bt.DType != nn.Int32 || bt.Len() != p.m || len(bt.Shape) != 1 {
			return nil, fmt.Errorf("%w: QLinearConv bias %v (want i32 [%d])", ErrInvalid, bt, p.m)
		}
		bias = bt.I32
	}
	shape := p.win.outShape(p.m)
	plane := p.win.oh * p.win.ow
	accT, err := c.alloc(nn.Int32, shape) // the int32 accumulators, counted as live bytes
	if err != nil {
		return nil, err
	}
	acc := accT.I32
	p.run(acc, bias)
	out, err := c.alloc(yz.DType, shape)
	if err != nil {
		return nil, err
	}
	zy := qval(yz, 0)
	for i, a := range acc {
		oc := (i / plane) % p.m
		mult := xs.f32[0] * ws.scale(oc) / ys.f32[0]
		storeU(out, i, requant(a, mult, zy, lo, hi))
	}
	return []*nn.Tensor{out}, nil
}

func init() {
	win := []string{"auto_pad", "dilations", "kernel_shape", "pads", "strides"}
	reg("QuantizeLinear", opDef{since: 10, attrs: []string{"axis", "saturate", "block_size", "output_dtype", "precision"}, minIn: 2, maxIn: 3, run: quantizeLinear, foldable: true})
	reg("DequantizeLinear", opDef{since: 10, attrs: []string{"axis", "block_size", "output_dtype"}, minIn: 2, maxIn: 3, run: dequantizeLinear, foldable: true})
	reg("DynamicQuantizeLinear", opDef{since: 11, minIn: 1, maxIn: 1, run: dynamicQuantizeLinear, foldable: true})
	reg("MatMulInteger", opDef{since: 10, minIn: 2, maxIn: 4, run: matMulInteger, foldable: true})
	reg("QLinearMatMul", opDef{since: 10, minIn: 8, maxIn: 8, run: qlinearMatMul, foldable: true})
	reg("ConvInteger", opDef{since: 10, attrs: append(win, "group"), minIn: 2, maxIn: 4, run: convInteger, foldable: true})
	reg("QLinearConv", opDef{since: 10, attrs: append(win, "group"), minIn: 8, maxIn: 9, run: qlinearConv, foldable: true})
}
