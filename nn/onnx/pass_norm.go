package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// LayerNorm and GELU as exporters write them before the operators existed
// (torch at opsets below 17 and 20), folded into one LayerNormalization or
// Gelu node each:
//
//	LayerNorm: m = ReduceMean(x, [-1]); d = Sub(x, m); v = ReduceMean(Pow(d, 2), [-1]);
//	           y = Add(Mul(Div(d, Sqrt(Add(v, eps))), gamma), beta)
//	GELU:      y = Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)   (Mul operands in either order)
//
// Every intermediate value must be read only inside the pattern and not be
// asked for; the constants must be what the pattern says (2, 1, 0.5, sqrt 2
// to 1e-6, a scalar eps, gamma and beta of one dimension). The operators
// run one pass per row (LayerNormalization) or per element (Gelu).

// graphIndex is what the pattern passes look up: producers and readers.
type graphIndex struct {
	nodes    []*node
	producer map[string]int
	readers  map[string][]int
	consts   map[string]*nn.Tensor
	keep     map[string]bool
}

func newGraphIndex(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool) *graphIndex {
	g := &graphIndex{nodes: nodes, producer: map[string]int{}, readers: map[string][]int{}, consts: consts, keep: keep}
	for i, n := range nodes {
		for _, o := range n.outputs {
			g.producer[o] = i
		}
		for _, in := range nodeReads(n) {
			g.readers[in] = append(g.readers[in], i)
		}
	}
	return g
}

// only returns the single reader of v when it is an op node and v is not
// kept; -1 otherwise.
func (g *graphIndex) only(v, op string) int {
	rs := g.readers[v]
	if len(rs) != 1 || g.keep[v] || g.nodes[rs[0]].op != op || len(g.nodes[rs[0]].outputs) != 1 || !arityOK(g.nodes[rs[0]]) {
		return -1
	}
	return rs[0]
}

// other returns the input of binary node n that is not v ("" if n does not
// read v exactly once).
func other(n *node, v string) string {
	if len(n.inputs) != 2 {
		return ""
	}
	switch {
	case n.inputs[0] == v && n.inputs[1] != v:
		return n.inputs[1]
	case n.inputs[1] == v && n.inputs[0] != v:
		return n.inputs[0]
	}
	return ""
}

// scalar returns the value of a one-element f32 constant.
func (g *graphIndex) scalar(name string) (float32, bool) {
	t := g.consts[name]
	if t == nil || t.DType != nn.Float32 || len(t.F32) != 1 {
		return 0, false
	}
	return t.F32[0], true
}

// lastAxisMean reports whether n is a ReduceMean over the last axis only,
// keeping dims.
func (g *graphIndex) lastAxisMean(n *node) bool {
	if n.op != "ReduceMean" || n.attrInt("keepdims", 1) != 1 || len(n.outputs) != 1 || !arityOK(n) {
		return false
	}
	var axes []int64
	if n.opset < 18 {
		axes, _ = n.attrInts("axes")
	} else if len(n.inputs) == 2 {
		t := g.consts[n.inputs[1]]
		if t == nil || t.DType != nn.Int64 {
			return false
		}
		axes = t.I64
	}
	return len(axes) == 1 && axes[0] == -1
}

// rewrite replaces the nodes in drop by repl, placed at the last of them.
func rewrite(nodes []*node, drop []int, repl *node) []*node {
	last := 0
	for _, i := range drop {
		last = max(last, i)
	}
	gone := map[int]bool{}
	for _, i := range drop {
		gone[i] = true
	}
	out := make([]*node, 0, len(nodes))
	for i, n := range nodes {
		switch {
		case i == last:
			out = append(out, repl)
		case !gone[i]:
			out = append(out, n)
		}
	}
	return out
}

// fuseLayerNorm rewrites the exported LayerNorm pattern into
// LayerNormalization nodes (axis -1).
func fuseLayerNorm(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool) []*node {
	for changed := true; changed; {
		changed = false
		g := newGraphIndex(nodes, consts, keep)
		for i, mean := range nodes {
			if !g.lastAxisMean(mean) {
				continue
			}
			x, m := mean.inputs[0], mean.outputs[0]
			si := g.only(m, "Sub")
			if si < 0 || nodes[si].inputs[0] != x || nodes[si].inputs[1] != m {
				continue
			}
			d := nodes[si].outputs[0]
			// d is read by Pow and Div, nothing else
			var pi, di = -1, -1
			for _, r := range g.readers[d] {
				switch nodes[r].op {
				case "Pow":
					pi = r
				case "Div":
					di = r
				}
			}
			if len(g.readers[d]) != 2 || pi < 0 || di < 0 || g.keep[d] || nodes[pi].inputs[0] != d || nodes[di].inputs[0] != d {
				continue
			}
			if e, ok := g.scalar(nodes[pi].inputs[1]); !ok || e != 2 {
				continue
			}
			vi := g.only(nodes[pi].outputs[0], "ReduceMean")
			if vi < 0 || !g.lastAxisMean(nodes[vi]) {
				continue
			}
			ai := g.only(nodes[vi].outputs[0], "Add")
			if ai < 0 {
				continue
			}
			eps, ok := g.scalar(other(nodes[ai], nodes[vi].outputs[0]))
			if !ok {
				continue
			}
			qi := g.only(nodes[ai].outputs[0], "Sqrt")
			if qi < 0 || g.only(nodes[qi].outputs[0], "Div") != di || nodes[di].inputs[1] != nodes[qi].outputs[0] {
				continue
			}
			mi := g.only(nodes[di].outputs[0], "Mul")
			if mi < 0 {
				continue
			}
			gamma := consts[other(nodes[mi], nodes[di].outputs[0])]
			bi := g.only(nodes[mi].outputs[0], "Add")
			if bi < 0 || gamma == nil || gamma.DType != nn.Float32 || len(gamma.Shape) != 1 {
				continue
			}
			beta := consts[other(nodes[bi], nodes[mi].outputs[0])]
			if beta == nil || beta.DType != nn.Float32 || len(beta.Shape) != 1 || beta.Len() != gamma.Len() {
				continue
			}
			ln := &node{name: mean.name + "/layernorm", op: "LayerNormalization", index: mean.index, opset: 17,
				inputs:  []string{x, other(nodes[mi], nodes[di].outputs[0]), other(nodes[bi], nodes[mi].outputs[0])},
				outputs: nodes[bi].outputs,
				attrs:   map[string]*attr{"axis": {i: -1}, "epsilon": {f: eps}}}
			nodes = rewrite(nodes, []int{i, si, pi, vi, ai, qi, di, mi, bi}, ln)
			changed = true
			break
		}
	}
	return nodes
}

// fuseGelu rewrites the exported exact GELU into Gelu nodes.
func fuseGelu(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool) []*node {
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6 }
	for changed := true; changed; {
		changed = false
		g := newGraphIndex(nodes, consts, keep)
		for i, div := range nodes {
			if div.op != "Div" || !arityOK(div) || len(div.outputs) != 1 {
				continue
			}
			x := div.inputs[0]
			if s, ok := g.scalar(div.inputs[1]); !ok || !near(s, float32(math.Sqrt2)) {
				continue
			}
			ei := g.only(div.outputs[0], "Erf")
			if ei < 0 {
				continue
			}
			ai := g.only(nodes[ei].outputs[0], "Add")
			if ai < 0 {
				continue
			}
			if one, ok := g.scalar(other(nodes[ai], nodes[ei].outputs[0])); !ok || one != 1 {
				continue
			}
			m1 := g.only(nodes[ai].outputs[0], "Mul")
			if m1 < 0 || other(nodes[m1], nodes[ai].outputs[0]) != x {
				continue
			}
			m2 := g.only(nodes[m1].outputs[0], "Mul")
			if m2 < 0 {
				continue
			}
			if h, ok := g.scalar(other(nodes[m2], nodes[m1].outputs[0])); !ok || h != 0.5 {
				continue
			}
			gelu := &node{name: div.name + "/gelu", op: "Gelu", index: div.index, opset: 20,
				inputs: []string{x}, outputs: nodes[m2].outputs, attrs: map[string]*attr{}}
			nodes = rewrite(nodes, []int{i, ei, ai, m1, m2}, gelu)
			changed = true
			break
		}
	}
	return nodes
}

// layerNorm implements LayerNormalization (opset 17): Y only, over the axes
// from axis on; statistics in float64 except on vec's row kernels (rows of 8
// or more with full scale and bias).
func layerNorm(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x, scale := in[0], in[1]
	var bias *nn.Tensor
	if len(in) > 2 {
		bias = in[2]
	}
	if len(c.n.outputs) > 1 {
		for _, o := range c.n.outputs[1:] {
			if o != "" {
				return nil, fmt.Errorf("%w: LayerNormalization Mean and InvStdDev outputs", ErrUnsupported)
			}
		}
	}
	if x.DType != nn.Float32 || scale.DType != nn.Float32 || (bias != nil && bias.DType != nn.Float32) {
		return nil, fmt.Errorf("%w: LayerNormalization of %v", ErrUnsupported, x.DType)
	}
	ax, err := normAxis(c.n.attrInt("axis", -1), len(x.Shape))
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range x.Shape[ax:] {
		n *= d
	}
	if scale.Len() != n && scale.Len() != 1 || bias != nil && bias.Len() != n && bias.Len() != 1 {
		return nil, fmt.Errorf("%w: scale %v and bias %v for normalized size %d", ErrInvalid, scale.Shape, bias, n)
	}
	eps := float64(c.n.attrFloat("epsilon", 1e-5))
	out, err := c.alloc(nn.Float32, x.Shape)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return c.one(out), nil
	}
	pick := func(t *nn.Tensor, i int) float32 {
		if t.Len() == 1 {
			return t.F32[0]
		}
		return t.F32[i]
	}
	if scale.Len() == n && (bias == nil || bias.Len() == n) && n >= 8 {
		// rows on vec's kernels: the mean, the centred row, its square
		// sum, then scale and bias (f32 sums on eight lanes, not float64)
		for r := 0; r < x.Len()/n; r++ {
			row, dst := x.F32[r*n:(r+1)*n], out.F32[r*n:(r+1)*n]
			mean := vec.Sum(row) / float32(n)
			vec.Affine(dst, row, 1, -mean)
			inv := float32(1 / math.Sqrt(float64(vec.Dot(dst, dst))/float64(n)+eps))
			vec.Affine(dst, dst, inv, 0)
			vec.Mul(dst, dst, scale.F32)
			if bias != nil {
				vec.Add(dst, dst, bias.F32)
			}
		}
		return c.one(out), nil
	}
	for r := 0; r < x.Len()/n; r++ {
		row, dst := x.F32[r*n:(r+1)*n], out.F32[r*n:(r+1)*n]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mean := s / float64(n)
		var q float64
		for _, v := range row {
			d := float64(v) - mean
			q += d * d
		}
		inv := 1 / math.Sqrt(q/float64(n)+eps)
		for i, v := range row {
			y := float32((float64(v)-mean)*inv) * pick(scale, i)
			if bias != nil {
				y += pick(bias, i)
			}
			dst[i] = y
		}
	}
	return c.one(out), nil
}

// gelu implements Gelu (opset 20), exact or with the tanh approximation.
func gelu(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	x := in[0]
	if x.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: Gelu of %v", ErrUnsupported, x.DType)
	}
	approx := c.n.attrString("approximate", "none")
	if approx != "none" && approx != "tanh" {
		return nil, fmt.Errorf("%w: approximate %q", ErrInvalid, approx)
	}
	out, err := c.allocFull(nn.Float32, x.Shape)
	if err != nil {
		return nil, err
	}
	if approx == "tanh" {
		geluTanh(out.F32, x.F32)
	} else {
		geluErf(out.F32, x.F32)
	}
	return c.one(out), nil
}

// geluChunk is how many elements geluErf and geluTanh take through the vector
// exp/tanh kernels at a time (stack buffers).
const geluChunk = 256

// geluErf sets dst[i] = 0.5 x (1 + erf(x/sqrt2)) with erf from Abramowitz and
// Stegun 7.1.26 (absolute error <= 1.5e-7 in erf): for z = |x|/sqrt2,
// 1 - erf(z) = q = t P(t) e^(-z^2), t = 1/(1 + p z), so Gelu is 0.5 x q for
// x < 0 and 0.5 x (2 - q) otherwise; e^(-z^2) on gpu's vector exp. About
// 20x faster than float64 math.Erf per element, within 1e-7 |x| of it
// (TestGeluKernels); the polynomial and the combination are vec's AVX2 kernels.
func geluErf(dst, src []float32) {
	var e, tp [geluChunk]float32
	for lo := 0; lo < len(dst); lo += geluChunk {
		n := min(geluChunk, len(dst)-lo)
		vec.GeluPoly(tp[:n], e[:n], src[lo:lo+n])
		gpu.ExpF32(e[:n], e[:n])
		vec.GeluCombine(dst[lo:lo+n], src[lo:lo+n], tp[:n], e[:n])
	}
}

// geluTanh sets dst[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) on
// gpu's vector tanh.
func geluTanh(dst, src []float32) {
	const k = 0.7978845608028654 // sqrt(2/pi)
	var u [geluChunk]float32
	for lo := 0; lo < len(dst); lo += geluChunk {
		n := min(geluChunk, len(dst)-lo)
		xs, ys := src[lo:lo+n], dst[lo:lo+n]
		for i, x := range xs {
			u[i] = k * (x + 0.044715*x*x*x)
		}
		gpu.TanhF32(u[:n], u[:n])
		for i, x := range xs {
			ys[i] = 0.5 * x * (1 + u[i])
		}
	}
}

func init() {
	reg("LayerNormalization", opDef{since: 17, attrs: []string{"axis", "epsilon", "stash_type"}, minIn: 2, maxIn: 3, run: layerNorm, foldable: true})
	reg("Gelu", opDef{since: 20, attrs: []string{"approximate"}, minIn: 1, maxIn: 1, run: gelu, foldable: true})
}
