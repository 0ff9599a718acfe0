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
		return c.one(out), nil
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
}
