// Package graph runs the operator's ONNX models from a Go guest through
// fennec_nn (capability "nn"): a model granted to the module by name
// (manifest [nn] models) becomes a Graph, whose Run takes and returns
// sdk tensors, so outputs stay on the host for sdk.Softmax, sdk.ArgMax or
// thresholds without a copy through guest memory.
//
//	g, err := graph.Load("vad")
//	outs, err := g.Run(audio, state, sr)
//	p, err := outs[0].Read(nil)
//
// int64 model values travel as sdk.I32 tensors and int8/uint8/bool ones
// as sdk.I8 (docs/ABI.md). Built for anything but GOOS=wasip1 every
// function returns sdk.ErrNotWasm.
package graph

import (
	"unsafe"

	"github.com/fennec-edge/fennec/sdk"
)

const codeNotWasm = -1000

func check(op string, r int32) (int32, error) {
	if r >= 0 {
		return r, nil
	}
	if r == codeNotWasm {
		return 0, sdk.ErrNotWasm
	}
	return 0, &sdk.Error{Op: op, Code: sdk.Code(r), Msg: sdk.LastError()}
}

// Graph is a loaded model of this instance.
type Graph struct {
	h       int32
	Inputs  []Value
	Outputs []Value
}

// Value describes a graph input or output: its name, the sdk dtype that
// carries it, and its declared dimensions (-1 for a symbolic one; nil
// when the model declares no shape).
type Value struct {
	Name  string
	DType sdk.DType
	Shape []int
}

// Load opens the model the operator named name, granted to this module.
// Its weights count against the instance's tensor quota until Free.
func Load(name string) (*Graph, error) {
	b := []byte(name)
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	h, err := check("graph.load", gLoad(p, int32(len(b))))
	if err != nil {
		return nil, err
	}
	g := &Graph{h: h}
	if g.Inputs, err = g.values(0); err == nil {
		g.Outputs, err = g.values(1)
	}
	if err != nil {
		g.Free()
		return nil, err
	}
	return g, nil
}

func (g *Graph) values(which int32) ([]Value, error) {
	n, err := check("graph.io_count", gIOCount(g.h, which))
	if err != nil {
		return nil, err
	}
	vs := make([]Value, n)
	for i := range vs {
		var buf [256]byte
		l, err := check("graph.io_name", gIOName(g.h, which, int32(i), unsafe.Pointer(&buf[0]), int32(len(buf))))
		if err != nil {
			return nil, err
		}
		name := make([]byte, l)
		if int(l) <= len(buf) {
			copy(name, buf[:l])
		} else if _, err := check("graph.io_name", gIOName(g.h, which, int32(i), unsafe.Pointer(&name[0]), l)); err != nil {
			return nil, err
		}
		dt, err := check("graph.io_dtype", gIODType(g.h, which, int32(i)))
		if err != nil {
			return nil, err
		}
		vs[i] = Value{Name: string(name), DType: sdk.DType(dt)}
		var dims [16]int32
		rank := gIOShape(g.h, which, int32(i), unsafe.Pointer(&dims[0]), int32(len(dims)))
		if rank >= 0 {
			vs[i].Shape = make([]int, rank)
			for j := range vs[i].Shape {
				vs[i].Shape[j] = int(dims[j])
			}
		}
	}
	return vs, nil
}

// Run runs the model on one tensor per input (in order) and returns one
// new tensor per output, which the caller frees.
func (g *Graph) Run(inputs ...*sdk.Tensor) ([]*sdk.Tensor, error) {
	hs := make([]int32, len(inputs)+1)
	for i, t := range inputs {
		hs[i] = t.Handle()
	}
	outs := make([]int32, len(g.Outputs)+1)
	n, err := check("graph.run", gRun(g.h, unsafe.Pointer(&hs[0]), int32(len(inputs)), unsafe.Pointer(&outs[0]), int32(len(g.Outputs))))
	if err != nil {
		return nil, err
	}
	ts := make([]*sdk.Tensor, n)
	for i := range ts {
		ts[i] = sdk.Adopt(outs[i])
	}
	return ts, nil
}

// Free releases the graph and its quota.
func (g *Graph) Free() error {
	if g == nil || g.h == 0 {
		return nil
	}
	_, err := check("graph.free", gFree(g.h))
	g.h = 0
	return err
}
