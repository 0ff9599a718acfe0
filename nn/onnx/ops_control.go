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
	// in a Run, the frame of this depth keeps the branch's result map and
	// the output slice Run after Run (exec reads the outputs at once)
	var f *execFrame
	var res map[string]*nn.Tensor
	if c.rs != nil {
		f = c.rs.frames[c.rs.depth-1]
		if f.sub == nil {
			f.sub = map[string]*nn.Tensor{}
		}
		res = f.sub
	}
	res, err := c.s.exec(p, nil, c.scope, c.rs, res)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []*nn.Tensor
	if f != nil && cap(f.outs) >= len(a.g.outputs) {
		out = f.outs[:len(a.g.outputs)]
	} else {
		out = make([]*nn.Tensor, len(a.g.outputs))
		if f != nil {
			f.outs = out
		}
	}
	for i, o := range a.g.outputs {
		out[i] = res[o.Name]
	}
	clear(res)
	return out, nil
}

func init() {
	reg("If", opDef{since: 1, attrs: []string{"then_branch", "else_branch"}, minIn: 1, maxIn: 1, run: ifOp, subgraphs: true})
}
