package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/nn"
)

// fuseQDQ rewrites the QDQ form of a static int8 model, as `fennec model
// quantize --mode static` and onnxruntime's quantize_static write it,
//
//	x_q -> DequantizeLinear -> Conv(w = DQ(w_q), b = DQ(b_q)) -> QuantizeLinear -> y_q
//	a_q -> DequantizeLinear -> MatMul(b = DQ(b_q))            -> QuantizeLinear -> y_q
//
// into QLinearConv / QLinearMatMul on the int8 data (onnxruntime's QDQ
// selectors do the same, and run the result on the same integer
// arithmetic, so fennec's outputs on the file keep equal to onnxruntime's):
// the products accumulate exactly in int32 and are requantised once,
// instead of dequantizing the activation and the weights to f32, running
// the f32 operator and quantizing its output. Every parameter must be a
// constant of the shape the int8 operator takes: activation and output
// scales and zero points one value each (u8 or i8), weights i8 with zero
// zero points, one scale or one per output channel along the output
// channel axis, the bias i32 with zero zero points and scales equal, bit
// for bit, to x_scale * w_scale (what the int8 operator assumes); the
// float value between the operator and the QuantizeLinear must have no
// other reader and not be asked for. dq holds the DequantizeLinear nodes
// that constant folding ran, by output (the weights' and the bias's).
// Anything else is left as it is and runs in f32.
func fuseQDQ(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool, dq map[string]*node) []*node {
	for changed := true; changed; {
		changed = false
		g := newGraphIndex(nodes, consts, keep)
		for i, n := range nodes {
			if n.domain != "" || len(n.outputs) != 1 || !arityOK(n) || (n.op != "Conv" && n.op != "MatMul") {
				continue
			}
			f, drop := qdqMatch(g, dq, i, n)
			if f == nil {
				continue
			}
			nodes = rewrite(nodes, drop, f)
			changed = true
			break
		}
	}
	return nodes
}

// qdqParams returns the quantized input, scale and zero point names of a
// DequantizeLinear (the zero point "" when absent).
func qdqParams(d *node) (q, s, z string) {
	q, s = d.inputs[0], d.inputs[1]
	if len(d.inputs) > 2 {
		z = d.inputs[2]
	}
	return q, s, z
}

// scalarQ reports whether scale s and zero point z (both constants) are
// one value each, s positive and finite, z u8 or i8.
func scalarQ(consts map[string]*nn.Tensor, s, z string) bool {
	st, zt := consts[s], consts[z]
	if st == nil || zt == nil || st.DType != nn.Float32 || st.Len() != 1 || len(st.Shape) > 1 || zt.Len() != 1 || len(zt.Shape) > 1 {
		return false
	}
	if zt.DType != nn.Uint8 && zt.DType != nn.Int8 {
		return false
	}
	v := st.F32[0]
	return v > 0 && !math.IsInf(float64(v), 0)
}

func qdqMatch(g *graphIndex, dq map[string]*node, i int, n *node) (*node, []int) {
	consts := g.consts
	// the activation: a live DequantizeLinear with scalar parameters
	pi, ok := g.producer[n.inputs[0]]
	if !ok {
		return nil, nil
	}
	dx := g.nodes[pi]
	if dx.op != "DequantizeLinear" || dx.domain != "" || !arityOK(dx) || dx.attrInt("block_size", 0) != 0 {
		return nil, nil
	}
	xq, xs, xz := qdqParams(dx)
	if !scalarQ(consts, xs, xz) || consts[xq] != nil {
		return nil, nil
	}
	// the weight: a folded DequantizeLinear of constant i8
	dw := dq[n.inputs[1]]
	if dw == nil || dw.attrInt("block_size", 0) != 0 {
		return nil, nil
	}
	wq, ws, wz := qdqParams(dw)
	wt, wst := consts[wq], consts[ws]
	if wt == nil || wst == nil || wt.DType != nn.Int8 || wst.DType != nn.Float32 || len(wst.Shape) > 1 {
		return nil, nil
	}
	var m, axis int
	switch n.op {
	case "Conv":
		if len(wt.Shape) < 3 {
			return nil, nil
		}
		m, axis = wt.Shape[0], 0
	case "MatMul":
		if len(wt.Shape) != 2 {
			return nil, nil
		}
		m, axis = wt.Shape[1], 1
	}
	if ns := wst.Len(); ns != 1 {
		a := int(dw.attrInt("axis", 1))
		if a < 0 {
			a += len(wt.Shape)
		}
		if ns != m || a != axis {
			return nil, nil
		}
	}
	for _, v := range wst.F32 {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return nil, nil
		}
	}
	if wz != "" {
		zt := consts[wz]
		if zt == nil || zt.DType != nn.Int8 || zt.Len() != wst.Len() || len(zt.Shape) > 1 {
			return nil, nil
		}
		for _, v := range zt.U8 {
			if v != 0 {
				return nil, nil
			}
		}
	}
	// the output: read only by a QuantizeLinear with scalar parameters
	qi := g.only(n.outputs[0], "QuantizeLinear")
	if qi < 0 {
		return nil, nil
	}
	qn := g.nodes[qi]
	if qn.inputs[0] != n.outputs[0] || len(qn.inputs) < 3 || qn.attrInt("block_size", 0) != 0 || qn.attrInt("saturate", 1) != 1 {
		return nil, nil
	}
	ys, yz := qn.inputs[1], qn.inputs[2]
	if !scalarQ(consts, ys, yz) {
		return nil, nil
	}
	if od := qn.attrInt("output_dtype", 0); od != 0 && nn.DType(od) != consts[yz].DType {
		return nil, nil
	}
	if wz == "" {
		wz = fmt.Sprintf("%s#%d/w_zero_point", n.name, n.index)
		consts[wz] = &nn.Tensor{DType: nn.Int8, Shape: append([]int{}, wst.Shape...), U8: make([]uint8, wst.Len())}
	}
	var out *node
	switch n.op {
	case "Conv":
		ins := []string{xq, xs, xz, wq, ws, wz, ys, yz}
		if len(n.inputs) > 2 && n.inputs[2] != "" {
			b := qdqBias(consts, dq[n.inputs[2]], consts[xs].F32[0], wst.F32, m)
			if b == "" {
				return nil, nil
			}
			ins = append(ins, b)
		}
		out = &node{name: n.name + "/qlinear", op: "QLinearConv", index: n.index, opset: n.opset,
			inputs: ins, outputs: qn.outputs, attrs: n.attrs, wc: n.wc}
	case "MatMul":
		if len(n.inputs) != 2 {
			return nil, nil
		}
		out = &node{name: n.name + "/qlinear", op: "QLinearMatMul", index: n.index, opset: n.opset,
			inputs: []string{xq, xs, xz, wq, ws, wz, ys, yz}, outputs: qn.outputs, attrs: map[string]*attr{}, wc: n.wc}
		if out.wc == nil {
			out.wc = &winCache{}
		}
	}
	return out, []int{i, qi}
}

// qdqBias returns the i32 bias of a folded DequantizeLinear whose scale is
// x_scale * w_scale (per channel, bit for bit) and zero point 0; "" when it
// is anything else.
func qdqBias(consts map[string]*nn.Tensor, d *node, xs float32, ws []float32, m int) string {
	if d == nil || d.attrInt("block_size", 0) != 0 {
		return ""
	}
	bq, bs, bz := qdqParams(d)
	bt, st := consts[bq], consts[bs]
	if bt == nil || st == nil || bt.DType != nn.Int32 || len(bt.Shape) != 1 || bt.Len() != m || st.DType != nn.Float32 || len(st.Shape) > 1 {
		return ""
	}
	if st.Len() != len(ws) {
		return ""
	}
	if st.Len() > 1 && d.attrInt("axis", 1) != 0 && d.attrInt("axis", 1) != -1 {
		return ""
	}
	for i, v := range st.F32 {
		if v != xs*ws[i] {
			return ""
		}
	}
	if bz != "" {
		zt := consts[bz]
		if zt == nil || zt.DType != nn.Int32 || zt.Len() != st.Len() {
			return ""
		}
		for _, v := range zt.I32 {
			if v != 0 {
				return ""
			}
		}
	}
	return bq
}
