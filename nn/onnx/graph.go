package onnx

import (
	"fmt"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// graph is the IR: nodes in a topological order, the graph's inputs and
// outputs, and its constants (initializers, and Constant nodes folded in by
// NewSession).
type graph struct {
	name      string
	nodes     []*node // topologically sorted by sortAndCheck
	inputs    []ValueInfo
	outputs   []ValueInfo
	valueInfo map[string]ValueInfo
	inits     map[string]*nn.Tensor
	depth     int
}

type node struct {
	name, op, domain string
	index            int // position in the file, for errors
	opset            int // of the node's domain
	inputs, outputs  []string
	attrs            map[string]*attr
	epi              *epilogue // FusedConv's elementwise tail (pass_epilogue.go)
	wc               *winCache // the window of the last input shape (Conv, pooling); shared by copies of the node, whose attributes are the same
}

func (n *node) String() string {
	name := n.name
	if name == "" {
		name = fmt.Sprintf("#%d", n.index)
	}
	return fmt.Sprintf("%q (%s)", name, n.op)
}

type attr struct {
	kind   onnxpb.AttributeProto_AttributeType
	f      float32
	i      int64
	s      string
	floats []float32
	ints   []int64
	strs   []string
	t      *nn.Tensor
	g      *graph
}

// sortAndCheck orders g.nodes topologically (Kahn's algorithm, stable in file
// order), refusing inputs that nothing defines and cycles. A node's inputs
// include the names its subgraphs read from this graph (an If branch reading
// a value computed beside the If), which are converted, and so sorted, first.
func (g *graph) sortAndCheck(defined, outer map[string]bool, producers map[string]int) error {
	indeg := make([]int, len(g.nodes))
	users := make([][]int, len(g.nodes))
	for i, n := range g.nodes {
		seen := map[string]bool{}
		for _, in := range nodeReads(n) {
			if seen[in] {
				continue
			}
			seen[in] = true
			if in == "" || defined[in] {
				continue
			}
			p, ok := producers[in]
			if !ok {
				if outer[in] {
					continue
				}
				return fmt.Errorf("%w: node %s: input %q is not defined by any input, initializer or node", ErrInvalid, n, in)
			}
			indeg[i]++
			users[p] = append(users[p], i)
		}
	}
	order := make([]*node, 0, len(g.nodes))
	ready := []int{}
	for i := range g.nodes {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, g.nodes[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(order) != len(g.nodes) {
		for i, d := range indeg {
			if d > 0 {
				return fmt.Errorf("%w: the graph has a cycle through node %s", ErrInvalid, g.nodes[i])
			}
		}
	}
	g.nodes = order
	for _, o := range g.outputs {
		if _, ok := producers[o.Name]; !ok && !defined[o.Name] && !outer[o.Name] {
			return fmt.Errorf("%w: output %q is not produced by any node", ErrInvalid, o.Name)
		}
	}
	return nil
}

// attribute accessors; the second result reports presence.
func (n *node) attrInt(name string, def int64) int64 {
	if a, ok := n.attrs[name]; ok {
		return a.i
	}
	return def
}

func (n *node) attrFloat(name string, def float32) float32 {
	if a, ok := n.attrs[name]; ok {
		return a.f
	}
	return def
}

func (n *node) attrString(name, def string) string {
	if a, ok := n.attrs[name]; ok {
		return a.s
	}
	return def
}

func (n *node) attrInts(name string) ([]int64, bool) {
	a, ok := n.attrs[name]
	if !ok {
		return nil, false
	}
	return a.ints, true
}
