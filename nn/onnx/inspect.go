package onnx

import (
	"sort"

	"github.com/fennec-edge/fennec/nn"
)

// Info summarises a model for `fennec model inspect`.
type Info struct {
	Name      string      `json:"name"`
	IRVersion int64       `json:"ir_version"`
	Opset     int         `json:"opset"`
	Producer  string      `json:"producer,omitempty"`
	Inputs    []ValueInfo `json:"inputs"`
	Outputs   []ValueInfo `json:"outputs"`
	// Inferred holds the outputs' shapes as InferShapes derives them from
	// the inputs (symbolic dims tied to the inputs' names).
	Inferred    []ValueInfo       `json:"inferred_outputs"`
	Nodes       int               `json:"nodes"`     // all graphs, subgraphs included
	Operators   map[string]int    `json:"operators"` // op type -> count, subgraphs included
	Parameters  int64             `json:"parameters"`
	Unsupported []UnsupportedNode `json:"unsupported"`
	// Digest pins the model in a manifest's [nn.sha256] (Model.Digest);
	// External lists the external data files it covers.
	Digest   string         `json:"digest"`
	External []ExternalFile `json:"external_data,omitempty"`
}

// Info describes m. Parameters counts the elements of every initializer and
// Constant node of floating type (weights), subgraphs included.
func (m *Model) Info() Info {
	info := Info{Name: m.Name, IRVersion: m.IRVersion, Opset: m.Opset, Producer: m.Producer,
		Inputs: m.Inputs(), Outputs: m.Outputs(), Operators: map[string]int{}, Unsupported: m.Unsupported(),
		Digest: m.Digest(), External: m.ExternalData()}
	shapes := m.InferShapes()
	for _, o := range info.Outputs {
		vi := shapes[o.Name]
		vi.Name = o.Name
		info.Inferred = append(info.Inferred, vi)
	}
	if info.Unsupported == nil {
		info.Unsupported = []UnsupportedNode{}
	}
	var walk func(g *graph)
	walk = func(g *graph) {
		for _, t := range g.inits {
			if t.DType == nn.Float32 {
				info.Parameters += int64(t.Len())
			}
		}
		for _, n := range g.nodes {
			info.Nodes++
			info.Operators[n.op]++
			for _, a := range n.attrs {
				if a.t != nil && n.op == "Constant" && a.t.DType == nn.Float32 {
					info.Parameters += int64(a.t.Len())
				}
				if a.g != nil {
					walk(a.g)
				}
			}
		}
	}
	walk(m.graph)
	return info
}

// OperatorNames returns the operator types in Info.Operators, sorted.
func (i Info) OperatorNames() []string {
	out := make([]string, 0, len(i.Operators))
	for k := range i.Operators {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
