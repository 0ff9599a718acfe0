package gpu

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/internal/par"
)

// elemParallelMin is the element count below which elementwise work stays on
// the calling goroutine; above it the range is cut into per-thread chunks.
// 64 Ki elements is about 30 microseconds of the slowest op, well above the
// cost of starting a goroutine.
const elemParallelMin = 1 << 16

// parallel runs f over [0, n) split into chunks claimed by the calling
// goroutine and a helper per further thread (internal/par) when n is at
// least minPer*2; otherwise it calls f(0, n) directly.
func (cpu *CPU) parallel(n, minPer int, f func(lo, hi int)) {
	par.For(cpu.Threads(), n, max(minPer, 1), f)
}

// Binary computes out = a op b with NumPy broadcasting.
func (cpu *CPU) Binary(op BinaryOp, out, a, b Tensor) error {
	if op < Add || op > Min {
		return fmt.Errorf("%w: binary op %d", ErrUnsupported, op)
	}
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	y, err := cpu.f32(b, "b")
	if err != nil {
		return err
	}
	want, err := BroadcastShape(x.shape, y.shape)
	if err != nil {
		return err
	}
	if err := sameShape(o, want, "out"); err != nil {
		return err
	}
	n := o.n
	switch {
	case n == 0:
		return nil
	case x.n == n && y.n == n:
		cpu.parallel(n, elemParallelMin, func(lo, hi int) { binVV(op, o.f[lo:hi], x.f[lo:hi], y.f[lo:hi]) })
		return nil
	case y.n == 1 && x.n == n:
		s := y.f[0]
		cpu.parallel(n, elemParallelMin, func(lo, hi int) { binVS(op, o.f[lo:hi], x.f[lo:hi], s) })
		return nil
	case x.n == 1 && y.n == n:
		s := x.f[0]
		cpu.parallel(n, elemParallelMin, func(lo, hi int) { binSV(op, o.f[lo:hi], s, y.f[lo:hi]) })
		return nil
	}
	dims, sa, sb := broadcastPlan(want, x.shape, y.shape)
	// The innermost (coalesced) dimension is a contiguous run of length L
	// in out; a and b either run along it (stride 1) or repeat one value
	// (stride 0). The outer dimensions are walked row by row.
	r := len(dims) - 1
	L := dims[r]
	rows := n / L
	cpu.parallel(rows, max(1, elemParallelMin/L), func(lo, hi int) {
		idx := make([]int, r)
		// position the odometer at row lo
		rem := lo
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % dims[d]
			rem /= dims[d]
		}
		for row := lo; row < hi; row++ {
			oa, ob := 0, 0
			for d := 0; d < r; d++ {
				oa += idx[d] * sa[d]
				ob += idx[d] * sb[d]
			}
			dst := o.f[row*L : row*L+L]
			switch {
			case sa[r] == 1 && sb[r] == 1:
				binVV(op, dst, x.f[oa:oa+L], y.f[ob:ob+L])
			case sa[r] == 1:
				binVS(op, dst, x.f[oa:oa+L], y.f[ob])
			case sb[r] == 1:
				binSV(op, dst, x.f[oa], y.f[ob:ob+L])
			default:
				binVS(op, dst[:1], x.f[oa:oa+1], y.f[ob])
				for i := 1; i < L; i++ {
					dst[i] = dst[0]
				}
			}
			for d := r - 1; d >= 0; d-- {
				idx[d]++
				if idx[d] < dims[d] {
					break
				}
				idx[d] = 0
			}
		}
	})
	return nil
}

// broadcastPlan aligns a and b to out's rank, computes element strides (0
// along broadcast dimensions) and merges adjacent dimensions whose stride
// pattern allows it, so that the innermost run is as long as possible.
func broadcastPlan(out, a, b []int) (dims, sa, sb []int) {
	r := len(out)
	ea := make([]int, r)
	eb := make([]int, r)
	for i := 0; i < r; i++ {
		ea[i], eb[i] = 1, 1
		if j := i - (r - len(a)); j >= 0 {
			ea[i] = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			eb[i] = b[j]
		}
	}
	stride := func(e []int) []int {
		s := make([]int, r)
		acc := 1
		for i := r - 1; i >= 0; i-- {
			if e[i] == 1 && out[i] != 1 {
				s[i] = 0
			} else {
				s[i] = acc
			}
			acc *= e[i]
		}
		return s
	}
	fa, fb := stride(ea), stride(eb)
	// drop size-1 dimensions, then merge neighbours
	for i := 0; i < r; i++ {
		if out[i] == 1 {
			continue
		}
		if k := len(dims) - 1; k >= 0 &&
			sa[k] == fa[i]*out[i] && sb[k] == fb[i]*out[i] {
			dims[k] *= out[i]
			sa[k], sb[k] = fa[i], fb[i]
			continue
		}
		dims = append(dims, out[i])
		sa = append(sa, fa[i])
		sb = append(sb, fb[i])
	}
	if len(dims) == 0 {
		dims, sa, sb = []int{1}, []int{0}, []int{0}
	}
	return dims, sa, sb
}

func binVV(op BinaryOp, o, a, b []float32) {
	a = a[:len(o)]
	b = b[:len(o)]
	switch op {
	case Add:
		for i := range o {
			o[i] = a[i] + b[i]
		}
	case Sub:
		for i := range o {
			o[i] = a[i] - b[i]
		}
	case Mul:
		for i := range o {
			o[i] = a[i] * b[i]
		}
	case Div:
		for i := range o {
			o[i] = a[i] / b[i]
		}
	case Max:
		for i := range o {
			o[i] = max32(a[i], b[i])
		}
	case Min:
		for i := range o {
			o[i] = min32(a[i], b[i])
		}
	}
}

func binVS(op BinaryOp, o, a []float32, s float32) {
	a = a[:len(o)]
	switch op {
	case Add:
		for i := range o {
			o[i] = a[i] + s
		}
	case Sub:
		for i := range o {
			o[i] = a[i] - s
		}
	case Mul:
		for i := range o {
			o[i] = a[i] * s
		}
	case Div:
		for i := range o {
			o[i] = a[i] / s
		}
	case Max:
		for i := range o {
			o[i] = max32(a[i], s)
		}
	case Min:
		for i := range o {
			o[i] = min32(a[i], s)
		}
	}
}

func binSV(op BinaryOp, o []float32, s float32, b []float32) {
	b = b[:len(o)]
	switch op {
	case Add:
		for i := range o {
			o[i] = s + b[i]
		}
	case Sub:
		for i := range o {
			o[i] = s - b[i]
		}
	case Mul:
		for i := range o {
			o[i] = s * b[i]
		}
	case Div:
		for i := range o {
			o[i] = s / b[i]
		}
	case Max:
		for i := range o {
			o[i] = max32(s, b[i])
		}
	case Min:
		for i := range o {
			o[i] = min32(s, b[i])
		}
	}
}

// max32 and min32 return a when the comparison is false, so a NaN in b is
// ignored and a NaN in a is kept; results for NaN inputs are not part of the
// contract.
func max32(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}

func min32(a, b float32) float32 {
	if b < a {
		return b
	}
	return a
}

// Unary computes out = op(a) elementwise; out may alias a.
func (cpu *CPU) Unary(op UnaryOp, out, a Tensor, alpha float32) error {
	if op < Scale || op > Copy {
		return fmt.Errorf("%w: unary op %d", ErrUnsupported, op)
	}
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	x, err := cpu.f32(a, "a")
	if err != nil {
		return err
	}
	if err := sameShape(o, x.shape, "out"); err != nil {
		return err
	}
	minPer := elemParallelMin
	if op == Exp || op == Log || op == Sigmoid || op == Tanh || op == Pow {
		minPer /= 8 // transcendental ops cost more per element
	}
	cpu.parallel(o.n, minPer, func(lo, hi int) { unaryKernel(op, o.f[lo:hi], x.f[lo:hi], alpha) })
	return nil
}

func unaryKernel(op UnaryOp, o, a []float32, alpha float32) {
	a = a[:len(o)]
	switch op {
	case Scale:
		for i := range o {
			o[i] = alpha * a[i]
		}
	case AddScalar:
		for i := range o {
			o[i] = a[i] + alpha
		}
	case Neg:
		for i := range o {
			o[i] = -a[i]
		}
	case Exp:
		expSlice(o, a)
	case Log:
		for i := range o {
			o[i] = float32(math.Log(float64(a[i])))
		}
	case Sqrt:
		for i := range o {
			o[i] = float32(math.Sqrt(float64(a[i])))
		}
	case Square:
		for i := range o {
			o[i] = a[i] * a[i]
		}
	case Abs:
		for i := range o {
			o[i] = math.Float32frombits(math.Float32bits(a[i]) &^ (1 << 31))
		}
	case ReLU:
		// branch-free: random signs would mispredict a branch half the time
		for i := range o {
			b := math.Float32bits(a[i])
			o[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
		}
	case Sigmoid:
		sigmoidSlice(o, a)
	case Tanh:
		tanhSlice(o, a)
	case Pow:
		for i := range o {
			o[i] = float32(math.Pow(float64(a[i]), float64(alpha)))
		}
	case Clamp:
		// min(max(x, -alpha), alpha): a negative alpha clamps everything to alpha.
		for i := range o {
			v := a[i]
			if v < -alpha {
				v = -alpha
			}
			if v > alpha {
				v = alpha
			}
			o[i] = v
		}
	case Copy:
		copy(o, a)
	}
}

// sigmoid32 is 1/(1+e^-x), computed without overflow for either sign and
// without a sign branch: with e = e^-|x|, sigmoid(|x|) = 1/(1+e) and
// sigmoid(-|x|) = e/(1+e) = 1 - 1/(1+e).
func sigmoid32(x float32) float32 {
	b := math.Float32bits(x)
	e := exp32(-math.Float32frombits(b &^ (1 << 31)))
	s := 1 / (1 + e)
	if int32(b) < 0 {
		return e * s
	}
	return s
}

// tanh32 is tanh x = 1 - 2/(e^{2|x|}+1) with x's sign, and for |x| < 0.625,
// where that formula cancels, the odd minimax polynomial of Cephes tanhf
// (the vector kernel in exp_amd64.s computes the same).
func tanh32(x float32) float32 {
	ax := x
	if ax < 0 {
		ax = -ax
	}
	if ax < 0.625 {
		z := x * x
		p := float32(-5.70498872745e-3)
		p = p*z + 2.06390887954e-2
		p = p*z - 5.37397155531e-2
		p = p*z + 1.33314422036e-1
		p = p*z - 3.33332819422e-1
		return p*z*x + x
	}
	var t float32
	if ax > 9.1 { // tanh rounds to 1 in float32 beyond ~9.01
		t = 1
	} else {
		t = 1 - 2/(exp32(2*ax)+1)
	}
	if x < 0 {
		return -t
	}
	return t
}

// UnaryGrad computes out = g * op'(x) for the differentiable unary ops.
func (cpu *CPU) UnaryGrad(op UnaryOp, out, x, g Tensor, alpha float32) error {
	switch op {
	case Scale, Exp, Log, Sqrt, Square, Abs, ReLU, Sigmoid, Tanh:
	default:
		return fmt.Errorf("%w: no gradient for unary op %d", ErrUnsupported, op)
	}
	o, err := cpu.f32(out, "out")
	if err != nil {
		return err
	}
	xt, err := cpu.f32(x, "x")
	if err != nil {
		return err
	}
	gt, err := cpu.f32(g, "g")
	if err != nil {
		return err
	}
	if err := sameShape(gt, xt.shape, "g"); err != nil {
		return err
	}
	if err := sameShape(o, xt.shape, "out"); err != nil {
		return err
	}
	cpu.parallel(o.n, elemParallelMin/8, func(lo, hi int) { gradKernel(op, o.f[lo:hi], xt.f[lo:hi], gt.f[lo:hi], alpha) })
	return nil
}

func gradKernel(op UnaryOp, o, x, g []float32, alpha float32) {
	x = x[:len(o)]
	g = g[:len(o)]
	switch op {
	case Scale:
		for i := range o {
			o[i] = alpha * g[i]
		}
	case Exp:
		gradChunks(o, x, g, expSlice, func(o, e, g []float32) {
			for i := range o {
				o[i] = g[i] * e[i]
			}
		})
	case Log:
		for i := range o {
			o[i] = g[i] / x[i]
		}
	case Sqrt:
		for i := range o {
			o[i] = g[i] / (2 * float32(math.Sqrt(float64(x[i]))))
		}
	case Square:
		for i := range o {
			o[i] = 2 * x[i] * g[i]
		}
	case Abs:
		for i := range o {
			switch {
			case x[i] > 0:
				o[i] = g[i]
			case x[i] < 0:
				o[i] = -g[i]
			default:
				o[i] = 0
			}
		}
	case ReLU:
		for i := range o {
			if x[i] > 0 {
				o[i] = g[i]
			} else {
				o[i] = 0
			}
		}
	case Sigmoid:
		gradChunks(o, x, g, sigmoidSlice, func(o, s, g []float32) {
			for i := range o {
				o[i] = g[i] * s[i] * (1 - s[i])
			}
		})
	case Tanh:
		gradChunks(o, x, g, tanhSlice, func(o, t, g []float32) {
			for i := range o {
				o[i] = g[i] * (1 - t[i]*t[i])
			}
		})
	}
}

// gradChunks computes o = combine(f(x), g) through a stack buffer of one
// L1-sized chunk, so that the vector kernel f runs over whole chunks and o
// may alias x or g.
func gradChunks(o, x, g []float32, f func(o, a []float32), combine func(o, fx, g []float32)) {
	var buf [chunk]float32
	for lo := 0; lo < len(o); lo += chunk {
		hi := min(lo+chunk, len(o))
		fx := buf[:hi-lo]
		f(fx, x[lo:hi])
		combine(o[lo:hi], fx, g[lo:hi])
	}
}

// Axpy computes y += alpha * x.
func (cpu *CPU) Axpy(y, x Tensor, alpha float32) error {
	yt, err := cpu.f32(y, "y")
	if err != nil {
		return err
	}
	xt, err := cpu.f32(x, "x")
	if err != nil {
		return err
	}
	if err := sameShape(xt, yt.shape, "x"); err != nil {
		return err
	}
	cpu.parallel(yt.n, elemParallelMin, func(lo, hi int) { axpy(yt.f[lo:hi], xt.f[lo:hi], alpha) })
	return nil
}
