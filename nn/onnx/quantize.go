package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Quantization modes.
const (
	QuantizeDynamic = "dynamic" // weights int8 offline, activations at run time (DynamicQuantizeLinear)
	QuantizeStatic  = "static"  // weights and activations int8 with ranges from calibration (QDQ)
)

// weightMax is the largest weight magnitude written: 7 bits, so that with u8
// activations a pair of products fits int16 and onnxruntime's VPMADDUBSW
// kernels do not saturate (docs/RATIONALE.md, "Why do the quantized
// operators accumulate exactly").
const weightMax = 63

// QuantizeOptions selects how Quantize rewrites a model. The zero value is
// dynamic int8.
type QuantizeOptions struct {
	// Mode is QuantizeDynamic ("" means dynamic) or QuantizeStatic.
	Mode string
	// Calibration holds the inputs the f32 model is run on to find
	// activation ranges (static mode; at least one feed).
	Calibration []map[string]*nn.Tensor
	// Load bounds the model as Load does (zero fields: defaults).
	Load Options
}

// QuantizeReport says what Quantize did to each candidate node.
type QuantizeReport struct {
	Mode      string
	OpsetFrom int
	OpsetTo   int
	Quantized []QuantizedNode
	Skipped   []SkippedNode // left in f32, with the reason
	Folded    []FoldedNode  // BatchNormalization folded into the Conv before it
}

// FoldedNode is a BatchNormalization folded into the Conv before it.
type FoldedNode struct {
	Node, Into string
}

// QuantizedNode is one node rewritten to int8.
type QuantizedNode struct {
	Node, OpType string
	Channels     int // weight scales: 1 per tensor, else per output channel
}

// SkippedNode is a node left in f32.
type SkippedNode struct {
	Node, OpType, Reason string
}

func (s SkippedNode) String() string {
	return fmt.Sprintf("node %s (%s) left in f32: %s", quote(s.Node), s.OpType, s.Reason)
}

// opsWithWeights are operators that carry weights this rewrite does not
// quantize; they are reported, not silently passed over.
var opsWithWeights = map[string]bool{"ConvTranspose": true, "LSTM": true, "GRU": true, "RNN": true, "Einsum": true, "Attention": true}

// Quantize rewrites an f32 ONNX model to int8 and returns the new model
// file. In dynamic mode MatMul, Gemm and Conv nodes with constant weights
// become DynamicQuantizeLinear + MatMulInteger/ConvInteger + Cast + Mul by
// the scales (+ Add of the bias), the pattern onnxruntime's quantize_dynamic
// writes, with symmetric int8 weights per output channel. In static mode
// the same nodes get QuantizeLinear/DequantizeLinear pairs on the activation,
// weight, bias and output (QDQ format), activation ranges being the min/max
// seen over the calibration feeds. Activations are u8, weights 7-bit (see
// weightMax). The result is a standard ONNX file: onnxruntime and this
// package both run it. name labels errors.
func Quantize(data []byte, name string, opts QuantizeOptions) ([]byte, *QuantizeReport, error) {
	if opts.Mode == "" {
		opts.Mode = QuantizeDynamic
	}
	if opts.Mode != QuantizeDynamic && opts.Mode != QuantizeStatic {
		return nil, nil, fmt.Errorf("quantize: mode %q (want %q or %q)", opts.Mode, QuantizeDynamic, QuantizeStatic)
	}
	if opts.Mode == QuantizeStatic && len(opts.Calibration) == 0 {
		return nil, nil, fmt.Errorf("quantize: static mode needs at least one calibration feed")
	}
	lopts := opts.Load.withDefaults()
	// Validate first: the model is untrusted, and the checks (sizes,
	// cycles, nesting, undefined names) are Load's. External data is refused.
	m, err := decode(data, name, "", lopts)
	if err != nil {
		return nil, nil, err
	}
	var mp pb.ModelProto
	if err := (proto.UnmarshalOptions{RecursionLimit: 64 + 8*lopts.MaxSubgraphDepth}).Unmarshal(data, &mp); err != nil {
		return nil, nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	q := &quantizer{
		name: name, mp: &mp, opts: opts, opset: m.Opset,
		ld:    &loader{name: name, opts: lopts},
		names: map[string]bool{},
		rep:   &QuantizeReport{Mode: opts.Mode, OpsetFrom: m.Opset, OpsetTo: m.Opset},
	}
	q.collectNames(mp.Graph)
	if q.opset < 11 {
		if err := q.upgrade(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	q.foldBN()
	if opts.Mode == QuantizeStatic {
		if err := q.calibrate(m); err != nil {
			return nil, nil, fmt.Errorf("%s: calibration: %w", name, err)
		}
	}
	if err := q.graph(mp.Graph, nil, true); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	q.dropDead()
	out, err := proto.Marshal(&mp)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, q.rep, nil
}

type quantizer struct {
	name     string
	mp       *pb.ModelProto
	opts     QuantizeOptions
	opset    int
	ld       *loader
	names    map[string]bool
	rep      *QuantizeReport
	ranges   map[string][2]float32 // static: calibrated min, max
	replaced map[string]bool       // weights rewritten: dropped when unused
}

func (q *quantizer) collectNames(g *pb.GraphProto) {
	for _, v := range g.Input {
		q.names[v.GetName()] = true
	}
	for _, t := range g.Initializer {
		q.names[t.GetName()] = true
	}
	for _, n := range g.Node {
		for _, s := range n.Output {
			q.names[s] = true
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				q.collectNames(a.G)
			}
			for _, sg := range a.Graphs {
				q.collectNames(sg)
			}
		}
	}
}

// fresh returns a name not used anywhere in the model.
func (q *quantizer) fresh(base string) string {
	s := base
	for i := 1; q.names[s]; i++ {
		s = fmt.Sprintf("%s_%d", base, i)
	}
	q.names[s] = true
	return s
}

// scope maps the constant values visible in one graph: initializers that
// are not also graph inputs, and Constant nodes' tensors.
type scope map[string]*pb.TensorProto

func graphScope(g *pb.GraphProto) scope {
	s := scope{}
	inputs := map[string]bool{}
	for _, v := range g.Input {
		inputs[v.GetName()] = true
	}
	for _, t := range g.Initializer {
		if !inputs[t.GetName()] {
			s[t.GetName()] = t
		}
	}
	for _, n := range g.Node {
		if n.GetOpType() == "Constant" && n.GetDomain() == "" && len(n.Output) == 1 {
			for _, a := range n.Attribute {
				if a.GetName() == "value" && a.T != nil {
					s[n.Output[0]] = a.T
				}
			}
		}
	}
	return s
}

// constF32 finds name in the innermost scope that defines it and decodes it
// as f32.
func (q *quantizer) constF32(scopes []scope, local map[string]bool, name string) (*nn.Tensor, error) {
	if name == "" {
		return nil, nil
	}
	for i := len(scopes) - 1; i >= 0; i-- {
		if tp, ok := scopes[i][name]; ok {
			t, err := q.ld.tensor(tp)
			if err != nil {
				return nil, fmt.Errorf("constant %s: %w", quote(name), err)
			}
			if t.DType != nn.Float32 {
				return nil, fmt.Errorf("constant %s is %v, not f32", quote(name), t.DType)
			}
			return t, nil
		}
		if i == len(scopes)-1 && local[name] {
			return nil, nil // computed in this graph: shadows outer names
		}
	}
	return nil, nil
}

// gctx is the rewrite state of one graph.
type gctx struct {
	g      *pb.GraphProto
	scopes []scope
	local  map[string]bool // values produced or declared in this graph
	nodes  []*pb.NodeProto
	dql    map[string][3]string // activation -> DynamicQuantizeLinear outputs
	qdq    map[string]string    // activation -> its QDQ'd copy
	top    bool
}

func (q *quantizer) graph(g *pb.GraphProto, outer []scope, top bool) error {
	c := &gctx{g: g, scopes: append(slices.Clone(outer), graphScope(g)), local: map[string]bool{}, dql: map[string][3]string{}, qdq: map[string]string{}, top: top}
	for _, v := range g.Input {
		c.local[v.GetName()] = true
	}
	for _, n := range g.Node {
		if n.GetOpType() != "Constant" {
			for _, o := range n.Output {
				c.local[o] = true
			}
		}
	}
	for _, n := range g.Node {
		for _, a := range n.Attribute {
			if a.G != nil {
				if err := q.graph(a.G, c.scopes, false); err != nil {
					return err
				}
			}
			for _, sg := range a.Graphs {
				if err := q.graph(sg, c.scopes, false); err != nil {
					return err
				}
			}
		}
		done, reason, err := q.node(c, n)
		if err != nil {
			return fmt.Errorf("node %s (%s): %w", quote(n.GetName()), n.GetOpType(), err)
		}
		if !done {
			c.nodes = append(c.nodes, n)
			if reason != "" {
				q.rep.Skipped = append(q.rep.Skipped, SkippedNode{Node: n.GetName(), OpType: n.GetOpType(), Reason: reason})
			}
		}
	}
	g.Node = c.nodes
	return nil
}

func attrOf(n *pb.NodeProto, name string) *pb.AttributeProto {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// node rewrites n into c.nodes when it can; otherwise it says why not ("" for
// nodes that are not candidates at all).
func (q *quantizer) node(c *gctx, n *pb.NodeProto) (bool, string, error) {
	if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
		return false, "", nil
	}
	op := n.GetOpType()
	switch op {
	case "MatMul", "Gemm", "Conv":
	default:
		if opsWithWeights[op] {
			return false, "operator not quantized by this rewrite", nil
		}
		return false, "", nil
	}
	if len(n.Input) < 2 || len(n.Output) != 1 {
		return false, "unexpected inputs or outputs", nil
	}
	w, err := q.constF32(c.scopes, c.local, n.Input[1])
	if err != nil {
		return false, err.Error(), nil
	}
	if w == nil {
		return false, "weight " + quote(n.Input[1]) + " is not a constant", nil
	}
	var bias *nn.Tensor
	if len(n.Input) > 2 && n.Input[2] != "" {
		if bias, err = q.constF32(c.scopes, c.local, n.Input[2]); err != nil {
			return false, err.Error(), nil
		}
		if bias == nil {
			return false, "bias " + quote(n.Input[2]) + " is not a constant", nil
		}
	}
	// wq is the weight laid out as the int8 op wants it, channel the axis
	// its scales run along.
	var wk *nn.Tensor
	axis := 0
	alpha, beta := float32(1), float32(1)
	switch op {
	case "MatMul":
		if len(w.Shape) != 2 {
			return false, fmt.Sprintf("weight of rank %d (want 2)", len(w.Shape)), nil
		}
		wk, axis = w, 1
	case "Gemm":
		if a := attrOf(n, "transA"); a != nil && a.GetI() != 0 {
			return false, "transA=1", nil
		}
		if a := attrOf(n, "alpha"); a != nil {
			alpha = a.GetF()
		}
		if a := attrOf(n, "beta"); a != nil {
			beta = a.GetF()
		}
		if len(w.Shape) != 2 {
			return false, fmt.Sprintf("weight of rank %d (want 2)", len(w.Shape)), nil
		}
		wk, axis = w, 1
		if a := attrOf(n, "transB"); a != nil && a.GetI() != 0 {
			wk = transpose2(w)
		}
		if bias != nil && (len(bias.Shape) > 1 && !(len(bias.Shape) == 2 && bias.Shape[0] == 1)) {
			return false, fmt.Sprintf("bias of shape %v (want [N])", bias.Shape), nil
		}
		if bias != nil && bias.Len() != 1 && bias.Len() != wk.Shape[1] {
			return false, fmt.Sprintf("bias of shape %v for weight %v", bias.Shape, wk.Shape), nil
		}
	case "Conv":
		if len(w.Shape) < 3 {
			return false, fmt.Sprintf("weight of rank %d (want >= 3)", len(w.Shape)), nil
		}
		wk = w
		if a := attrOf(n, "group"); a != nil && a.GetI() > 1 && w.Shape[1] == 1 {
			// one input channel per group: a product of 1 x kh*kw per
			// output channel is too small for the int8 products to pay
			// for the run-time activation quantization (BENCHMARKS.md)
			return false, "depthwise: f32 is faster", nil
		}
		if bias != nil && (len(bias.Shape) != 1 || bias.Shape[0] != w.Shape[0]) {
			return false, fmt.Sprintf("bias of shape %v for %d channels", bias.Shape, w.Shape[0]), nil
		}
	}
	if q.opts.Mode == QuantizeStatic {
		return q.static(c, n, op, wk, axis, bias, alpha, beta)
	}
	return q.dynamic(c, n, op, wk, axis, bias, alpha, beta)
}

func transpose2(w *nn.Tensor) *nn.Tensor {
	r, k := w.Shape[0], w.Shape[1]
	t := &nn.Tensor{DType: nn.Float32, Shape: []int{k, r}, F32: make([]float32, len(w.F32))}
	for i := range r {
		for j := range k {
			t.F32[j*r+i] = w.F32[i*k+j]
		}
	}
	return t
}

// quantWeight quantizes w symmetrically to int8 within +-weightMax, with one
// scale per index of axis (per channel), or one in all when axis < 0.
func quantWeight(w *nn.Tensor, axis int) (q []int8, scales []float32) {
	nc, inner := 1, 1
	if axis >= 0 {
		nc = w.Shape[axis]
		for _, d := range w.Shape[axis+1:] {
			inner *= d
		}
	} else {
		inner = w.Len()
	}
	ch := func(i int) int { return (i / inner) % nc }
	maxs := make([]float32, nc)
	for i, v := range w.F32 {
		c := ch(i)
		if a := float32(math.Abs(float64(v))); a > maxs[c] {
			maxs[c] = a
		}
	}
	scales = make([]float32, nc)
	for c, m := range maxs {
		scales[c] = m / weightMax
		if scales[c] == 0 || math.IsInf(float64(scales[c]), 0) || math.IsNaN(float64(scales[c])) {
			scales[c] = 1
		}
	}
	q = make([]int8, len(w.F32))
	for i, v := range w.F32 {
		r := math.RoundToEven(float64(v / scales[ch(i)]))
		q[i] = int8(max(-weightMax, min(weightMax, r)))
	}
	return q, scales
}

func f32Proto(name string, dims []int, v []float32) *pb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &pb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(nn.Float32)), Dims: dims64(dims), RawData: raw}
}

func i8Proto(name string, dims []int, v []int8) *pb.TensorProto {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return &pb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(nn.Int8)), Dims: dims64(dims), RawData: raw}
}

func u8Proto(name string, v uint8) *pb.TensorProto {
	return &pb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(nn.Uint8)), RawData: []byte{v}}
}

func i32Proto(name string, dims []int, v []int32) *pb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	return &pb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(nn.Int32)), Dims: dims64(dims), RawData: raw}
}

func i64Proto(name string, v []int64) *pb.TensorProto {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return &pb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(nn.Int64)), Dims: []int64{int64(len(v))}, RawData: raw}
}

func dims64(d []int) []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = int64(v)
	}
	return out
}

func (c *gctx) init(t *pb.TensorProto) string {
	c.g.Initializer = append(c.g.Initializer, t)
	return t.GetName()
}

func (c *gctx) emit(op, name string, in, out []string, attrs ...*pb.AttributeProto) {
	c.nodes = append(c.nodes, &pb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: out, Attribute: attrs})
}

func intAttrP(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: proto.String(name), Type: pb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// scaleShape is the shape per-channel scales take to broadcast against
// the op's output: [N] for MatMul/Gemm, [M,1,...] for Conv.
func scaleShape(op string, w *nn.Tensor, nc int) []int {
	if op != "Conv" || nc == 1 {
		if nc == 1 {
			return nil
		}
		return []int{nc}
	}
	s := make([]int, len(w.Shape)-1)
	for i := range s {
		s[i] = 1
	}
	s[0] = nc
	return s
}

func (q *quantizer) dynamic(c *gctx, n *pb.NodeProto, op string, wk *nn.Tensor, axis int, bias *nn.Tensor, alpha, beta float32) (bool, string, error) {
	base := n.GetName()
	if base == "" {
		base = n.Output[0]
	}
	x := n.Input[0]
	dq, ok := c.dql[x]
	if !ok {
		dq = [3]string{q.fresh(x + "_quantized"), q.fresh(x + "_scale"), q.fresh(x + "_zero_point")}
		c.emit("DynamicQuantizeLinear", q.fresh(base+"_dql"), []string{x}, dq[:])
		c.dql[x] = dq
	}
	wq, scales := quantWeight(wk, axis)
	for i := range scales {
		scales[i] *= alpha
	}
	nc := len(scales)
	wName := c.init(i8Proto(q.fresh(n.Input[1]+"_quantized"), wk.Shape, wq))
	sName := c.init(f32Proto(q.fresh(n.Input[1]+"_scale"), scaleShape(op, wk, nc), scales))
	q.replace(n.Input[1])
	mul := q.fresh(base + "_quant_scales_mul")
	c.emit("Mul", q.fresh(base+"_scales"), []string{dq[1], sName}, []string{mul})
	acc := q.fresh(n.Output[0] + "_quantized")
	switch op {
	case "Conv":
		var attrs []*pb.AttributeProto
		for _, a := range n.Attribute {
			attrs = append(attrs, a)
		}
		c.emit("ConvInteger", q.fresh(base+"_quant"), []string{dq[0], wName, dq[2]}, []string{acc}, attrs...)
	default:
		zp := c.init(i8Proto(q.fresh(n.Input[1]+"_zero_point"), []int{nc}, make([]int8, nc)))
		c.emit("MatMulInteger", q.fresh(base+"_quant"), []string{dq[0], wName, dq[2], zp}, []string{acc})
	}
	accf := q.fresh(acc + "_cast_output")
	c.emit("Cast", q.fresh(base+"_cast"), []string{acc}, []string{accf}, intAttrP("to", int64(nn.Float32)))
	y := n.Output[0]
	if bias == nil {
		c.emit("Mul", q.fresh(base+"_mul"), []string{accf, mul}, []string{y})
	} else {
		prod := q.fresh(y + "_unbiased")
		c.emit("Mul", q.fresh(base+"_mul"), []string{accf, mul}, []string{prod})
		b := make([]float32, bias.Len())
		for i, v := range bias.F32 {
			b[i] = beta * v
		}
		shape := bias.Shape
		if op == "Conv" {
			shape = scaleShape(op, wk, len(b))
		}
		bName := c.init(f32Proto(q.fresh(n.Input[2]+"_bias"), shape, b))
		q.replace(n.Input[2])
		c.emit("Add", q.fresh(base+"_bias_add"), []string{prod, bName}, []string{y})
	}
	q.rep.Quantized = append(q.rep.Quantized, QuantizedNode{Node: n.GetName(), OpType: op, Channels: nc})
	return true, "", nil
}

func (q *quantizer) replace(name string) {
	if q.replaced == nil {
		q.replaced = map[string]bool{}
	}
	q.replaced[name] = true
}

// actParams are u8 asymmetric quantization parameters covering [lo, hi]
// and zero, as onnxruntime's compute_scale_zp does.
func actParams(lo, hi float32) (float32, uint8) {
	lo, hi = min(lo, 0), max(hi, 0)
	s := (hi - lo) / 255
	if s == 0 || math.IsInf(float64(s), 0) || math.IsNaN(float64(s)) {
		return 1, 0
	}
	zp := math.RoundToEven(float64(-lo / s))
	return s, uint8(max(0, min(255, zp)))
}

// qdq emits QuantizeLinear + DequantizeLinear of activation x with its
// calibrated range and returns the dequantized name and its scale.
func (q *quantizer) qdq(c *gctx, x, out string) (string, float32) {
	r := q.ranges[x]
	s, zp := actParams(r[0], r[1])
	sName := c.init(f32Proto(q.fresh(x+"_scale"), nil, []float32{s}))
	zName := c.init(u8Proto(q.fresh(x+"_zero_point"), zp))
	qn := q.fresh(x + "_QuantizeLinear_Output")
	c.emit("QuantizeLinear", q.fresh(x+"_QuantizeLinear"), []string{x, sName, zName}, []string{qn})
	if out == "" {
		out = q.fresh(x + "_DequantizeLinear_Output")
	}
	c.emit("DequantizeLinear", q.fresh(x+"_DequantizeLinear"), []string{qn, sName, zName}, []string{out})
	return out, s
}

func (q *quantizer) static(c *gctx, n *pb.NodeProto, op string, wk *nn.Tensor, axis int, bias *nn.Tensor, alpha, beta float32) (bool, string, error) {
	if !c.top {
		return false, "inside a subgraph: static calibration observes the main graph only", nil
	}
	x, y := n.Input[0], n.Output[0]
	if _, ok := q.ranges[x]; !ok {
		return false, "input " + quote(x) + " was not calibrated", nil
	}
	if _, ok := q.ranges[y]; !ok {
		return false, "output " + quote(y) + " was not calibrated", nil
	}
	base := n.GetName()
	if base == "" {
		base = y
	}
	xd, ok := c.qdq[x]
	var xs float32
	if ok {
		xs, _ = actParams(q.ranges[x][0], q.ranges[x][1])
	} else {
		xd, xs = q.qdq(c, x, "")
		c.qdq[x] = xd
	}
	// The weight keeps the node's own layout (Gemm's transB stays).
	w := wk
	if op == "Gemm" {
		if a := attrOf(n, "transB"); a != nil && a.GetI() != 0 {
			w, axis = transpose2(wk), 0 // back to [N,K]
		}
	}
	if q.rep.OpsetTo < 13 {
		axis = -1 // DequantizeLinear's axis arrived in opset 13
	}
	wq, scales := quantWeight(w, axis)
	nc := len(scales)
	dims := []int{nc}
	if nc == 1 {
		dims = nil
	}
	wName := c.init(i8Proto(q.fresh(n.Input[1]+"_quantized"), w.Shape, wq))
	wsName := c.init(f32Proto(q.fresh(n.Input[1]+"_scale"), dims, scales))
	wzName := c.init(i8Proto(q.fresh(n.Input[1]+"_zero_point"), dims, make([]int8, nc)))
	q.replace(n.Input[1])
	wd := q.fresh(n.Input[1] + "_DequantizeLinear_Output")
	var axisAttr []*pb.AttributeProto
	if nc > 1 {
		axisAttr = append(axisAttr, intAttrP("axis", int64(axis)))
	}
	c.emit("DequantizeLinear", q.fresh(n.Input[1]+"_DequantizeLinear"), []string{wName, wsName, wzName}, []string{wd}, axisAttr...)
	in := []string{xd, wd}
	if len(n.Input) > 2 {
		in = append(in, n.Input[2])
	}
	if bias != nil && alpha == 1 && beta == 1 && len(bias.Shape) == 1 && (nc == 1 || bias.Len() == nc) {
		// int32 bias with scale x_scale*w_scale, as onnxruntime's QDQ
		// quantizer writes it, so the Conv fuses into QLinearConv.
		bs := make([]float32, bias.Len())
		bq := make([]int32, bias.Len())
		for i, v := range bias.F32 {
			s := xs * scales[min(i, nc-1)]
			bs[i] = s
			r := math.RoundToEven(float64(v / s))
			bq[i] = int32(max(math.MinInt32+1, min(math.MaxInt32, r)))
		}
		if nc == 1 {
			bs = bs[:1]
		}
		bdims := []int{len(bs)}
		if nc == 1 {
			bdims = nil
		}
		bqName := c.init(i32Proto(q.fresh(n.Input[2]+"_quantized"), bias.Shape, bq))
		bsName := c.init(f32Proto(q.fresh(n.Input[2]+"_scale"), bdims, bs))
		bd := q.fresh(n.Input[2] + "_DequantizeLinear_Output")
		var battr []*pb.AttributeProto
		if nc > 1 {
			battr = append(battr, intAttrP("axis", 0))
		}
		c.emit("DequantizeLinear", q.fresh(n.Input[2]+"_DequantizeLinear"), []string{bqName, bsName}, []string{bd}, battr...)
		q.replace(n.Input[2])
		in[2] = bd
	}
	raw := q.fresh(y + "_raw")
	nn2 := proto.Clone(n).(*pb.NodeProto)
	nn2.Input, nn2.Output = in, []string{raw}
	c.nodes = append(c.nodes, nn2)
	q.ranges[raw] = q.ranges[y]
	q.qdq(c, raw, y)
	c.qdq[y] = y // already dequantized: a following int8 node reads it as is
	q.rep.Quantized = append(q.rep.Quantized, QuantizedNode{Node: n.GetName(), OpType: op, Channels: nc})
	return true, "", nil
}

// calibrate runs the f32 model on each calibration feed and records the
// min and max of every activation a static rewrite would quantize.
func (q *quantizer) calibrate(m *Model) error {
	g := q.mp.Graph
	sc := graphScope(g)
	want := map[string]bool{}
	for _, n := range g.Node {
		switch n.GetOpType() {
		case "MatMul", "Gemm", "Conv":
			if n.GetDomain() == "" && len(n.Input) >= 2 && len(n.Output) == 1 && sc[n.Input[1]] != nil && sc[n.Input[0]] == nil {
				want[n.Input[0]], want[n.Output[0]] = true, true
			}
		}
	}
	inputs := map[string]bool{}
	for _, v := range g.Input {
		inputs[v.GetName()] = true
	}
	var extra []string
	for name := range want {
		if !inputs[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	s, err := NewSession(m, gpu.NewCPU(), extra...)
	if err != nil {
		return err
	}
	defer s.Close()
	q.ranges = map[string][2]float32{}
	for i, feed := range q.opts.Calibration {
		res, err := s.Run(feed)
		if err != nil {
			return fmt.Errorf("feed %d: %w", i, err)
		}
		for name := range want {
			t := res[name]
			if inputs[name] {
				t = feed[name]
			}
			if t == nil || t.DType != nn.Float32 {
				continue
			}
			r, ok := q.ranges[name]
			if !ok {
				r = [2]float32{float32(math.Inf(1)), float32(math.Inf(-1))}
			}
			for _, v := range t.F32 {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					continue
				}
				r[0], r[1] = min(r[0], v), max(r[1], v)
			}
			q.ranges[name] = r
		}
	}
	for name, r := range q.ranges {
		if r[0] > r[1] { // only non-finite values seen
			delete(q.ranges, name)
		}
	}
	return nil
}

// upgradeBlocked are operators whose meaning changes between opsets 9/10
// and 11 in ways this rewrite does not convert.
var upgradeBlocked = map[string]bool{"Upsample": true, "Resize": true, "TopK": true, "Pad": true, "Scan": true, "Dropout": true}

// upgrade lifts a model below opset 11 (the quantized operators need
// DynamicQuantizeLinear, opset 11) to opset 11, converting Slice and Clip
// from attributes to inputs, as onnxruntime's quantizer lifts such models.
func (q *quantizer) upgrade() error {
	var blocked []string
	var walk func(g *pb.GraphProto) error
	walk = func(g *pb.GraphProto) error {
		for _, n := range g.Node {
			for _, a := range n.Attribute {
				if a.G != nil {
					if err := walk(a.G); err != nil {
						return err
					}
				}
				for _, sg := range a.Graphs {
					if err := walk(sg); err != nil {
						return err
					}
				}
			}
			if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
				continue
			}
			switch op := n.GetOpType(); {
			case upgradeBlocked[op]:
				blocked = append(blocked, fmt.Sprintf("%s (%s)", quote(n.GetName()), op))
			case op == "Slice" && q.opset < 10:
				var starts, ends, axes []int64
				var keep []*pb.AttributeProto
				for _, a := range n.Attribute {
					switch a.GetName() {
					case "starts":
						starts = a.Ints
					case "ends":
						ends = a.Ints
					case "axes":
						axes = a.Ints
					default:
						keep = append(keep, a)
					}
				}
				if len(n.Input) != 1 {
					return fmt.Errorf("node %s (Slice, opset %d): %d inputs (want 1)", quote(n.GetName()), q.opset, len(n.Input))
				}
				sN := q.fresh(n.GetName() + "_starts")
				eN := q.fresh(n.GetName() + "_ends")
				g.Initializer = append(g.Initializer, i64Proto(sN, starts), i64Proto(eN, ends))
				n.Input = append(n.Input, sN, eN)
				if axes != nil {
					aN := q.fresh(n.GetName() + "_axes")
					g.Initializer = append(g.Initializer, i64Proto(aN, axes))
					n.Input = append(n.Input, aN)
				}
				n.Attribute = keep
			case op == "Clip":
				var keep []*pb.AttributeProto
				lo, hi := "", ""
				for _, a := range n.Attribute {
					switch a.GetName() {
					case "min":
						lo = q.fresh(n.GetName() + "_min")
						g.Initializer = append(g.Initializer, f32Proto(lo, nil, []float32{a.GetF()}))
					case "max":
						hi = q.fresh(n.GetName() + "_max")
						g.Initializer = append(g.Initializer, f32Proto(hi, nil, []float32{a.GetF()}))
					default:
						keep = append(keep, a)
					}
				}
				if len(n.Input) != 1 {
					return fmt.Errorf("node %s (Clip, opset %d): %d inputs (want 1)", quote(n.GetName()), q.opset, len(n.Input))
				}
				n.Input = append(n.Input, lo, hi)
				for len(n.Input) > 1 && n.Input[len(n.Input)-1] == "" {
					n.Input = n.Input[:len(n.Input)-1]
				}
				n.Attribute = keep
			}
		}
		return nil
	}
	if err := walk(q.mp.Graph); err != nil {
		return err
	}
	if len(blocked) > 0 {
		return fmt.Errorf("%w: opset %d model needs opset 11 for the quantized operators, and these nodes change meaning between them: %s", ErrUnsupported, q.opset, strings.Join(blocked, ", "))
	}
	for _, o := range q.mp.OpsetImport {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			o.Version = proto.Int64(11)
		}
	}
	if q.mp.GetIrVersion() < 6 {
		q.mp.IrVersion = proto.Int64(6)
	}
	q.rep.OpsetTo = 11
	return nil
}

// dropDead removes the f32 weights the rewrite replaced once nothing reads
// them (initializers and Constant nodes), so the file shrinks.
func (q *quantizer) dropDead() {
	if len(q.replaced) == 0 {
		return
	}
	used := map[string]bool{}
	var mark func(g *pb.GraphProto)
	mark = func(g *pb.GraphProto) {
		for _, n := range g.Node {
			for _, s := range n.Input {
				used[s] = true
			}
			for _, a := range n.Attribute {
				if a.G != nil {
					mark(a.G)
				}
				for _, sg := range a.Graphs {
					mark(sg)
				}
			}
		}
		for _, v := range g.Output {
			used[v.GetName()] = true
		}
	}
	mark(q.mp.Graph)
	var sweep func(g *pb.GraphProto)
	sweep = func(g *pb.GraphProto) {
		inputs := map[string]bool{}
		for _, v := range g.Input {
			inputs[v.GetName()] = true
		}
		g.Initializer = slices.DeleteFunc(g.Initializer, func(t *pb.TensorProto) bool {
			return q.replaced[t.GetName()] && !used[t.GetName()] && !inputs[t.GetName()]
		})
		g.Node = slices.DeleteFunc(g.Node, func(n *pb.NodeProto) bool {
			return n.GetOpType() == "Constant" && len(n.Output) == 1 && q.replaced[n.Output[0]] && !used[n.Output[0]]
		})
		for _, n := range g.Node {
			for _, a := range n.Attribute {
				if a.G != nil {
					sweep(a.G)
				}
				for _, sg := range a.Graphs {
					sweep(sg)
				}
			}
		}
	}
	sweep(q.mp.Graph)
}
