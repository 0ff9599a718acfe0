package onnx

import (
	"math"

	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// foldBN folds each inference BatchNormalization that follows a Conv with
// constant weights in the main graph into the Conv's weights and bias,
// before quantization (as onnxruntime's quant_pre_process does): the
// quantized Conv then carries the normalization in its per-channel weight
// scales, instead of an f32 BatchNormalization pass after every int8
// convolution. w' = w * s and b' = (b - mean) * s + beta per output
// channel, s = gamma / sqrt(var + eps), in float64 rounded once. The Conv
// output must be read by the BatchNormalization alone and not be a graph
// output; every parameter a constant f32 of one value per channel.
func (q *quantizer) foldBN() int {
	g := q.mp.Graph
	sc := []scope{graphScope(g)}
	readers := map[string]int{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			readers[in]++
		}
		for _, a := range n.Attribute {
			if a.G != nil || len(a.Graphs) > 0 {
				return 0 // names read inside subgraphs are not counted here: leave such models alone
			}
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.Output {
		outputs[o.GetName()] = true
	}
	producer := map[string]*pb.NodeProto{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	local := map[string]bool{}
	for _, v := range g.Input {
		local[v.GetName()] = true
	}
	for o := range producer {
		local[o] = true
	}
	get := func(name string, m int) []float32 {
		t, err := q.constF32(sc, local, name)
		if err != nil || t == nil || t.Len() != m || len(t.Shape) != 1 {
			return nil
		}
		return t.F32
	}
	folded := 0
	var keep []*pb.NodeProto
	drop := map[*pb.NodeProto]bool{}
	for _, bn := range g.Node {
		if bn.GetOpType() != "BatchNormalization" || bn.GetDomain() != "" || len(bn.Input) != 5 || len(bn.Output) != 1 {
			continue
		}
		if a := attrOf(bn, "training_mode"); a != nil && a.GetI() != 0 {
			continue
		}
		if a := attrOf(bn, "spatial"); a != nil && a.GetI() != 1 {
			continue
		}
		cv := producer[bn.Input[0]]
		if cv == nil || cv.GetOpType() != "Conv" || cv.GetDomain() != "" || len(cv.Output) != 1 || len(cv.Input) < 2 ||
			readers[cv.Output[0]] != 1 || outputs[cv.Output[0]] {
			continue
		}
		w, err := q.constF32(sc, local, cv.Input[1])
		if err != nil || w == nil || len(w.Shape) < 3 || w.Shape[0] == 0 {
			continue
		}
		m := w.Shape[0]
		gamma, beta, mean, vr := get(bn.Input[1], m), get(bn.Input[2], m), get(bn.Input[3], m), get(bn.Input[4], m)
		if gamma == nil || beta == nil || mean == nil || vr == nil {
			continue
		}
		var bias []float32
		if len(cv.Input) > 2 && cv.Input[2] != "" {
			if bias = get(cv.Input[2], m); bias == nil {
				continue
			}
		}
		eps := float64(1e-5)
		if a := attrOf(bn, "epsilon"); a != nil {
			eps = float64(a.GetF())
		}
		per := w.Len() / m
		nw := make([]float32, w.Len())
		nb := make([]float32, m)
		ok := true
		for oc := 0; oc < m; oc++ {
			s := float64(gamma[oc]) / math.Sqrt(float64(vr[oc])+eps)
			if math.IsNaN(s) || math.IsInf(s, 0) {
				ok = false
				break
			}
			for i := oc * per; i < (oc+1)*per; i++ {
				nw[i] = float32(float64(w.F32[i]) * s)
			}
			b := 0.0
			if bias != nil {
				b = float64(bias[oc])
			}
			nb[oc] = float32((b-float64(mean[oc]))*s + float64(beta[oc]))
		}
		if !ok {
			continue
		}
		wName := q.fresh(cv.Input[1] + "_bn_folded")
		bName := q.fresh(bn.GetName() + "_bias_bn_folded")
		g.Initializer = append(g.Initializer, f32Proto(wName, w.Shape, nw), f32Proto(bName, []int{m}, nb))
		q.replace(cv.Input[1])
		if bias != nil {
			q.replace(cv.Input[2])
		}
		for _, in := range bn.Input[1:] {
			q.replace(in)
		}
		ins := []string{cv.Input[0], wName, bName}
		cv.Input = ins
		cv.Output = []string{bn.Output[0]}
		drop[bn] = true
		folded++
		q.rep.Folded = append(q.rep.Folded, FoldedNode{Node: bn.GetName(), Into: cv.GetName()})
	}
	for _, n := range g.Node {
		if !drop[n] {
			keep = append(keep, n)
		}
	}
	g.Node = keep
	return folded
}
