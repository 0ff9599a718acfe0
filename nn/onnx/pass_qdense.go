package onnx

import (
	"fmt"

	"github.com/fennec-edge/fennec/nn"
)

// fuseQDense rewrites the dequantization tail of a dynamically quantized
// product, MatMulInteger -> Cast(to float) -> Mul(by the combined scale), as
// it comes out of `fennec model quantize` and onnxruntime's quantizer, into
// one internal MatMulIntegerScaled node: the int32 products are scaled into
// the f32 output as they are read, instead of an int32 tensor, a Cast pass
// and a Mul pass over it.
func fuseQDense(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool) []*node {
	for changed := true; changed; {
		changed = false
		g := newGraphIndex(nodes, consts, keep)
		for i, mm := range nodes {
			if mm.op == "ConvInteger" && mm.domain == "" && len(mm.outputs) == 1 && arityOK(mm) {
				if f, drop := convScaled(g, i, mm); f != nil {
					nodes = rewrite(nodes, drop, f)
					changed = true
					break
				}
				continue
			}
			if mm.op != "MatMulInteger" || mm.domain != "" || len(mm.outputs) != 1 || !arityOK(mm) {
				continue
			}
			ci := g.only(mm.outputs[0], "Cast")
			if ci < 0 || nodes[ci].attrInt("to", 0) != int64(nn.Float32) {
				continue
			}
			mi := g.only(nodes[ci].outputs[0], "Mul")
			if mi < 0 {
				continue
			}
			scale := other(nodes[mi], nodes[ci].outputs[0])
			if scale == "" {
				continue
			}
			ins := append([]string{}, mm.inputs...)
			for len(ins) < 4 {
				ins = append(ins, "")
			}
			f := &node{name: mm.name + "/scaled", op: "MatMulIntegerScaled", index: mm.index, opset: mm.opset,
				inputs: append(ins, scale), outputs: nodes[mi].outputs, attrs: map[string]*attr{}, wc: mm.wc}
			nodes = rewrite(nodes, []int{i, ci, mi}, f)
			changed = true
			break
		}
	}
	return nodes
}

// convScaled matches ConvInteger -> Cast(to float) -> Mul(by the scale)
// [-> Add(a constant f32 bias)], the dynamic quantizer's convolution, and
// returns the one ConvIntegerScaled node that replaces it.
func convScaled(g *graphIndex, i int, cv *node) (*node, []int) {
	ci := g.only(cv.outputs[0], "Cast")
	if ci < 0 || g.nodes[ci].attrInt("to", 0) != int64(nn.Float32) {
		return nil, nil
	}
	mi := g.only(g.nodes[ci].outputs[0], "Mul")
	if mi < 0 {
		return nil, nil
	}
	scale := other(g.nodes[mi], g.nodes[ci].outputs[0])
	if scale == "" {
		return nil, nil
	}
	drop := []int{i, ci, mi}
	outs, bias := g.nodes[mi].outputs, ""
	if ai := g.only(outs[0], "Add"); ai >= 0 {
		if b := other(g.nodes[ai], outs[0]); b != "" {
			if t := g.consts[b]; t != nil && t.DType == nn.Float32 {
				bias, outs = b, g.nodes[ai].outputs
				drop = append(drop, ai)
			}
		}
	}
	ins := append([]string{}, cv.inputs...)
	for len(ins) < 4 {
		ins = append(ins, "")
	}
	return &node{name: cv.name + "/scaled", op: "ConvIntegerScaled", index: cv.index, opset: cv.opset,
		inputs: append(ins, scale, bias), outputs: outs, attrs: cv.attrs, wc: cv.wc}, drop
}

// chanParam reports whether t broadcasts against a [n, m, ...] tensor of
// rank r as one value per channel (axis 1): a scalar shape of m values, or
// [m, 1, ...] / [1, m, 1, ...] with the trailing ones of rank r.
func chanParam(t *nn.Tensor, m, r int) bool {
	if t.Len() != m || len(t.Shape) > r {
		return false
	}
	s := t.Shape
	for len(s) > 0 && s[0] == 1 && len(s) > r-1 {
		s = s[1:]
	}
	if len(s) != r-1 || s[0] != m {
		return false
	}
	for _, d := range s[1:] {
		if d != 1 {
			return false
		}
	}
	return true
}

// convIntegerScaled is ConvInteger(x, w, x_zero, w_zero) cast to f32, times
// scale and plus bias (optional): with a scalar or per-channel scale and
// bias the int32 accumulators become the f32 output in one pass, rounded
// as the Mul and the Add round (a product, then a sum: no fused
// multiply-add); any other shapes take the separate steps.
func convIntegerScaled(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	scale, bias := in[4], in[5]
	if scale == nil || scale.DType != nn.Float32 || (bias != nil && bias.DType != nn.Float32) {
		return nil, fmt.Errorf("%w: ConvIntegerScaled scale %v bias %v", ErrInvalid, scale, bias)
	}
	cv, err := convInteger(c, in[:4])
	if err != nil {
		return nil, err
	}
	acc := cv[0]
	r := len(acc.Shape)
	m := acc.Shape[1]
	fits := func(t *nn.Tensor) bool { return t == nil || t.Len() == 1 && len(t.Shape) <= r || chanParam(t, m, r) }
	if !fits(scale) || !fits(bias) {
		return scaleAccSteps(c, acc, scale, bias)
	}
	var sb [nn.MaxRank]int
	out, err := c.allocFull(nn.Float32, append(sb[:0], acc.Shape...))
	if err != nil {
		return nil, err
	}
	if len(out.F32) == 0 {
		return c.one(out), nil
	}
	plane := len(acc.I32) / (acc.Shape[0] * m)
	for i := 0; i < len(acc.I32); i += plane {
		oc := (i / plane) % m
		s := scale.F32[min(oc, len(scale.F32)-1)]
		a, o := acc.I32[i:i+plane], out.F32[i:i+plane]
		if bias == nil {
			for j, v := range a {
				o[j] = float32(v) * s
			}
			continue
		}
		b := bias.F32[min(oc, len(bias.F32)-1)]
		for j, v := range a {
			o[j] = float32(float32(v)*s) + b
		}
	}
	return c.one(out), nil
}

// matMulIntegerScaled is MatMulInteger(a, b, a_zero, b_zero) cast to f32
// and multiplied by scale (a scalar or one value per output column, the
// quantizer's a_scale x b_scale); any other scale takes the three steps.
func matMulIntegerScaled(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	scale := in[4]
	if scale == nil || scale.DType != nn.Float32 {
		return nil, fmt.Errorf("%w: MatMulIntegerScaled scale %v", ErrInvalid, scale)
	}
	mm, err := matMulInteger(c, in[:4])
	if err != nil {
		return nil, err
	}
	acc := mm[0]
	n := 1
	if len(acc.Shape) > 0 {
		n = acc.Shape[len(acc.Shape)-1]
	}
	perCol := scale.Len() == n && len(scale.Shape) == 1
	if scale.Len() != 1 && !perCol || len(scale.Shape) > len(acc.Shape) {
		return scaleAccSteps(c, acc, scale, nil)
	}
	var sb [nn.MaxRank]int
	shape := append(sb[:0], acc.Shape...)
	out, err := c.allocFull(nn.Float32, shape)
	if err != nil {
		return nil, err
	}
	if len(out.F32) == 0 {
		return c.one(out), nil
	}
	if !perCol {
		s := scale.F32[0]
		for i, v := range acc.I32 {
			out.F32[i] = float32(v) * s
		}
		return c.one(out), nil
	}
	sc := scale.F32[:n]
	for r := 0; r < len(acc.I32); r += n {
		a, o := acc.I32[r:r+n], out.F32[r:r+n]
		for j, v := range a {
			o[j] = float32(v) * sc[j]
		}
	}
	return c.one(out), nil
}

func init() {
	reg("MatMulIntegerScaled", opDef{since: 1, minIn: 5, maxIn: 5, run: matMulIntegerScaled, internal: true})
	reg("ConvIntegerScaled", opDef{since: 1, attrs: []string{"auto_pad", "dilations", "kernel_shape", "pads", "strides", "group"}, minIn: 2, maxIn: 6, run: convIntegerScaled, internal: true})
}

// scaleAccSteps is the fused int32 -> f32 epilogues' path for any other
// shapes of scale and bias: the Cast, the Mul and the Add (when bias is not
// nil) as the separate nodes compute them, with their broadcasting.
func scaleAccSteps(c *kctx, acc, scale, bias *nn.Tensor) ([]*nn.Tensor, error) {
	accf, err := c.alloc(nn.Float32, acc.Shape)
	if err != nil {
		return nil, err
	}
	for i, v := range acc.I32 {
		accf.F32[i] = float32(v)
	}
	out, err := binaryOp(c, bMul, accf, scale)
	if err != nil {
		return nil, err
	}
	if bias != nil {
		if out, err = binaryOp(c, bAdd, out, bias); err != nil {
			return nil, err
		}
	}
	return c.one(out), nil
}
