package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// broadcast returns the NumPy broadcast of two shapes.
func broadcast(a, b []int) ([]int, error) { return broadcastInto(nil, a, b) }

// broadcastInto is broadcast writing into dst's backing array when it is
// large enough (a caller's stack buffer: no heap allocation per node).
func broadcastInto(dst, a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	var out []int
	if cap(dst) >= n {
		out = dst[:n]
	} else {
		out = make([]int, n)
	}
	for i := 1; i <= n; i++ {
		da, db := 1, 1
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db, db == 1:
			out[n-i] = da
		case da == 1:
			out[n-i] = db
		default:
			return nil, fmt.Errorf("%w: cannot broadcast %v with %v", ErrInvalid, a, b)
		}
	}
	return out, nil
}

// bstrides returns the element strides of shape aligned to out, with 0 for
// broadcast dimensions.
func bstrides(shape, out []int) []int { return bstridesInto(make([]int, len(out)), shape, out) }

// bstridesInto is bstrides into st (len(out) long, zeroed here).
func bstridesInto(st, shape, out []int) []int {
	clear(st)
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		j := len(out) - len(shape) + i
		if shape[i] != 1 {
			st[j] = s
		}
		s *= shape[i]
	}
	return st
}

// bloop calls f for every innermost row of a broadcast: output offset o,
// input offsets ia and ib, row length n and the inputs' inner strides.
// Adjacent dimensions that both inputs walk the same way (both contiguous
// across them, or both broadcast) are merged first, so that a per-channel
// operand [1,C,1,1] against [N,C,H,W] gives rows of H*W, not of W.
func bloop(out []int, sa, sb []int, f func(o, ia, ib, n, da, db int)) {
	bloopRange(out, sa, sb, 0, -1, f)
}

// bloopRange is bloop over the output elements [lo, hi) only (hi < 0: to
// the end), in flat order: its first and last rows may be partial, so that
// a split of the flat range (one part per thread) covers each element once.
func bloopRange(out []int, sa, sb []int, lo, hi int, f func(o, ia, ib, n, da, db int)) {
	var shp, xa, xb [nn.MaxRank]int
	r := 0
	for i, d := range out {
		if d == 0 {
			return
		}
		if d == 1 {
			continue
		}
		if r > 0 {
			// merge dim i into the previous kept dim when both inputs step
			// through them as one: stride(prev) == stride(i) * d
			if xa[r-1] == sa[i]*d && xb[r-1] == sb[i]*d {
				shp[r-1] *= d
				xa[r-1], xb[r-1] = sa[i], sb[i]
				continue
			}
		}
		shp[r], xa[r], xb[r] = d, sa[i], sb[i]
		r++
	}
	if r == 0 {
		if lo == 0 && hi != 0 {
			f(0, 0, 0, 1, 0, 0)
		}
		return
	}
	if hi < 0 {
		hi = 1
		for k := 0; k < r; k++ {
			hi *= shp[k]
		}
	}
	// the multi-index of element lo
	var idx [nn.MaxRank]int
	ia, ib, rem := 0, 0, lo
	for k := r - 1; k >= 0; k-- {
		idx[k] = rem % shp[k]
		rem /= shp[k]
		ia += idx[k] * xa[k]
		ib += idx[k] * xb[k]
	}
	inner := shp[r-1]
	o := lo
	for o < hi {
		n := min(inner-idx[r-1], hi-o)
		f(o, ia, ib, n, xa[r-1], xb[r-1])
		o += n
		// back to the start of the row, then on to the next one
		ia -= idx[r-1] * xa[r-1]
		ib -= idx[r-1] * xb[r-1]
		idx[r-1] = 0
		k := r - 2
		for ; k >= 0; k-- {
			idx[k]++
			ia += xa[k]
			ib += xb[k]
			if idx[k] < shp[k] {
				break
			}
			ia -= xa[k] * shp[k]
			ib -= xb[k] * shp[k]
			idx[k] = 0
		}
		if k < 0 {
			return
		}
	}
}

// elemGrain is the least elements of an elementwise operator worth a part
// of its own on another thread (tens of microseconds of a memory-bound
// loop; gpu's elementwise kernels split at the same size). A variable for
// the parity test, which splits small models.
var elemGrain = 1 << 16

type binKind int

const (
	bAdd binKind = iota
	bSub
	bMul
	bDiv
	bPow
	bMax
	bMin
	bEqual
	bLess
	bGreater
	bAnd
	bOr
	bMod
)

func isCompare(k binKind) bool { return k >= bEqual && k <= bGreater }

func binaryOp(c *kctx, k binKind, a, b *nn.Tensor) (*nn.Tensor, error) {
	if a.DType != b.DType && !(k == bPow && a.DType == nn.Float32) {
		return nil, fmt.Errorf("%w: operand dtypes differ: %v and %v", ErrInvalid, a.DType, b.DType)
	}
	var shapeBuf [8]int
	shape, err := broadcastInto(shapeBuf[:0], a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	odt := a.DType
	if isCompare(k) {
		odt = nn.Bool
	}
	out, err := c.allocFull(odt, shape) // the broadcast loop writes every element
	if err != nil {
		return nil, err
	}
	var sab, sbb [nn.MaxRank]int
	if len(shape) > nn.MaxRank {
		return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, len(shape), nn.MaxRank)
	}
	sa, sb := bstridesInto(sab[:len(shape)], a.Shape, shape), bstridesInto(sbb[:len(shape)], b.Shape, shape)
	switch {
	case a.DType == nn.Float32 && b.DType == nn.Float32:
		f, err := binF32(k)
		if err != nil {
			return nil, err
		}
		x, y := a.F32, b.F32
		if isCompare(k) {
			o := out.U8
			bloop(shape, sa, sb, func(oo, ia, ib, n, da, db int) {
				for i := 0; i < n; i++ {
					o[oo+i] = b2u(f(x[ia+i*da], y[ib+i*db]) != 0)
				}
			})
			return out, nil
		}
		o := out.F32
		if !c.serial(len(o), elemGrain) {
			// the closure escapes (to the helpers): it gets copies of the
			// shape and strides, not these stack buffers, which would then
			// move to the heap on every call
			sh, xa, xb := append([]int(nil), shape...), append([]int(nil), sa...), append([]int(nil), sb...)
			c.parallel(len(o), elemGrain, func(lo, hi int) { binRowsF32(k, f, o, x, y, sh, xa, xb, lo, hi) })
		} else {
			binRowsF32(k, f, o, x, y, shape, sa, sb, 0, -1)
		}
	case a.DType == nn.Float32: // Pow with an integer exponent
		var y func(i int) float32
		switch b.DType {
		case nn.Int64:
			y = func(i int) float32 { return float32(b.I64[i]) }
		case nn.Int32:
			y = func(i int) float32 { return float32(b.I32[i]) }
		default:
			return nil, fmt.Errorf("%w: Pow exponent of dtype %v", ErrUnsupported, b.DType)
		}
		o, x := out.F32, a.F32
		bloop(shape, sa, sb, func(oo, ia, ib, n, da, db int) {
			for i := 0; i < n; i++ {
				o[oo+i] = powf(x[ia+i*da], y(ib+i*db))
			}
		})
	case a.DType == nn.Int64 || a.DType == nn.Int32:
		get := func(t *nn.Tensor, i int) int64 {
			if t.DType == nn.Int64 {
				return t.I64[i]
			}
			return int64(t.I32[i])
		}
		var werr error
		bloop(shape, sa, sb, func(oo, ia, ib, n, da, db int) {
			for i := 0; i < n; i++ {
				x, y := get(a, ia+i*da), get(b, ib+i*db)
				var v int64
				switch k {
				case bAdd:
					v = x + y
				case bSub:
					v = x - y
				case bMul:
					v = x * y
				case bDiv, bMod:
					if y == 0 {
						werr = fmt.Errorf("%w: integer division by zero", ErrInvalid)
						return
					}
					if k == bDiv {
						v = x / y
					} else {
						v = x % y
					}
				case bMax:
					v = max(x, y)
				case bMin:
					v = min(x, y)
				case bEqual:
					v = int64(b2u(x == y))
				case bLess:
					v = int64(b2u(x < y))
				case bGreater:
					v = int64(b2u(x > y))
				default:
					werr = fmt.Errorf("%w: this operator on %v", ErrUnsupported, a.DType)
					return
				}
				switch {
				case isCompare(k):
					out.U8[oo+i] = uint8(v)
				case out.DType == nn.Int64:
					out.I64[oo+i] = v
				default:
					out.I32[oo+i] = int32(v)
				}
			}
		})
		if werr != nil {
			return nil, werr
		}
	case a.DType == nn.Bool:
		bloop(shape, sa, sb, func(oo, ia, ib, n, da, db int) {
			for i := 0; i < n; i++ {
				x, y := a.U8[ia+i*da] != 0, b.U8[ib+i*db] != 0
				var v bool
				switch k {
				case bAnd:
					v = x && y
				case bOr:
					v = x || y
				case bEqual:
					v = x == y
				}
				out.U8[oo+i] = b2u(v)
			}
		})
		if k != bAnd && k != bOr && k != bEqual {
			return nil, fmt.Errorf("%w: this operator on bool", ErrUnsupported)
		}
	default:
		return nil, fmt.Errorf("%w: dtype %v", ErrUnsupported, a.DType)
	}
	return out, nil
}

// binRowsF32 computes the output elements [lo, hi) (hi < 0: to the end) of
// an f32 arithmetic operator.
func binRowsF32(k binKind, f func(x, y float32) float32, o, x, y []float32, shape, sa, sb []int, lo, hi int) {
	bloopRange(shape, sa, sb, lo, hi, func(oo, ia, ib, n, da, db int) {
		if !rowF32(k, o[oo:oo+n], x[ia:], y[ib:], da, db) {
			for i := 0; i < n; i++ {
				o[oo+i] = f(x[ia+i*da], y[ib+i*db])
			}
		}
	})
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func powf(x, y float32) float32 {
	switch y {
	case 2:
		return x * x
	case 1:
		return x
	case 0.5:
		return float32(math.Sqrt(float64(x)))
	}
	return float32(math.Pow(float64(x), float64(y)))
}

func binF32(k binKind) (func(x, y float32) float32, error) {
	switch k {
	case bAdd:
		return func(x, y float32) float32 { return x + y }, nil
	case bSub:
		return func(x, y float32) float32 { return x - y }, nil
	case bMul:
		return func(x, y float32) float32 { return x * y }, nil
	case bDiv:
		return func(x, y float32) float32 { return x / y }, nil
	case bPow:
		return powf, nil
	case bMax:
		return func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return max(x, y)
		}, nil
	case bMin:
		return func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return min(x, y)
		}, nil
	case bEqual:
		return func(x, y float32) float32 { return float32(b2u(x == y)) }, nil
	case bLess:
		return func(x, y float32) float32 { return float32(b2u(x < y)) }, nil
	case bGreater:
		return func(x, y float32) float32 { return float32(b2u(x > y)) }, nil
	case bMod:
		return func(x, y float32) float32 { return float32(math.Mod(float64(x), float64(y))) }, nil
	}
	return nil, fmt.Errorf("%w: this operator on f32", ErrUnsupported)
}

func binOp(k binKind) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		if x, y := in[0], in[1]; k == bPow && x.DType == nn.Float32 && y.DType == nn.Float32 &&
			len(y.F32) == 1 && y.F32[0] == 2 && len(y.Shape) <= len(x.Shape) {
			// Pow(x, 2), the melspectrogram's power spectrum: x*x, which
			// is what float32(math.Pow(x, 2)) rounds to as well
			out, err := c.allocFull(nn.Float32, x.Shape)
			if err != nil {
				return nil, err
			}
			vec.Mul(out.F32, x.F32, x.F32)
			return c.one(out), nil
		}
		out, err := binaryOp(c, k, in[0], in[1])
		if err != nil {
			return nil, err
		}
		return c.one(out), nil
	}
}

// variadic folds Max/Min/Sum over any number of inputs.
func variadic(k binKind) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		acc := in[0]
		for _, t := range in[1:] {
			if t == nil {
				continue
			}
			var err error
			if acc, err = binaryOp(c, k, acc, t); err != nil {
				return nil, err
			}
		}
		if acc == in[0] { // one input: copy, never alias
			var err error
			if acc, err = binaryOp(c, bMax, in[0], in[0]); err != nil {
				return nil, err
			}
		}
		return c.one(acc), nil
	}
}

// unaryF32 applies f elementwise to an f32 tensor.
func unaryF32(c *kctx, a *nn.Tensor, f func(float32) float32) (*nn.Tensor, error) {
	if a.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: input dtype %v (want f32)", ErrUnsupported, a.DType)
	}
	out, err := c.allocFull(nn.Float32, a.Shape)
	if err != nil {
		return nil, err
	}
	for i, v := range a.F32 {
		out.F32[i] = f(v)
	}
	return out, nil
}

// vecUnary runs a slice kernel (gpu's vectorised activations) over an f32
// tensor.
func vecUnary(f func(dst, src []float32)) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		a := in[0]
		if a.DType != nn.Float32 {
			return nil, fmt.Errorf("%w: input dtype %v (want f32)", ErrUnsupported, a.DType)
		}
		out, err := c.allocFull(nn.Float32, a.Shape)
		if err != nil {
			return nil, err
		}
		if o, x := out.F32, a.F32; !c.serial(len(o), elemGrain) {
			c.parallel(len(o), elemGrain, func(lo, hi int) { f(o[lo:hi], x[lo:hi]) })
		} else {
			f(o, x)
		}
		return c.one(out), nil
	}
}

func unaryOp(mk func(c *kctx) func(float32) float32) func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
		out, err := unaryF32(c, in[0], mk(c))
		if err != nil {
			return nil, err
		}
		return c.one(out), nil
	}
}

func fn(f func(float32) float32) func(c *kctx) func(float32) float32 {
	return func(*kctx) func(float32) float32 { return f }
}

func f64(f func(float64) float64) func(c *kctx) func(float32) float32 {
	return fn(func(x float32) float32 { return float32(f(float64(x))) })
}

// scalarF32 reads an optional scalar input (Clip's min and max).
func scalarF32(t *nn.Tensor, def float32) (float32, error) {
	if t == nil {
		return def, nil
	}
	if t.DType != nn.Float32 || len(t.F32) != 1 {
		return 0, fmt.Errorf("%w: want an f32 scalar, got %v", ErrInvalid, t)
	}
	return t.F32[0], nil
}

func clip(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	if c.n.opset < 11 {
		lo, hi = c.n.attrFloat("min", lo), c.n.attrFloat("max", hi)
	} else {
		var err error
		if len(in) > 1 {
			if lo, err = scalarF32(in[1], lo); err != nil {
				return nil, fmt.Errorf("min: %w", err)
			}
		}
		if len(in) > 2 {
			if hi, err = scalarF32(in[2], hi); err != nil {
				return nil, fmt.Errorf("max: %w", err)
			}
		}
	}
	out, err := unaryF32(c, in[0], func(x float32) float32 { return min(max(x, lo), hi) })
	if err != nil {
		return nil, err
	}
	return c.one(out), nil
}

func identity(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	return c.one(in[0]), nil // values are immutable: sharing is safe
}

func not(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	if in[0].DType != nn.Bool {
		return nil, fmt.Errorf("%w: Not of %v", ErrInvalid, in[0].DType)
	}
	out, err := c.alloc(nn.Bool, in[0].Shape)
	if err != nil {
		return nil, err
	}
	for i, v := range in[0].U8 {
		out.U8[i] = b2u(v == 0)
	}
	return c.one(out), nil
}

func where(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	cond, x, y := in[0], in[1], in[2]
	if cond.DType != nn.Bool || x.DType != y.DType {
		return nil, fmt.Errorf("%w: Where(%v, %v, %v)", ErrInvalid, cond.DType, x.DType, y.DType)
	}
	s1, err := broadcast(cond.Shape, x.Shape)
	if err != nil {
		return nil, err
	}
	shape, err := broadcast(s1, y.Shape)
	if err != nil {
		return nil, err
	}
	out, err := c.alloc(x.DType, shape)
	if err != nil {
		return nil, err
	}
	n := out.Len()
	if n == 0 {
		return c.one(out), nil
	}
	// one row of the last axis at a time: the three operands' offsets are
	// stepped like an odometer, the row walked at each operand's inner
	// stride (0 where it broadcasts), not an indexer call per element
	r := len(shape)
	var sc, sx, sy, idx [nn.MaxRank]int
	bstridesInto(sc[:r], cond.Shape, shape)
	bstridesInto(sx[:r], x.Shape, shape)
	bstridesInto(sy[:r], y.Shape, shape)
	inner, dc, dx, dy := 1, 0, 0, 0
	if r > 0 {
		inner, dc, dx, dy = shape[r-1], sc[r-1], sx[r-1], sy[r-1]
	}
	oc, ox, oy := 0, 0, 0
	for o := 0; o < n; o += inner {
		if out.DType == nn.Float32 {
			dst, xs, ys, cs := out.F32[o:o+inner], x.F32, y.F32, cond.U8
			for i := range dst {
				if cs[oc+i*dc] != 0 {
					dst[i] = xs[ox+i*dx]
				} else {
					dst[i] = ys[oy+i*dy]
				}
			}
		} else {
			for i := 0; i < inner; i++ {
				if cond.U8[oc+i*dc] != 0 {
					copyElem(out, o+i, x, ox+i*dx)
				} else {
					copyElem(out, o+i, y, oy+i*dy)
				}
			}
		}
		for k := r - 2; k >= 0; k-- {
			idx[k]++
			oc, ox, oy = oc+sc[k], ox+sx[k], oy+sy[k]
			if idx[k] < shape[k] {
				break
			}
			oc, ox, oy = oc-sc[k]*shape[k], ox-sx[k]*shape[k], oy-sy[k]*shape[k]
			idx[k] = 0
		}
	}
	return c.one(out), nil
}

// indexer maps an output linear index to the broadcast input's index.
func indexer(in, out []int) func(int) int {
	st := bstrides(in, out)
	return func(i int) int {
		j := 0
		for k := len(out) - 1; k >= 0; k-- {
			j += (i % out[k]) * st[k]
			i /= out[k]
		}
		return j
	}
}

func copyElem(dst *nn.Tensor, i int, src *nn.Tensor, j int) {
	switch dst.DType {
	case nn.Float32:
		dst.F32[i] = src.F32[j]
	case nn.Int64:
		dst.I64[i] = src.I64[j]
	case nn.Int32:
		dst.I32[i] = src.I32[j]
	default:
		dst.U8[i] = src.U8[j]
	}
}

func init() {
	bin := func(op string, k binKind) {
		reg(op, opDef{since: 7, minIn: 2, maxIn: 2, run: binOp(k), foldable: true})
	}
	bin("Add", bAdd)
	bin("Sub", bSub)
	bin("Mul", bMul)
	bin("Div", bDiv)
	bin("Pow", bPow)
	bin("Equal", bEqual)
	bin("Less", bLess)
	bin("Greater", bGreater)
	bin("And", bAnd)
	bin("Or", bOr)
	reg("Max", opDef{since: 8, minIn: 1, maxIn: -1, run: variadic(bMax), foldable: true})
	reg("Min", opDef{since: 8, minIn: 1, maxIn: -1, run: variadic(bMin), foldable: true})
	reg("Sum", opDef{since: 8, minIn: 1, maxIn: -1, run: variadic(bAdd), foldable: true})
	un := func(op string, mk func(c *kctx) func(float32) float32, attrs ...string) {
		reg(op, opDef{since: 6, attrs: attrs, minIn: 1, maxIn: 1, run: unaryOp(mk), foldable: true})
	}
	// Relu on the clamp kernel (a NaN stays NaN, as max(x, 0) keeps it).
	reg("Relu", opDef{since: 6, minIn: 1, maxIn: 1, run: vecUnary(func(dst, src []float32) { vec.Clamp(dst, src, 0, float32(math.Inf(1))) }), foldable: true})
	reg("Sigmoid", opDef{since: 6, minIn: 1, maxIn: 1, run: vecUnary(gpu.SigmoidF32), foldable: true})
	reg("Tanh", opDef{since: 6, minIn: 1, maxIn: 1, run: vecUnary(gpu.TanhF32), foldable: true})
	un("Exp", f64(math.Exp))
	un("Log", f64(math.Log))
	un("Sqrt", f64(math.Sqrt))
	un("Erf", f64(math.Erf))
	un("Floor", f64(math.Floor))
	un("Ceil", f64(math.Ceil))
	un("Sin", f64(math.Sin))
	un("Cos", f64(math.Cos))
	un("Neg", fn(func(x float32) float32 { return -x }))
	un("Abs", fn(func(x float32) float32 { return float32(math.Abs(float64(x))) }))
	un("Reciprocal", fn(func(x float32) float32 { return 1 / x }))
	un("Softplus", f64(func(x float64) float64 { return math.Log1p(math.Exp(x)) }))
	un("HardSigmoid", func(c *kctx) func(float32) float32 {
		a, b := c.n.attrFloat("alpha", 0.2), c.n.attrFloat("beta", 0.5)
		return func(x float32) float32 { return max(0, min(1, a*x+b)) }
	}, "alpha", "beta")
	un("HardSwish", fn(func(x float32) float32 { return x * max(0, min(1, x/6+0.5)) }))
	reg("LeakyRelu", opDef{since: 6, attrs: []string{"alpha"}, minIn: 1, maxIn: 1, foldable: true,
		run: func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
			a := in[0]
			if a.DType != nn.Float32 {
				return nil, fmt.Errorf("%w: input dtype %v (want f32)", ErrUnsupported, a.DType)
			}
			out, err := c.allocFull(nn.Float32, a.Shape)
			if err != nil {
				return nil, err
			}
			vec.LeakyRelu(out.F32, a.F32, c.n.attrFloat("alpha", 0.01))
			return c.one(out), nil
		}})
	un("Elu", func(c *kctx) func(float32) float32 {
		a := c.n.attrFloat("alpha", 1)
		return func(x float32) float32 {
			if x < 0 {
				return a * float32(math.Expm1(float64(x)))
			}
			return x
		}
	}, "alpha")
	reg("Clip", opDef{since: 6, attrs: []string{"min", "max"}, minIn: 1, maxIn: 3, run: clip, foldable: true})
	reg("Identity", opDef{since: 1, minIn: 1, maxIn: 1, run: identity, foldable: true})
	reg("Not", opDef{since: 1, minIn: 1, maxIn: 1, run: not, foldable: true})
	reg("Where", opDef{since: 9, minIn: 3, maxIn: 3, run: where, foldable: true})
}

// rowF32 computes one broadcast row of the common arithmetic operators with
// the loop inside the switch (contiguous or scalar operands); it reports
// false when the general path must do it.
func rowF32(k binKind, o, x, y []float32, da, db int) bool {
	n := len(o)
	switch {
	case da == 1 && db == 1:
		x, y = x[:n], y[:n]
		switch k {
		case bAdd:
			vec.Add(o, x, y)
		case bSub:
			for i := range o {
				o[i] = x[i] - y[i]
			}
		case bMul:
			vec.Mul(o, x, y)
		case bDiv:
			for i := range o {
				o[i] = x[i] / y[i]
			}
		case bMax:
			for i := range o {
				a, b := x[i], y[i]
				if a != a || b != b {
					o[i] = a + b // NaN propagates
				} else {
					o[i] = max(a, b)
				}
			}
		case bMin:
			for i := range o {
				a, b := x[i], y[i]
				if a != a || b != b {
					o[i] = a + b
				} else {
					o[i] = min(a, b)
				}
			}
		default:
			return false
		}
	case da == 1 && db == 0:
		x, s := x[:n], y[0]
		switch {
		case k == bMax && s == s: // Max with a constant: the clamp kernel (NaN in x stays NaN)
			vec.Clamp(o, x, s, float32(math.Inf(1)))
			return true
		case k == bMin && s == s:
			vec.Clamp(o, x, float32(math.Inf(-1)), s)
			return true
		}
		switch k {
		case bAdd:
			vec.Affine(o, x, 1, s)
		case bSub:
			vec.Affine(o, x, 1, -s)
		case bMul:
			vec.Affine(o, x, s, 0)
		case bDiv:
			for i := range o {
				o[i] = x[i] / s
			}
		default:
			return false
		}
	case da == 0 && db == 1:
		s, y := x[0], y[:n]
		switch k {
		case bAdd:
			vec.Affine(o, y, 1, s)
		case bSub:
			vec.Affine(o, y, -1, s)
		case bMul:
			vec.Affine(o, y, s, 0)
		case bDiv:
			for i := range o {
				o[i] = s / y[i]
			}
		default:
			return false
		}
	default:
		return false
	}
	return true
}
