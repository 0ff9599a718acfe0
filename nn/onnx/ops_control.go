package onnx

import (
	"fmt"

	"github.com/fennec-edge/fennec/nn"
)

// ifOp runs the then_branch or else_branch subgraph, which reads the
// enclosing scope, and returns its outputs.
func ifOp(c *kctx, in []*nn.Tensor) ([]*nn.Tensor, error) {
	cond := in[0]
	if cond.DType != nn.Bool || len(cond.U8) != 1 {
		return nil, fmt.Errorf("%w: condition is %v, want a one-element bool", ErrInvalid, cond)
	}
	name := "else_branch"
	if cond.U8[0] != 0 {
		name = "then_branch"
	}
	a, ok := c.n.attrs[name]
	if !ok || a.g == nil {
		return nil, fmt.Errorf("%w: %s is missing", ErrInvalid, name)
	}
	p, ok := c.s.subs[a.g]
	if !ok {
		return nil, fmt.Errorf("%s was not prepared", name)
	}
	if len(a.g.outputs) != len(c.n.outputs) {
		return nil, fmt.Errorf("%w: %s has %d outputs, the node %d", ErrInvalid, name, len(a.g.outputs), len(c.n.outputs))
	}
	res, err := c.s.exec(p, nil, c.scope, c.rs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := make([]*nn.Tensor, len(a.g.outputs))
	for i, o := range a.g.outputs {
		out[i] = res[o.Name]
	}
	return out, nil
}

func init() {
	reg("If", opDef{since: 1, attrs: []string{"then_branch", "else_branch"}, minIn: 1, maxIn: 1, run: ifOp, subgraphs: true})
}
