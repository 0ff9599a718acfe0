package onnx

import (
	"slices"

	"github.com/fennec-edge/fennec/nn"
)

// opDef is one operator: the first opset whose semantics the kernel
// implements (older opsets differ), the attributes it understands, its input
// arity and where it runs.
type opDef struct {
	since        int
	attrs        []string
	minIn, maxIn int // maxIn < 0: variadic
	run          func(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error)
	backend      bool // its products run on the gpu.Backend
	foldable     bool // deterministic: run once at NewSession when all inputs are constant
	subgraphs    bool // reads the enclosing scope
	internal     bool // made by a pass, never read from a model file
}

func (d opDef) hasAttr(name string) bool { return slices.Contains(d.attrs, name) }

// arityOK reports whether n has as many inputs as its operator takes. The
// rewrite passes run before any node has been executed (where runNode checks
// the count), so they test this before reading a node's inputs by index.
func arityOK(n *node) bool {
	d, ok := registry[n.op]
	return ok && len(n.inputs) >= d.minIn && (d.maxIn < 0 || len(n.inputs) <= d.maxIn)
}

// registry maps op type (default domain) to its kernel. Filled by init
// functions in the ops_*.go files.
var registry = map[string]opDef{}

func reg(op string, d opDef) {
	if _, dup := registry[op]; dup {
		panic("onnx: operator registered twice: " + op)
	}
	registry[op] = d
}
