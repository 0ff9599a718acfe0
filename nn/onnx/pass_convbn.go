package onnx

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/nn"
)

// fuseConvBN rewrites Conv -> BatchNormalization (inference mode, all
// parameters constant, the Conv output read by nothing else) into one Conv
// whose weights and bias absorb the normalisation:
//
//	a = scale / sqrt(var + eps);  W' = W * a (per output channel);  B' = (B - mean) * a + bias
//
// It returns the new node list and adds W' and B' to consts. The model's own
// graph is not changed: the fused Conv is a new node.
func fuseConvBN(nodes []*node, consts map[string]*nn.Tensor, keep map[string]bool) []*node {
	producer := map[string]int{}
	readers := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.outputs {
			producer[o] = i
		}
		for _, in := range nodeReads(n) {
			readers[in]++
		}
	}
	drop := map[int]bool{}
	out := append([]*node(nil), nodes...)
	for i, bn := range nodes {
		if bn.op != "BatchNormalization" || len(bn.inputs) != 5 || len(bn.outputs) != 1 || bn.attrInt("training_mode", 0) != 0 {
			continue
		}
		ci, ok := producer[bn.inputs[0]]
		if !ok || drop[ci] {
			continue
		}
		conv := nodes[ci]
		if conv.op != "Conv" || len(conv.outputs) != 1 || !arityOK(conv) || readers[conv.outputs[0]] != 1 || keep[conv.outputs[0]] {
			continue
		}
		w := consts[conv.inputs[1]]
		var b *nn.Tensor
		if len(conv.inputs) > 2 && conv.inputs[2] != "" {
			if b = consts[conv.inputs[2]]; b == nil {
				continue
			}
		}
		p := make([]*nn.Tensor, 4)
		okp := w != nil && w.DType == nn.Float32 && len(w.Shape) >= 3
		for k := range p {
			p[k] = consts[bn.inputs[1+k]]
			okp = okp && p[k] != nil && p[k].DType == nn.Float32 && w != nil && len(w.Shape) > 0 && p[k].Len() == w.Shape[0]
		}
		if !okp || (b != nil && (b.DType != nn.Float32 || b.Len() != w.Shape[0])) {
			continue
		}
		m := w.Shape[0]
		per := w.Len() / m
		eps := float64(bn.attrFloat("epsilon", 1e-5))
		nw := &nn.Tensor{DType: nn.Float32, Shape: append([]int(nil), w.Shape...), F32: make([]float32, w.Len())}
		nb := &nn.Tensor{DType: nn.Float32, Shape: []int{m}, F32: make([]float32, m)}
		for o := 0; o < m; o++ {
			a := float32(float64(p[0].F32[o]) / math.Sqrt(float64(p[3].F32[o])+eps))
			for j := 0; j < per; j++ {
				nw.F32[o*per+j] = w.F32[o*per+j] * a
			}
			bias := float32(0)
			if b != nil {
				bias = b.F32[o]
			}
			nb.F32[o] = (bias-p[2].F32[o])*a + p[1].F32[o]
		}
		base := fmt.Sprintf("%s/fused_bn#%d", conv.name, ci)
		consts[base+"/W"], consts[base+"/B"] = nw, nb
		fused := *conv
		fused.inputs = []string{conv.inputs[0], base + "/W", base + "/B"}
		fused.outputs = bn.outputs
		out[ci] = &fused
		drop[i] = true
	}
	res := out[:0]
	for i, n := range out {
		if !drop[i] {
			res = append(res, n)
		}
	}
	return res
}
