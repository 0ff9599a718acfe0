package onnx

import (
	"fmt"

	"github.com/fennec-edge/fennec/nn"
)

// Static shape and dtype inference over the main graph. Dimensions stay
// symbolic: a dim named "batch" on an input flows to every value whose
// size follows from it, and small i64 vectors computed from shapes (Shape ->
// Slice -> Concat -> Reshape, as exporters write them) are tracked element
// by element, so a Reshape whose target is built from an input's shape still
// gets a shape. Where a size depends on data or on arithmetic over symbols,
// the dim is unknown ("?"); an operator without a rule here gives an
// unknown shape. Inference is advisory: the executor checks every shape at
// run time.

// vinfo is what inference knows of one value. val holds the elements of a
// small integer vector (i64 or i32) when they are known.
type vinfo struct {
	dt    nn.DType
	shape []Dim // nil: unknown rank
	val   []Dim // the elements of a small i64 vector, when known
}

const maxTrackedVector = nn.MaxRank

func known(d Dim) bool { return d.Value >= 0 && d.Param == "" }

func unknownDim() Dim { return Dim{Value: -1} }

func constInfo(t *nn.Tensor) *vinfo {
	vi := &vinfo{dt: t.DType, shape: make([]Dim, len(t.Shape))}
	for i, d := range t.Shape {
		vi.shape[i] = Dim{Value: int64(d)}
	}
	if len(t.Shape) <= 1 && t.Len() <= maxTrackedVector {
		switch t.DType {
		case nn.Int64:
			for _, v := range t.I64 {
				vi.val = append(vi.val, Dim{Value: v})
			}
		case nn.Int32:
			for _, v := range t.I32 {
				vi.val = append(vi.val, Dim{Value: int64(v)})
			}
		}
	}
	return vi
}

// InferShapes returns the inferred dtype and shape of every value of the
// main graph (inputs, constants and node outputs).
func (m *Model) InferShapes() map[string]ValueInfo {
	g := m.graph
	env := map[string]*vinfo{}
	for k, t := range g.inits {
		env[k] = constInfo(t)
	}
	for _, in := range g.inputs {
		vi := &vinfo{dt: in.DType}
		if in.HasShape {
			vi.shape = append([]Dim{}, in.Shape...)
		}
		env[in.Name] = vi
	}
	for _, n := range g.nodes {
		ins := make([]*vinfo, len(n.inputs))
		for i, name := range n.inputs {
			ins[i] = env[name]
		}
		outs := inferNode(n, ins)
		for i, name := range n.outputs {
			if name == "" {
				continue
			}
			if i < len(outs) && outs[i] != nil {
				env[name] = outs[i]
			} else {
				env[name] = &vinfo{}
			}
		}
	}
	res := make(map[string]ValueInfo, len(env))
	for name, vi := range env {
		res[name] = ValueInfo{Name: name, DType: vi.dt, Shape: vi.shape, HasShape: vi.shape != nil}
	}
	return res
}

func inferNode(n *node, in []*vinfo) []*vinfo {
	// The rules below index the inputs an operator requires; a node with
	// fewer (a malformed model, which NewSession refuses when it runs the
	// node) gets unknown outputs instead of a panic.
	if d, ok := registry[n.op]; ok && len(in) < d.minIn {
		return nil
	}
	for i := 0; i < len(in); i++ {
		if in[i] == nil {
			in[i] = &vinfo{}
		}
	}
	if len(in) == 0 {
		if n.op == "Constant" {
			for _, a := range n.attrs {
				if a.t != nil {
					return []*vinfo{constInfo(a.t)}
				}
			}
		}
		return nil
	}
	x := in[0]
	same := func() []*vinfo { return []*vinfo{{dt: x.dt, shape: x.shape}} }
	switch n.op {
	case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Floor", "Ceil", "Sin", "Cos", "Neg", "Abs",
		"Reciprocal", "Softplus", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Clip", "Softmax", "LogSoftmax",
		"BatchNormalization", "Not", "LayerNormalization", "Gelu":
		return same()
	case "Identity":
		return []*vinfo{x}
	case "QuantizeLinear":
		dt := nn.Uint8
		if len(in) > 2 && in[2].dt != 0 {
			dt = in[2].dt
		}
		return []*vinfo{{dt: dt, shape: x.shape}}
	case "DequantizeLinear":
		return []*vinfo{{dt: nn.Float32, shape: x.shape}}
	case "DynamicQuantizeLinear":
		return []*vinfo{{dt: nn.Uint8, shape: x.shape}, {dt: nn.Float32, shape: []Dim{}}, {dt: nn.Uint8, shape: []Dim{}}}
	case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Equal", "Less", "Greater", "And", "Or", "Where":
		shape := x.shape
		for _, t := range in[1:] {
			shape = broadcastDims(shape, t.shape)
		}
		dt := x.dt
		switch n.op {
		case "Equal", "Less", "Greater":
			dt = nn.Bool
		case "Where":
			dt = in[1].dt
		}
		return []*vinfo{{dt: dt, shape: shape}}
	case "Shape":
		if x.shape == nil {
			return []*vinfo{{dt: nn.Int64, shape: []Dim{unknownDim()}}}
		}
		r := len(x.shape)
		s, e := int(n.attrInt("start", 0)), int(n.attrInt("end", int64(r)))
		if s < 0 {
			s += r
		}
		if e < 0 {
			e += r
		}
		s, e = min(max(s, 0), r), min(max(e, 0), r)
		e = max(e, s)
		return []*vinfo{{dt: nn.Int64, shape: []Dim{{Value: int64(e - s)}}, val: append([]Dim{}, x.shape[s:e]...)}}
	case "Cast":
		to := nn.DType(n.attrInt("to", 0))
		out := &vinfo{dt: to, shape: x.shape}
		if (to == nn.Int64 || to == nn.Int32) && (x.dt == nn.Int64 || x.dt == nn.Int32) {
			out.val = x.val
		}
		return []*vinfo{out}
	case "Concat":
		ax := int(n.attrInt("axis", 0))
		out := &vinfo{dt: x.dt}
		if x.shape != nil {
			r := len(x.shape)
			if ax < 0 {
				ax += r
			}
			out.shape = append([]Dim{}, x.shape...)
			if ax >= 0 && ax < r {
				total := int64(0)
				for _, t := range in {
					if t.shape == nil || len(t.shape) != r || !known(t.shape[ax]) {
						total = -1
						break
					}
					total += t.shape[ax].Value
				}
				out.shape[ax] = Dim{Value: total}
			}
		}
		if len(x.shape) == 1 {
			for _, t := range in {
				if t.val == nil {
					out.val = nil
					break
				}
				out.val = append(out.val, t.val...)
			}
		}
		return []*vinfo{out}
	case "Slice":
		return []*vinfo{inferSlice(n, in)}
	case "Unsqueeze":
		axes, ok := constAxes(n, in, 13)
		if !ok || x.shape == nil {
			return []*vinfo{{dt: x.dt}}
		}
		r := len(x.shape) + len(axes)
		mark := make([]bool, r)
		for _, a := range axes {
			if a < 0 {
				a += int64(r)
			}
			if a < 0 || a >= int64(r) {
				return []*vinfo{{dt: x.dt}}
			}
			mark[a] = true
		}
		var shape []Dim
		j := 0
		for i := 0; i < r; i++ {
			if mark[i] {
				shape = append(shape, Dim{Value: 1})
			} else if j < len(x.shape) {
				shape = append(shape, x.shape[j])
				j++
			}
		}
		return []*vinfo{{dt: x.dt, shape: shape, val: x.val}}
	case "Reshape":
		if len(in) < 2 || in[1].val == nil {
			return []*vinfo{{dt: x.dt}}
		}
		shape := make([]Dim, len(in[1].val))
		infer := -1
		for i, d := range in[1].val {
			switch {
			case d.Param != "":
				shape[i] = d
			case d.Value == 0 && n.attrInt("allowzero", 0) == 0 && x.shape != nil && i < len(x.shape):
				shape[i] = x.shape[i]
			case d.Value == -1:
				infer = i
				shape[i] = unknownDim()
			default:
				shape[i] = d
			}
		}
		if infer >= 0 {
			shape[infer] = inferredDim(x.shape, shape, infer)
		}
		return []*vinfo{{dt: x.dt, shape: shape}}
	case "Flatten":
		if x.shape == nil {
			return []*vinfo{{dt: x.dt, shape: []Dim{unknownDim(), unknownDim()}}}
		}
		ax := int(n.attrInt("axis", 1))
		if ax < 0 {
			ax += len(x.shape)
		}
		if ax < 0 || ax > len(x.shape) { // the kernel refuses it
			return []*vinfo{{dt: x.dt}}
		}
		return []*vinfo{{dt: x.dt, shape: []Dim{product(x.shape[:ax]), product(x.shape[ax:])}}}
	case "Transpose":
		if x.shape == nil {
			return []*vinfo{{dt: x.dt}}
		}
		perm, ok := n.attrInts("perm")
		r := len(x.shape)
		shape := make([]Dim, r)
		for i := range shape {
			p := r - 1 - i
			if ok {
				if len(perm) != r || perm[i] < 0 || perm[i] >= int64(r) {
					return []*vinfo{{dt: x.dt}}
				}
				p = int(perm[i])
			}
			shape[i] = x.shape[p]
		}
		return []*vinfo{{dt: x.dt, shape: shape}}
	case "GlobalAveragePool", "GlobalMaxPool":
		if x.shape == nil || len(x.shape) < 3 {
			return []*vinfo{{dt: x.dt}}
		}
		shape := append([]Dim{}, x.shape[:2]...)
		for range x.shape[2:] {
			shape = append(shape, Dim{Value: 1})
		}
		return []*vinfo{{dt: x.dt, shape: shape}}
	case "Conv", "MaxPool", "AveragePool":
		return []*vinfo{inferWindow(n, in)}
	case "Gemm":
		if x.shape == nil || len(in) < 2 || in[1].shape == nil || len(x.shape) != 2 || len(in[1].shape) != 2 {
			return []*vinfo{{dt: x.dt, shape: []Dim{unknownDim(), unknownDim()}}}
		}
		m, nn := x.shape[0], in[1].shape[1]
		if n.attrInt("transA", 0) != 0 {
			m = x.shape[1]
		}
		if n.attrInt("transB", 0) != 0 {
			nn = in[1].shape[0]
		}
		return []*vinfo{{dt: x.dt, shape: []Dim{m, nn}}}
	case "MatMul":
		a, b := x.shape, in[1].shape
		if len(a) < 2 || len(b) < 2 {
			return []*vinfo{{dt: x.dt}}
		}
		batch := broadcastDims(a[:len(a)-2], b[:len(b)-2])
		if batch == nil && (len(a) > 2 || len(b) > 2) {
			return []*vinfo{{dt: x.dt}}
		}
		return []*vinfo{{dt: x.dt, shape: append(append([]Dim{}, batch...), a[len(a)-2], b[len(b)-1])}}
	case "Gather":
		if len(x.shape) == 0 || in[1].shape == nil {
			return []*vinfo{{dt: x.dt}}
		}
		ax := int(n.attrInt("axis", 0))
		if ax < 0 {
			ax += len(x.shape)
		}
		if ax < 0 || ax >= len(x.shape) {
			return []*vinfo{{dt: x.dt}}
		}
		shape := append(append(append([]Dim{}, x.shape[:ax]...), in[1].shape...), x.shape[ax+1:]...)
		out := &vinfo{dt: x.dt, shape: shape}
		if x.val != nil && len(in[1].val) == 1 && len(in[1].shape) == 0 {
			i := in[1].val[0].Value
			if i < 0 {
				i += int64(len(x.val))
			}
			if i >= 0 && i < int64(len(x.val)) {
				out.val = []Dim{x.val[i]}
			}
		}
		return []*vinfo{out}
	case "ConstantOfShape":
		dt := nn.Float32
		if a, ok := n.attrs["value"]; ok && a.t != nil {
			dt = a.t.DType
		}
		if x.val == nil {
			return []*vinfo{{dt: dt}}
		}
		return []*vinfo{{dt: dt, shape: append([]Dim{}, x.val...)}}
	case "ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum":
		since := 18
		if n.op == "ReduceSum" {
			since = 13
		}
		axes, ok := constAxes(n, in, since)
		if !ok || x.shape == nil {
			return []*vinfo{{dt: x.dt}}
		}
		keep := n.attrInt("keepdims", 1) != 0
		r := len(x.shape)
		red := make([]bool, r)
		for _, a := range axes {
			if a < 0 {
				a += int64(r)
			}
			if a < 0 || a >= int64(r) {
				return []*vinfo{{dt: x.dt}}
			}
			red[a] = true
		}
		if len(axes) == 0 {
			for i := range red {
				red[i] = true
			}
		}
		var shape []Dim
		for i, d := range x.shape {
			switch {
			case !red[i]:
				shape = append(shape, d)
			case keep:
				shape = append(shape, Dim{Value: 1})
			}
		}
		if shape == nil {
			shape = []Dim{}
		}
		return []*vinfo{{dt: x.dt, shape: shape}}
	}
	return nil
}

// broadcastDims is NumPy broadcasting over symbolic dims; nil if a rank is
// unknown.
func broadcastDims(a, b []Dim) []Dim {
	if a == nil || b == nil {
		return nil
	}
	n := max(len(a), len(b))
	out := make([]Dim, n)
	for i := 1; i <= n; i++ {
		da, db := Dim{Value: 1}, Dim{Value: 1}
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db:
			out[n-i] = da
		case known(da) && da.Value == 1:
			out[n-i] = db
		case known(db) && db.Value == 1:
			out[n-i] = da
		case known(da) && !known(db):
			out[n-i] = da // the model is only valid if db equals da (or is 1)
		case known(db) && !known(da):
			out[n-i] = db
		default:
			out[n-i] = unknownDim()
		}
	}
	return out
}

func product(ds []Dim) Dim {
	p := int64(1)
	for _, d := range ds {
		if !known(d) {
			if len(ds) == 1 {
				return d
			}
			return unknownDim()
		}
		p *= d.Value
	}
	return Dim{Value: p}
}

// inferredDim resolves a Reshape -1: the input's dims divided by the other
// target dims, cancelling symbols that appear on both sides.
func inferredDim(in, target []Dim, skip int) Dim {
	if in == nil {
		return unknownDim()
	}
	num := int64(1)
	syms := map[string]int{}
	for _, d := range in {
		switch {
		case d.Param != "":
			syms[d.Param]++
		case d.Value < 0:
			return unknownDim()
		default:
			num *= d.Value
		}
	}
	den := int64(1)
	for i, d := range target {
		if i == skip {
			continue
		}
		switch {
		case d.Param != "":
			if syms[d.Param] == 0 {
				return unknownDim()
			}
			syms[d.Param]--
		case d.Value <= 0:
			return unknownDim()
		default:
			den *= d.Value
		}
	}
	var left []string
	for k, c := range syms {
		for ; c > 0; c-- {
			left = append(left, k)
		}
	}
	if den == 0 || num%den != 0 {
		return unknownDim()
	}
	switch {
	case len(left) == 0:
		return Dim{Value: num / den}
	case len(left) == 1 && num == den:
		return Dim{Value: -1, Param: left[0]}
	}
	return unknownDim()
}

// constAxes reads axes from the attribute (before opset since) or a
// constant input.
func constAxes(n *node, in []*vinfo, since int) ([]int64, bool) {
	if n.opset < since {
		a, ok := n.attrInts("axes")
		return a, ok || n.op != "Unsqueeze"
	}
	if len(in) < 2 {
		return nil, n.op != "Unsqueeze"
	}
	if in[1].val == nil {
		return nil, false
	}
	out := make([]int64, len(in[1].val))
	for i, d := range in[1].val {
		if !known(d) && d.Value >= -int64(nn.MaxRank) && d.Param == "" {
			out[i] = d.Value
			continue
		}
		if !known(d) {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}

func inferSlice(n *node, in []*vinfo) *vinfo {
	x := in[0]
	out := &vinfo{dt: x.dt}
	if x.shape == nil {
		return out
	}
	var starts, ends, axes, steps []int64
	get := func(i int) ([]int64, bool) {
		if i >= len(in) || in[i].val == nil {
			return nil, i >= len(in)
		}
		v := make([]int64, len(in[i].val))
		for j, d := range in[i].val {
			if d.Param != "" {
				return nil, false
			}
			v[j] = d.Value
		}
		return v, true
	}
	if n.opset < 10 {
		starts, _ = n.attrInts("starts")
		ends, _ = n.attrInts("ends")
		axes, _ = n.attrInts("axes")
	} else {
		var ok1, ok2, ok3, ok4 bool
		starts, ok1 = get(1)
		ends, ok2 = get(2)
		axes, ok3 = get(3)
		steps, ok4 = get(4)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			out.shape = make([]Dim, len(x.shape))
			for i := range out.shape {
				out.shape[i] = unknownDim()
			}
			return out
		}
	}
	if len(starts) != len(ends) {
		return out
	}
	shape := append([]Dim{}, x.shape...)
	r := len(shape)
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			if i >= len(axes) {
				return out
			}
			ax = axes[i]
		}
		if ax < 0 {
			ax += int64(r)
		}
		if ax < 0 || ax >= int64(r) {
			return out
		}
		st := int64(1)
		if steps != nil && i < len(steps) {
			st = steps[i]
		}
		d := shape[ax]
		if !known(d) || st == 0 {
			shape[ax] = unknownDim()
			if x.val != nil && r == 1 && st == 1 && starts[i] >= 0 && ends[i] >= starts[i] && known(Dim{Value: int64(len(x.val))}) {
				s, e := starts[i], min(ends[i], int64(len(x.val)))
				if s <= e {
					out.val = append([]Dim{}, x.val[s:e]...)
					shape[ax] = Dim{Value: e - s}
				}
			}
			continue
		}
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d.Value
		}
		if e < 0 {
			e += d.Value
		}
		var cnt int64
		if st > 0 {
			s, e = min(max(s, 0), d.Value), min(max(e, 0), d.Value)
			if e > s {
				cnt = (e - s + st - 1) / st
			}
		} else {
			s, e = min(max(s, -1), d.Value-1), min(max(e, -1), d.Value-1)
			if s > e {
				cnt = (s - e - st - 1) / -st
			}
		}
		shape[ax] = Dim{Value: cnt}
		if x.val != nil && r == 1 && st == 1 && cnt > 0 && e <= int64(len(x.val)) {
			out.val = append([]Dim{}, x.val[s:e]...)
		}
	}
	out.shape = shape
	return out
}

// inferWindow computes Conv and pooling output shapes: batch and channels
// always, spatial dims when the input's are known.
func inferWindow(n *node, in []*vinfo) *vinfo {
	x := in[0]
	out := &vinfo{dt: x.dt}
	if x.shape == nil || len(x.shape) < 3 {
		return out
	}
	sp := len(x.shape) - 2
	ch := x.shape[1]
	var k []int64
	if n.op == "Conv" {
		if len(in) < 2 || in[1].shape == nil || len(in[1].shape) != len(x.shape) {
			return out
		}
		ch = in[1].shape[0]
		for _, d := range in[1].shape[2:] {
			k = append(k, d.Value)
		}
	} else {
		k, _ = n.attrInts("kernel_shape")
	}
	ints := func(name string, cnt int, def int64) []int64 {
		v, ok := n.attrInts(name)
		if ok && len(v) == cnt {
			return v
		}
		out := make([]int64, cnt)
		for i := range out {
			out[i] = def
		}
		return out
	}
	st, dl, pads := ints("strides", sp, 1), ints("dilations", sp, 1), ints("pads", 2*sp, 0)
	auto := n.attrString("auto_pad", "NOTSET")
	ceil := n.attrInt("ceil_mode", 0) != 0
	out.shape = append([]Dim{x.shape[0], ch}, make([]Dim, sp)...)
	for i := 0; i < sp; i++ {
		d := x.shape[2+i]
		if !known(d) || i >= len(k) || k[i] <= 0 || st[i] <= 0 {
			out.shape[2+i] = unknownDim()
			continue
		}
		ek := dl[i]*(k[i]-1) + 1
		var o int64
		switch auto {
		case "SAME_UPPER", "SAME_LOWER":
			o = (d.Value + st[i] - 1) / st[i]
		case "VALID":
			o = (d.Value-ek)/st[i] + 1
		default:
			num := d.Value + pads[i] + pads[i+sp] - ek
			if ceil {
				o = (num+st[i]-1)/st[i] + 1
				if (o-1)*st[i] >= d.Value+pads[i] {
					o--
				}
			} else {
				o = num/st[i] + 1
			}
		}
		out.shape[2+i] = Dim{Value: o}
	}
	return out
}

// String shows an inferred value as dtype[dims].
func (v ValueInfo) String() string { return fmt.Sprintf("%v%s", v.DType, v.ShapeString()) }
