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
	outer, L, inner := axisSlices(x.Shape, axis, sc.n)
	for o := 0; o < outer; o++ {
		for j := 0; j < L; j++ {
			i := (o*L + j) * inner
			gpu.QuantizeU8(out.U8[i:i+inner], x.F32[i:i+inner], sc.scale(j), sc.zero(j), lo, hi)
		}
	}
	return c.one(out), nil
}

// axisSlices splits a tensor of shape into outer x L runs of inner
// elements, the runs of one index along axis (L = 1 with one parameter).
func axisSlices(shape []int, axis, nparams int) (outer, L, inner int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if nparams == 1 || n == 0 {
		return 1, 1, n
	}
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	return outer, shape[axis], inner
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
	outer, L, inner := axisSlices(x.Shape, axis, sc.n)
	for o := 0; o < outer; o++ {
		for j := 0; j < L; j++ {
			i := (o*L + j) * inner
			dst := out.F32[i : i+inner]
			s, z := sc.scale(j), sc.zero(j)
			if x.DType != nn.Int32 {
				gpu.DequantizeU8(dst, x.U8[i:i+inner], x.DType == nn.Int8, s, z)
				continue
			}
			for t, v := range x.I32[i : i+inner] {
				dst[t] = float32(v-z) * s
			}
		}
	}
	return c.one(out), nil
}

func dynamicQuantizeLinear(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if x.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: DynamicQuantizeLinear of %v (want f32)", ErrUnsupported, x.DType)
	}
	lo, hi, nonFinite := gpu.MinMaxF32(x.F32)
	if nonFinite {
		for _, v := range x.F32 {
			if v != v {
				return nil, fmt.Errorf("%w: DynamicQuantizeLinear of an input with NaN", ErrInvalid)
			}
		}
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
		// MLAS's QuantizeLinear: round(x / scale) + zero point, saturated
		gpu.QuantizeU8(y.U8[:len(x.F32)], x.F32, scale, zp, 0, 255)
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
	return c.three(y, s, z), nil
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
	if e := c.qmmWeights(p); e != nil {
		// constant s8 weights with zero zero points: gpu's VNNI product
		var scratch [4 * 1024]uint8
		if err := e.w.MatMulU8S8(acc, a.U8, p.nb*p.m, scratch[:]); err != nil {
			return nil, err
		}
		if za := p.azp.zero(0); za != 0 {
			for i := 0; i < p.nb*p.m; i++ {
				o := acc[i*p.n : (i+1)*p.n]
				for j, s := range e.w.ColSum {
					o[j] -= za * s
				}
			}
		}
	} else {
		p.run(acc)
	}
	out, err := c.allocFull(yz.DType, p.shape)
	if err != nil {
		return nil, err
	}
	zy := qval(yz, 0)
	if as.n == 1 && bsc.n == 1 {
		gpu.RequantU8(out.U8[:len(acc)], acc, as.f32[0]*bsc.f32[0]/ys.f32[0], zy, lo, hi)
		return []*nn.Tensor{view(out, p.final)}, nil
	}
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

func newIConv(c *kctx, op string, x, w *nn.Tensor) (iconv, error) {
	if _, _, err := qrange(x.DType); err != nil {
		return iconv{}, fmt.Errorf("%s x: %w", op, err)
	}
	if _, _, err := qrange(w.DType); err != nil {
		return iconv{}, fmt.Errorf("%s w: %w", op, err)
	}
	if len(w.Shape) != len(x.Shape) {
		return iconv{}, fmt.Errorf("%w: %s weight %v for input %v", ErrInvalid, op, w.Shape, x.Shape)
	}
	k := w.Shape[2:]
	if ks, ok := c.n.attrInts("kernel_shape"); ok {
		for i := range ks {
			if i >= len(k) || ks[i] != int64(k[i]) {
				return iconv{}, fmt.Errorf("%w: kernel_shape %v differs from weight %v", ErrInvalid, ks, w.Shape)
			}
		}
	}
	win, err := makeWindow(c, x, k, false)
	if err != nil {
		return iconv{}, err
	}
	g := int(c.n.attrInt("group", 1))
	m := w.Shape[0]
	if g <= 0 || win.ch%g != 0 || m%g != 0 || w.Shape[1] != win.ch/g {
		return iconv{}, fmt.Errorf("%w: %s group %d with input %v and weight %v", ErrInvalid, op, g, x.Shape, w.Shape)
	}
	return iconv{win: win, x: x, w: w, g: g, m: m, wzp: params{n: 1}}, nil
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
	if e := c.qconvWeights(&p); e != nil {
		if err := p.runPacked(c, e, out.I32, nil); err != nil {
			return nil, err
		}
		return c.one(out), nil
	}
	p.run(out.I32, nil)
	return c.one(out), nil
}

// qconvWeights returns the packed weights of a ConvInteger that gpu's s8 x
// u8 product can run (u8 input, constant s8 weights with zero weight zero
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
	if e := c.n.wc.qcv.Load(); e != nil && e.src == &w.U8[0] && e.m == p.m && e.kk == kk && len(e.rows) == p.g {
		return e
	}
	e := &qconvEntry{src: &w.U8[0], m: p.m, kk: kk}
	s8 := make([]int8, len(w.U8)) // once per node
	for i, v := range w.U8 {
		s8[i] = int8(v)
	}
	for g := 0; g < p.g; g++ {
		r, err := gpu.PackS8Rows(s8[g*mg*kk:(g+1)*mg*kk], mg, kk)
		if err != nil {
			return nil
		}
		e.rows = append(e.rows, r)
	}
	c.n.wc.qcv.Store(e)
	return e
}

// colPanels packs the weights the other way too (per group, [cg*kh*kw,
// m/g] column panels for runPatchRows), once per node.
func (e *qconvEntry) colPanels(p *iconv) error {
	e.once.Do(func() {
		mg, kk := p.m/p.g, e.kk
		b := make([]int8, kk*mg)
		for g := 0; g < p.g; g++ {
			for j := 0; j < mg; j++ {
				for t := 0; t < kk; t++ {
					b[t*mg+j] = int8(p.w.U8[(g*mg+j)*kk+t])
				}
			}
			pk, err := gpu.PackU8S8Weights(b, kk, mg)
			if err != nil {
				e.err = err
				return
			}
			e.packs = append(e.packs, pk)
		}
	})
	return e.err
}

// pointwise reports whether the convolution reads its input as is: a 1x1
// kernel with unit strides and no padding, whose patch matrix [cg, plane]
// is the input's channels themselves.
func (w *window) pointwise() bool {
	return w.kh == 1 && w.kw == 1 && w.sh == 1 && w.sw == 1 && w.pt == 0 && w.pl == 0 &&
		w.oh == w.h && w.ow == w.w
}

// im2colU8 writes one group's patch matrix [cg*kh*kw, oh*ow] of the u8
// channels x (cg planes of h*w) into col, rows of output pixels, padding
// read as zp: a copy of each in-bounds run of an input row at unit stride.
func im2colU8(col, x []uint8, w *window, cg int, zp uint8) {
	plane := w.oh * w.ow
	fill := func(d []uint8) {
		if zp == 0 {
			clear(d)
			return
		}
		for i := range d {
			d[i] = zp
		}
	}
	for ci := 0; ci < cg; ci++ {
		xc := x[ci*w.h*w.w : (ci+1)*w.h*w.w]
		for ky := 0; ky < w.kh; ky++ {
			for kx := 0; kx < w.kw; kx++ {
				row := col[((ci*w.kh+ky)*w.kw+kx)*plane:][:plane]
				ix0 := kx*w.dw - w.pl
				// output columns whose input column lies inside the row
				lo, hi := 0, w.ow
				if w.sw == 1 {
					lo, hi = max(0, -ix0), min(w.ow, w.w-ix0)
				}
				if w.sw == 1 && w.sh == 1 && w.ow == w.w && lo < hi {
					shiftedPlane(row, xc, w, ky*w.dh-w.pt, ix0, lo, hi, fill)
					continue
				}
				for oy := 0; oy < w.oh; oy++ {
					dst := row[oy*w.ow : (oy+1)*w.ow]
					iy := oy*w.sh - w.pt + ky*w.dh
					if iy < 0 || iy >= w.h {
						fill(dst)
						continue
					}
					xr := xc[iy*w.w : (iy+1)*w.w]
					if w.sw != 1 {
						for ox := range dst {
							if ix := ox*w.sw + ix0; ix >= 0 && ix < w.w {
								dst[ox] = xr[ix]
							} else {
								dst[ox] = zp
							}
						}
						continue
					}
					if lo >= hi {
						fill(dst)
						continue
					}
					fill(dst[:lo])
					copy(dst[lo:hi], xr[ix0+lo:ix0+hi])
					fill(dst[hi:])
				}
			}
		}
	}
}

// shiftedPlane is im2colU8's row for one tap of a unit-stride convolution
// whose output rows are as wide as the input's: the input plane shifted by
// dy rows and dx columns, one copy, then the rows above and below the
// input and the columns [0, lo) and [hi, ow) of each row (which the copy
// filled from the neighbouring rows) set to the zero point.
func shiftedPlane(row, xc []uint8, w *window, dy, dx, lo, hi int, fill func([]uint8)) {
	ylo, yhi := max(0, -dy), min(w.oh, w.h-dy)
	if ylo >= yhi {
		fill(row)
		return
	}
	fill(row[:ylo*w.ow])
	fill(row[yhi*w.ow:])
	d0, d1 := ylo*w.ow, yhi*w.ow
	s0 := (ylo+dy)*w.w + dx
	// the copy's source may start before the plane or end after it by
	// |dx| bytes; those land in fixed columns
	if s0 < 0 {
		d0 -= s0
		s0 = 0
	}
	if s1 := s0 + (d1 - d0); s1 > len(xc) {
		d1 -= s1 - len(xc)
	}
	copy(row[d0:d1], xc[s0:])
	if lo == 0 && hi == w.ow {
		return
	}
	for oy := ylo; oy < yhi; oy++ {
		r := row[oy*w.ow : (oy+1)*w.ow]
		fill(r[:lo])
		fill(r[hi:])
	}
}

// runPatchRows is runPacked the other way round, for convolutions with
// few output pixels (fewer than a 16-column panel: a strided STFT frame, a
// deep small feature map): the patches as u8 rows [plane, cg*kh*kw]
// (padding is the input's zero point) times the weights packed as column
// panels [cg*kh*kw, m/g], less zero point x column sums, plus bias,
// written back channel-major.
func (p *iconv) runPatchRows(c *kctx, e *qconvEntry, acc []int32, bias []int32) error {
	w := p.win
	cg, mg := w.ch/p.g, p.m/p.g
	plane, kk := w.oh*w.ow, e.kk
	ct, err := c.allocFull(nn.Uint8, []int{plane * kk})
	if err != nil {
		return err
	}
	pt, err := c.allocFull(nn.Int32, []int{plane * mg})
	if err != nil {
		return err
	}
	col, prod := ct.U8, pt.I32
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
			if err := pk.MatMulU8S8(prod, col, plane, scratch[:]); err != nil {
				return err
			}
			for j := 0; j < mg; j++ {
				o := acc[(b*p.m+g*mg+j)*plane : (b*p.m+g*mg+j+1)*plane]
				corr := p.xzp * pk.ColSum[j]
				if bias != nil {
					corr -= bias[g*mg+j]
				}
				for i := range o {
					o[i] = prod[i*mg+j] - corr
				}
			}
		}
	}
	return nil
}

// runPacked is run on gpu's s8 x u8 product: per image and group, the
// patch matrix [cg*kh*kw, plane] (the input itself for a pointwise
// convolution, else im2colU8), laid out as u8 column panels, times the
// weight rows, written channel-major straight into acc, less the input
// zero point x row sums, plus bias.
func (p *iconv) runPacked(c *kctx, e *qconvEntry, acc []int32, bias []int32) error {
	w := p.win
	cg, mg := w.ch/p.g, p.m/p.g
	plane, kk := w.oh*w.ow, e.kk
	if plane == 0 || w.n == 0 {
		return nil
	}
	if plane < 16 && mg >= 16 {
		if err := e.colPanels(p); err != nil {
			return err
		}
		return p.runPatchRows(c, e, acc, bias)
	}
	pw := w.pointwise()
	var col []uint8
	if !pw {
		if err := c.checkWork("ConvInteger patches", kk, plane); err != nil {
			return err
		}
		t, err := c.allocFull(nn.Uint8, []int{kk * plane})
		if err != nil {
			return err
		}
		col = t.U8
	}
	pt, err := c.allocFull(nn.Uint8, []int{gpu.U8PanelBytes(kk, plane)})
	if err != nil {
		return err
	}
	pan := pt.U8
	for b := 0; b < w.n; b++ {
		for g := 0; g < p.g; g++ {
			xg := p.x.U8[(b*w.ch+g*cg)*w.h*w.w : (b*w.ch+(g+1)*cg)*w.h*w.w]
			src := xg
			if !pw {
				im2colU8(col, xg, w, cg, uint8(p.xzp))
				src = col
			}
			if err := gpu.PackU8Panels(pan, src, kk, plane, plane); err != nil {
				return err
			}
			r := e.rows[g]
			o := acc[(b*p.m+g*mg)*plane : (b*p.m+(g+1)*mg)*plane]
			if err := r.MatMulS8U8(o, plane, pan, plane); err != nil {
				return err
			}
			for j := 0; j < mg; j++ {
				corr := p.xzp * r.RowSum[j]
				if bias != nil {
					corr -= bias[g*mg+j]
				}
				if corr == 0 {
					continue
				}
				oj := o[j*plane : (j+1)*plane]
				for i := range oj {
					oj[i] -= corr
				}
			}
		}
	}
	return nil
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
	if e := c.qconvWeights(&p); e != nil {
		if err := p.runPacked(c, e, acc, bias); err != nil {
			return nil, err
		}
	} else {
		p.run(acc, bias)
	}
	out, err := c.allocFull(yz.DType, shape)
	if err != nil {
		return nil, err
	}
	zy := qval(yz, 0)
	for i := 0; i < len(acc); i += plane {
		oc := (i / plane) % p.m
		mult := xs.f32[0] * ws.scale(oc) / ys.f32[0]
		gpu.RequantU8(out.U8[i:i+plane], acc[i:i+plane], mult, zy, lo, hi)
	}
	return c.one(out), nil
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
