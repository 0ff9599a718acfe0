package onnx

import (
	"fmt"
	"math"
	"slices"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// Epilogue fusion: the elementwise nodes that follow a Conv (bias,
// activation, the exporters' HardSwish as Add -> Clip -> Mul -> Div, the
// affine Mul -> Add of PP-OCR's learnable blocks, a residual Add) are folded
// into the Conv as a small register program that runs over each output
// channel's plane, a chunk at a time, while the chunk is in L1: one pass over
// the output instead of one per node, and no intermediate tensors.
//
// Register 0 is the Conv output (bias added); step i writes register i+1;
// the last step's register is the fused node's output. An operand is a
// register, a constant (a scalar or one value per output channel), or an
// extra input of the fused node whose shape equals the Conv output's
// (shape inference proves it at plan time; the kernel checks it again).

// maxEpilogue bounds the steps of one fused chain.
const maxEpilogue = 16

// epiChunk is the number of elements of a plane an epilogue runs at once.
const epiChunk = 256

type epiKind uint8

const (
	eAdd epiKind = iota
	eSub
	eMul
	eDiv
	eMax
	eMin
	eRelu
	eClip
	eHardSigmoid
	eHardSwish
	eLeakyRelu
	eSigmoid
	eTanh
	eAffine   // x*a + b, made by simplifyEpilogue from Mul and Add by scalars
	eLeakyMax // max(LeakyRelu(x, a), b), from LeakyRelu then Max with a scalar
)

func (k epiKind) binary() bool { return k <= eMin }

// bin is the binary operator's kind in ops_elem.go.
func (k epiKind) bin() binKind {
	switch k {
	case eAdd:
		return bAdd
	case eSub:
		return bSub
	case eMul:
		return bMul
	case eDiv:
		return bDiv
	case eMax:
		return bMax
	}
	return bMin
}

type argKind uint8

const (
	argReg   argKind = iota // register reg
	argConst                // vals: 1 value, or one per output channel
	argExt                  // extra input ext (same shape as the output)
)

type epiArg struct {
	kind argKind
	reg  int
	ext  int
	vals []float32
}

type epiStep struct {
	op   epiKind
	in   [2]epiArg // in[1] only for binary ops
	a, b float32   // Clip lo/hi, HardSigmoid alpha/beta, LeakyRelu alpha
}

// epilogue is the program attached to a fused node.
type epilogue struct {
	steps []epiStep
	ops   []string // the fused nodes' op types, for logs and tests
	// biasFirst: step 0 is a LeakyMax of the conv output that nothing else
	// reads, so the bias is added inside it (one pass, not two)
	biasFirst bool
}

// epiUnary maps the fusible unary operators.
var epiUnary = map[string]epiKind{"Relu": eRelu, "Clip": eClip, "HardSigmoid": eHardSigmoid, "HardSwish": eHardSwish, "LeakyRelu": eLeakyRelu, "Sigmoid": eSigmoid, "Tanh": eTanh}

// epiBinary maps the fusible binary operators (Max and Min with exactly two
// inputs).
var epiBinary = map[string]epiKind{"Add": eAdd, "Sub": eSub, "Mul": eMul, "Div": eDiv, "Max": eMax, "Min": eMin}

// fuseEpilogues rewrites Conv -> elementwise chain into one FusedConv node
// (see the comment at the top of this file). shapes, when not nil, holds the
// inferred value shapes of this graph (extra inputs need them); keep names
// values that must stay visible. The model's own nodes are not changed.
func fuseEpilogues(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool, shapes map[string]ValueInfo, graphOutputs map[string]bool) []*node {
	producer := map[string]int{}
	readers := map[string][]int{}
	for i, n := range nodes {
		for _, o := range n.outputs {
			producer[o] = i
		}
		seen := map[string]bool{}
		for _, in := range nodeReads(n) {
			if !seen[in] {
				seen[in] = true
				readers[in] = append(readers[in], i)
			}
		}
	}
	used := map[int]bool{} // nodes already part of a fused chain
	replace := map[int]*node{}
	for pi, p := range nodes {
		if p.op != "Conv" || len(p.outputs) != 1 || !arityOK(p) || used[pi] || p.epi != nil {
			continue
		}
		w := consts[p.inputs[1]]
		if w == nil || w.DType != nn.Float32 || len(w.Shape) < 3 || len(w.Shape) > 4 {
			continue
		}
		ch, rank := w.Shape[0], len(w.Shape)
		regs := map[string]int{p.outputs[0]: 0}
		var steps []epiStep
		var members []int
		var exts []string
		var ops []string
		tail := p.outputs[0]
		for len(steps) < maxEpilogue {
			next := -1
			var st epiStep
			var ext string
			for _, ri := range readers[tail] {
				if used[ri] || ri <= pi {
					continue
				}
				s, e, ok := epiStepFor(nodes[ri], regs, consts, ch, rank, func(name string) bool {
					// an extra input must exist before the Conv and have
					// the Conv output's inferred shape
					if pr, ok := producer[name]; ok && pr >= pi {
						return false
					}
					return sameKnownShape(shapes, name, p.outputs[0])
				}, len(exts))
				if ok && (next < 0 || ri < next) {
					next, st, ext = ri, s, e
				}
			}
			if next < 0 {
				break
			}
			n := nodes[next]
			if ext != "" {
				exts = append(exts, ext)
			}
			steps = append(steps, st)
			members = append(members, next)
			ops = append(ops, n.op)
			regs[n.outputs[0]] = len(steps)
			tail = n.outputs[0]
		}
		// Keep the longest prefix whose intermediate values nothing outside
		// the chain reads.
		for k := len(steps); k > 0; k-- {
			in := map[int]bool{}
			for _, m := range members[:k] {
				in[m] = true
			}
			final := nodes[members[k-1]].outputs[0]
			ok := true
			vals := []string{p.outputs[0]}
			for _, m := range members[:k-1] {
				vals = append(vals, nodes[m].outputs[0])
			}
			for _, v := range vals {
				if v == final {
					continue
				}
				if keep[v] || graphOutputs[v] {
					ok = false
				}
				for _, r := range readers[v] {
					if !in[r] {
						ok = false
					}
				}
			}
			if !ok {
				continue
			}
			// Extra inputs of the kept steps only.
			nExt := 0
			for _, s := range steps[:k] {
				for _, a := range s.in {
					if a.kind == argExt {
						nExt = max(nExt, a.ext+1)
					}
				}
			}
			fused := *p
			fused.op = "FusedConv"
			fused.inputs = append(append([]string{}, p.inputs...), make([]string, 3-min(3, len(p.inputs)))...)
			fused.inputs = append(fused.inputs, exts[:nExt]...)
			fused.outputs = []string{final}
			prog := simplifyEpilogue(append([]epiStep(nil), steps[:k]...))
			fused.epi = &epilogue{steps: prog, ops: append([]string(nil), ops[:k]...), biasFirst: biasFirst(prog)}
			used[pi] = true
			for _, m := range members[:k] {
				used[m] = true
			}
			replace[members[k-1]] = &fused
			break
		}
	}
	var res []*node
	for i, n := range nodes {
		if r, ok := replace[i]; ok {
			res = append(res, r)
			continue
		}
		if !used[i] {
			res = append(res, n)
		}
	}
	return res
}

// biasFirst reports whether the conv's bias can be added inside step 0
// (see epilogue.biasFirst).
func biasFirst(steps []epiStep) bool {
	if len(steps) == 0 || steps[0].op != eLeakyMax || steps[0].in[0].kind != argReg || steps[0].in[0].reg != 0 {
		return false
	}
	for _, st := range steps[1:] {
		for j, a := range st.in {
			if a.kind == argReg && a.reg == 0 && (j == 0 || st.op.binary()) {
				return false
			}
		}
	}
	return true
}

// simplifyEpilogue rewrites spelled-out patterns of a program into fewer
// passes: PaddleOCR's HardSwish, Add(3) -> Clip(0, 6) -> Mul(x) -> Div(6),
// becomes one HardSwish step (x * clamp(x/6 + 1/2, 0, 1), equal up to
// rounding), and a Mul by a scalar followed by an Add of a scalar one affine
// step (PP-OCRv4's learnable affine blocks around it). A pattern is taken only
// when its intermediate values are read by the next step of the pattern
// alone. The det model's nine passes per output become four, cls's five two.
func simplifyEpilogue(steps []epiStep) []epiStep {
	// uses[r]: how many arguments read register r (step i writes i+1)
	uses := make([]int, len(steps)+1)
	for _, st := range steps {
		for j, a := range st.in {
			if a.kind == argReg && (j == 0 || st.op.binary()) {
				uses[a.reg]++
			}
		}
	}
	scalar := func(a epiArg, v float32) bool {
		return a.kind == argConst && len(a.vals) == 1 && a.vals[0] == v
	}
	anyScalar := func(a epiArg) bool { return a.kind == argConst && len(a.vals) == 1 }
	isReg := func(a epiArg, r int) bool { return a.kind == argReg && a.reg == r }
	// other returns the argument of a binary step that is not register r.
	other := func(st *epiStep, r int) (epiArg, bool) {
		switch {
		case isReg(st.in[0], r):
			return st.in[1], true
		case isReg(st.in[1], r):
			return st.in[0], true
		}
		return epiArg{}, false
	}
	var out []epiStep
	remap := make([]int, len(steps)+1) // old register -> new
	for i := 0; i < len(steps); {
		st := steps[i]
		// HardSwish: i Add(x, 3), i+1 Clip(0, 6), i+2 Mul(x, clip), i+3 Div(6)
		if i+3 < len(steps) && st.op == eAdd {
			var x epiArg
			found := false
			for _, cand := range st.in {
				if cand.kind == argReg {
					if o, ok := other(&st, cand.reg); ok && scalar(o, 3) {
						x, found = cand, true
						break
					}
				}
			}
			cl, mu, dv := &steps[i+1], &steps[i+2], &steps[i+3]
			if found && cl.op == eClip && isReg(cl.in[0], i+1) && cl.a == 0 && cl.b == 6 &&
				mu.op == eMul && (isReg(mu.in[0], i+2) && isReg(mu.in[1], x.reg) || isReg(mu.in[1], i+2) && isReg(mu.in[0], x.reg)) &&
				dv.op == eDiv && isReg(dv.in[0], i+3) && scalar(dv.in[1], 6) &&
				uses[i+1] == 1 && uses[i+2] == 1 && uses[i+3] == 1 && x.reg != i+2 {
				x.reg = remap[x.reg]
				out = append(out, epiStep{op: eHardSwish, in: [2]epiArg{x}})
				remap[i+4] = len(out)
				i += 4
				continue
			}
		}
		// LeakyMax: i LeakyRelu(x), i+1 Max(that, c), c a scalar
		if i+1 < len(steps) && st.op == eLeakyRelu && st.a >= 0 && st.a <= 1 && steps[i+1].op == eMax && uses[i+1] == 1 {
			if c, ok := other(&steps[i+1], i+1); ok && anyScalar(c) && c.vals[0] == c.vals[0] {
				x := st.in[0]
				if x.kind == argReg {
					x.reg = remap[x.reg]
				}
				out = append(out, epiStep{op: eLeakyMax, in: [2]epiArg{x}, a: st.a, b: c.vals[0]})
				remap[i+2] = len(out)
				i += 2
				continue
			}
		}
		// Affine: i Mul(x, a), i+1 Add(that, b), a and b scalars
		if i+1 < len(steps) && st.op == eMul {
			ad := &steps[i+1]
			var x, a epiArg
			found := false
			for _, cand := range st.in {
				if cand.kind == argReg {
					if o, ok := other(&st, cand.reg); ok && anyScalar(o) {
						x, a, found = cand, o, true
						break
					}
				}
			}
			if found && ad.op == eAdd && uses[i+1] == 1 {
				if b, ok := other(ad, i+1); ok && anyScalar(b) {
					x.reg = remap[x.reg]
					out = append(out, epiStep{op: eAffine, in: [2]epiArg{x}, a: a.vals[0], b: b.vals[0]})
					remap[i+2] = len(out)
					i += 2
					continue
				}
			}
		}
		for j := range st.in {
			if st.in[j].kind == argReg {
				st.in[j].reg = remap[st.in[j].reg]
			}
		}
		out = append(out, st)
		remap[i+1] = len(out)
		i++
	}
	return out
}

// sameKnownShape reports whether inference gave a and b one fully known
// shape (or the same symbolic dims).
func sameKnownShape(shapes map[string]ValueInfo, a, b string) bool {
	if shapes == nil {
		return false
	}
	va, ok1 := shapes[a]
	vb, ok2 := shapes[b]
	if !ok1 || !ok2 || !va.HasShape || !vb.HasShape || len(va.Shape) != len(vb.Shape) || va.DType != nn.Float32 {
		return false
	}
	for i := range va.Shape {
		da, db := va.Shape[i], vb.Shape[i]
		if da != db || (da.Param == "" && da.Value < 0) {
			return false
		}
	}
	return true
}

// epiStepFor turns node n into one epilogue step when it is an f32
// elementwise operator whose operands are chain registers, constants that
// broadcast per channel (ch channels, output rank rank) or an admissible
// extra input. It returns the name of a new extra input ("" if none).
func epiStepFor(n *node, regs map[string]int, consts map[string]*nn.Tensor, ch, rank int, extOK func(string) bool, nExt int) (epiStep, string, bool) {
	var st epiStep
	if len(n.outputs) != 1 || n.domain != "" || !arityOK(n) {
		return st, "", false
	}
	if k, ok := epiUnary[n.op]; ok {
		if len(n.inputs) < 1 {
			return st, "", false
		}
		r, ok := regs[n.inputs[0]]
		if !ok {
			return st, "", false
		}
		st.op, st.in[0] = k, epiArg{kind: argReg, reg: r}
		switch k {
		case eClip:
			lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
			if n.opset < 11 {
				lo, hi = n.attrFloat("min", lo), n.attrFloat("max", hi)
			} else {
				for i, dst := range []*float32{&lo, &hi} {
					if len(n.inputs) <= i+1 || n.inputs[i+1] == "" {
						continue
					}
					t := consts[n.inputs[i+1]]
					if t == nil || t.DType != nn.Float32 || len(t.F32) != 1 {
						return st, "", false
					}
					*dst = t.F32[0]
				}
			}
			st.a, st.b = lo, hi
		case eHardSigmoid:
			st.a, st.b = n.attrFloat("alpha", 0.2), n.attrFloat("beta", 0.5)
		case eLeakyRelu:
			st.a = n.attrFloat("alpha", 0.01)
		}
		if k != eClip && len(n.inputs) != 1 {
			return st, "", false
		}
		return st, "", true
	}
	k, ok := epiBinary[n.op]
	if !ok || len(n.inputs) != 2 || n.opset < 7 {
		return st, "", false
	}
	st.op = k
	ext := ""
	hasReg := false
	for i, name := range n.inputs {
		if r, ok := regs[name]; ok {
			st.in[i] = epiArg{kind: argReg, reg: r}
			hasReg = true
			continue
		}
		if t := consts[name]; t != nil {
			vals, ok := perChannel(t, ch, rank)
			if !ok {
				return st, "", false
			}
			st.in[i] = epiArg{kind: argConst, vals: vals}
			continue
		}
		if name == "" || ext != "" || !extOK(name) {
			return st, "", false
		}
		ext = name
		st.in[i] = epiArg{kind: argExt, ext: nExt}
	}
	return st, ext, hasReg
}

// perChannel returns the values of a constant that broadcasts against an
// output [N, ch, ...] of rank rank without changing its shape: a scalar (one
// value) or one value per channel.
func perChannel(t *nn.Tensor, ch, rank int) ([]float32, bool) {
	if t.DType != nn.Float32 || len(t.Shape) > rank {
		return nil, false
	}
	if t.Len() == 1 {
		return t.F32[:1], true
	}
	// aligned right: axis 1 of the output is axis len-(rank-1) of t
	ax := len(t.Shape) - (rank - 1)
	if ax < 0 || t.Shape[ax] != ch {
		return nil, false
	}
	for i, d := range t.Shape {
		if i != ax && d != 1 {
			return nil, false
		}
	}
	return t.F32, true
}

// run applies the program to planes planes of plane elements of a conv
// output with ch channels, starting at plane p0 (out and the extra inputs
// ext start there too); bias (nil or ch values) is added first. A chunk lies inside one plane when
// planes are large; when they are small (the 4x4 and 1x1 planes of a
// backbone's last stages) it covers several whole planes, so that the
// vector kernels still get long rows, and per-channel constants are spread
// over the chunk first.
func (e *epilogue) run(out, bias []float32, p0, planes, ch, plane int, ext [][]float32) {
	var regs [maxEpilogue + 1][epiChunk]float32
	var spread [3][epiChunk]float32
	var view [maxEpilogue + 1][]float32
	last := len(e.steps) - 1
	if plane == 0 {
		return
	}
	per := max(1, epiChunk/plane) // planes per chunk when plane < epiChunk
	total := planes * plane
	for at := 0; at < total; {
		lp := at / plane // local plane; its channel is (p0+lp) % ch
		gp := p0 + lp
		var n int
		if plane >= epiChunk {
			n = min(epiChunk, (lp+1)*plane-at)
		} else {
			n = min(per*plane, total-at)
		}
		k := &chunk{at: at, n: n, gp: gp, p0: p0, plane: plane, ch: ch, one: at+n <= (lp+1)*plane}
		r0 := out[at : at+n]
		first := 0
		if bias != nil && e.biasFirst && k.one {
			// the bias inside step 0 (a LeakyMax of r0 alone)
			st := &e.steps[0]
			dst := regs[1][:n]
			if last == 0 {
				dst = r0
			}
			vec.LeakyMax(dst, r0, bias[gp%ch], st.a, st.b)
			view[0], view[1] = r0, dst
			first = 1
		} else if bias != nil {
			if k.one {
				vec.Affine(r0, r0, 1, bias[gp%ch])
			} else {
				vec.Add(r0, r0, k.spread(spread[2][:n], bias))
			}
		}
		if first == 0 {
			view[0] = r0
		}
		for si := first; si < len(e.steps); si++ {
			st := &e.steps[si]
			dst := regs[si+1][:n]
			if si == last {
				dst = r0
			}
			e.step(st, dst, view[:si+1], k, ext, &spread)
			view[si+1] = dst
		}
		at += n
	}
}

// chunk is the part of the output one pass of the program covers.
type chunk struct {
	at, n     int // offset and length in the output
	gp        int // plane of the first element (global)
	p0        int // global index of local plane 0
	plane, ch int
	one       bool // inside one plane
}

// spread fills dst with the per-channel values of the chunk's elements.
func (k *chunk) spread(dst, vals []float32) []float32 {
	for i := 0; i < k.n; {
		p := (k.at + i) / k.plane
		end := min(k.n, (p+1)*k.plane-k.at)
		v := vals[(k.p0+p)%k.ch]
		for j := i; j < end; j++ {
			dst[j] = v
		}
		i = end
	}
	return dst
}

func (e *epilogue) step(st *epiStep, dst []float32, regs [][]float32, k *chunk, ext [][]float32, spread *[3][epiChunk]float32) {
	n := len(dst)
	arg := func(a epiArg, i int) ([]float32, float32) {
		switch a.kind {
		case argReg:
			return regs[a.reg][:n], 0
		case argExt:
			return ext[a.ext][k.at : k.at+n], 0
		}
		if len(a.vals) == 1 {
			return nil, a.vals[0]
		}
		if k.one {
			return nil, a.vals[k.gp%k.ch]
		}
		return k.spread(spread[i][:n], a.vals), 0
	}
	inf := float32(math.Inf(1))
	if !st.op.binary() {
		x, _ := arg(st.in[0], 0)
		switch st.op {
		case eRelu:
			vec.Clamp(dst, x, 0, inf)
		case eClip:
			vec.Clamp(dst, x, st.a, st.b)
		case eHardSigmoid:
			vec.Affine(dst, x, st.a, st.b)
			vec.Clamp(dst, dst, 0, 1)
		case eHardSwish:
			vec.HardSwish(dst, x)
		case eAffine:
			vec.Affine(dst, x, st.a, st.b)
		case eLeakyMax:
			vec.LeakyMax(dst, x, 0, st.a, st.b)
		case eLeakyRelu:
			vec.LeakyRelu(dst, x, st.a)
		default:
			unaryRow(st, dst, x)
		}
		return
	}
	x, xs := arg(st.in[0], 0)
	y, ys := arg(st.in[1], 1)
	switch {
	case x != nil && y != nil:
		switch st.op {
		case eAdd:
			vec.Add(dst, x, y)
		case eMul:
			vec.Mul(dst, x, y)
		default:
			rowF32(st.op.bin(), dst, x, y, 1, 1)
		}
		return
	case x != nil: // x op s
		switch st.op {
		case eAdd:
			vec.Affine(dst, x, 1, ys)
			return
		case eSub:
			vec.Affine(dst, x, 1, -ys)
			return
		case eMul:
			vec.Affine(dst, x, ys, 0)
			return
		case eDiv:
			vec.Affine(dst, x, 1/ys, 0)
			return
		case eMax:
			if ys == ys {
				vec.Clamp(dst, x, ys, inf)
				return
			}
		case eMin:
			if ys == ys {
				vec.Clamp(dst, x, -inf, ys)
				return
			}
		}
	case y != nil: // s op y
		switch st.op {
		case eAdd:
			vec.Affine(dst, y, 1, xs)
			return
		case eSub:
			vec.Affine(dst, y, -1, xs)
			return
		case eMul:
			vec.Affine(dst, y, xs, 0)
			return
		case eMax:
			if xs == xs {
				vec.Clamp(dst, y, xs, inf)
				return
			}
		case eMin:
			if xs == xs {
				vec.Clamp(dst, y, -inf, xs)
				return
			}
		}
	}
	binaryRow(st.op, dst, x, xs, y, ys)
}

// addScalar sets dst = x + s.
func addScalar(dst, x []float32, s float32) { vec.Affine(dst, x, 1, s) }

// unaryRow computes dst = f(x) with the same kernels as the unfused
// operators in ops_elem.go (the activations vec has no kernel for).
func unaryRow(st *epiStep, dst, x []float32) {
	x = x[:len(dst)]
	switch st.op {
	case eSigmoid:
		gpu.SigmoidF32(dst, x)
	case eTanh:
		gpu.TanhF32(dst, x)
	}
}

// binaryRow computes dst = x op y where x (or, when nil, the scalar xs) and y
// (or ys) are the operands: the general path of epilogue.step.
func binaryRow(k epiKind, dst, x []float32, xs float32, y []float32, ys float32) {
	f, _ := binF32(k.bin())
	switch {
	case x != nil && y != nil:
		x, y = x[:len(dst)], y[:len(dst)]
		for i := range dst {
			dst[i] = f(x[i], y[i])
		}
	case x != nil:
		x = x[:len(dst)]
		for i := range dst {
			dst[i] = f(x[i], ys)
		}
	case y != nil:
		y = y[:len(dst)]
		for i := range dst {
			dst[i] = f(xs, y[i])
		}
	default:
		v := f(xs, ys)
		for i := range dst {
			dst[i] = v
		}
	}
}

// fusedConv runs a Conv and its epilogue: inputs X, W, B ("" when absent),
// then the extra inputs.
// reluOnly reports whether the program is a Relu of the Conv output
// alone (a Relu, or the LeakyMax with slope 0 and floor 0 it may be
// simplified to), which the direct convolution applies in its store.
func (e *epilogue) reluOnly() bool {
	if len(e.steps) != 1 {
		return false
	}
	st := &e.steps[0]
	if st.in[0].kind != argReg || st.in[0].reg != 0 {
		return false
	}
	return st.op == eRelu || st.op == eLeakyMax && st.a == 0 && st.b == 0
}

func fusedConv(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	e := c.n.epi
	if e == nil || len(in) < 3 {
		return nil, fmt.Errorf("%w: FusedConv without an epilogue", ErrInvalid)
	}
	cin := in[:2]
	if in[2] != nil {
		cin = in[:3]
	}
	out, biased, relued, err := convCore(c, cin, false, e.reluOnly() && len(in) == 3)
	if err != nil {
		return nil, err
	}
	if relued { // the direct kernel ran the whole epilogue (bias, Relu)
		return out, nil
	}
	t := out[0]
	var extBuf [4][]float32
	ext := extBuf[:0]
	for i, x := range in[3:] {
		if x == nil || x.DType != nn.Float32 || !sameInts(x.Shape, t.Shape) {
			return nil, fmt.Errorf("%w: fused input %d is %v, want f32%v", ErrInvalid, i, x, t.Shape)
		}
		ext = append(ext, x.F32)
	}
	var bias []float32
	if in[2] != nil && !biased { // the direct kernel adds it itself
		bias = in[2].F32
	}
	m := t.Shape[1]
	plane := t.Len() / max(1, t.Shape[0]*m)
	// split by whole planes over the threads (an epilogue step is an
	// elementwise operator's element)
	planes := t.Shape[0] * m
	grain := max(1, 2*elemGrain/max(1, plane*len(e.steps)))
	if c.serial(planes, grain) {
		e.run(t.F32, bias, 0, planes, m, plane, ext)
		return out, nil
	}
	// The closure gets its own copy of ext so that extBuf stays on the
	// stack on the serial path (a captured extBuf escapes to the heap).
	extH := slices.Clone(ext)
	c.parallel(planes, grain, func(lo, hi int) {
		sub := make([][]float32, len(extH))
		for i, x := range extH {
			sub[i] = x[lo*plane : hi*plane]
		}
		e.run(t.F32[lo*plane:hi*plane], bias, lo, hi-lo, m, plane, sub)
	})
	return out, nil
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
