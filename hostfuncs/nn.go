package hostfuncs

import (
	"context"
	"encoding/binary"
	"errors"
	"math"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/tetratelabs/wazero/api"
)

// ModuleNN is the import module of fennec's own model group (capability
// CapNN): graphs of the operator's models whose inputs and outputs are
// fennec_tensor handles, so results stay on the host for tensor ops.
const ModuleNN = "fennec_nn"

// CapNN is the capability of the fennec_nn group.
const CapNN = "nn"

func nnGroup() Group {
	return Group{
		Module:     ModuleNN,
		Capability: CapNN,
		Doc:        "models: run a granted ONNX model on fennec_tensor handles",
		Funcs: []Func{
			{"graph_load", i32s(2), i32s(1), host(graphLoad)},
			{"graph_free", i32s(1), i32s(1), host(graphFree)},
			{"graph_io_count", i32s(2), i32s(1), host(graphIOCount)},
			{"graph_io_name", i32s(5), i32s(1), host(graphIOName)},
			{"graph_io_shape", i32s(5), i32s(1), host(graphIOShape)},
			{"graph_io_dtype", i32s(3), i32s(1), host(graphIODType)},
			{"graph_run", i32s(5), i32s(1), host(graphRun)},
		},
	}
}

// graph_load(name_ptr, name_len) -> graph handle
func graphLoad(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "nn.graph_load"
	ptr, n := uint32(stack[0]), int32(stack[1])
	if n > 256 {
		return in.fail(EINVAL, "%s: model name of %d bytes is longer than 256", op, n)
	}
	b, c, okm := in.span(mod, op, "name", ptr, n)
	if !okm {
		return c
	}
	if in.nnState().graphs.live >= in.cfg.NN.MaxGraphs {
		return in.fail(EQUOTA, "%s: instance holds %d graphs, the limit", op, in.nn.graphs.live)
	}
	g, err := in.openShared(string(b))
	if err != nil {
		if errors.Is(err, errQuota) {
			return in.fail(EQUOTA, "%s: %v", op, err)
		}
		return in.fail(EDENIED, "%s: %v", op, err)
	}
	id, err := in.addGraph(g)
	if err != nil {
		in.closeGraph(g)
		return in.fail(EQUOTA, "%s: %v", op, err)
	}
	return ok(int32(id))
}

func (in *Instance) graphOf(op string, h int32) (*nnGraph, uint64, bool) {
	g, okg := in.nnGraphOf(uint32(h))
	if h <= 0 || !okg {
		return nil, in.fail(EHANDLE, "%s: handle %d is not a loaded graph of this instance", op, h), false
	}
	return g, 0, true
}

// graph_free(graph) -> 0
func graphFree(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "nn.graph_free"
	h := int32(stack[0])
	g, c, okg := in.graphOf(op, h)
	if !okg {
		return c
	}
	if g.ctxs > 0 {
		return in.fail(ESTATE, "%s: graph %d has %d live wasi-nn execution contexts", op, h, g.ctxs)
	}
	in.closeGraph(g)
	in.nn.graphs.remove(uint32(h))
	return ok(0)
}

// io returns the inputs (which = 0) or outputs (1) of g.
func (in *Instance) graphIO(op string, g *nnGraph, which int32) ([]onnx.ValueInfo, uint64, bool) {
	switch which {
	case 0:
		return g.inputs, 0, true
	case 1:
		return g.outputs, 0, true
	}
	return nil, in.fail(EINVAL, "%s: which is %d, want 0 (inputs) or 1 (outputs)", op, which), false
}

func (in *Instance) graphValue(op string, stack []uint64) (onnx.ValueInfo, uint64, bool) {
	g, c, okg := in.graphOf(op, int32(stack[0]))
	if !okg {
		return onnx.ValueInfo{}, c, false
	}
	vs, c, okw := in.graphIO(op, g, int32(stack[1]))
	if !okw {
		return onnx.ValueInfo{}, c, false
	}
	i := int32(stack[2])
	if i < 0 || int(i) >= len(vs) {
		return onnx.ValueInfo{}, in.fail(EINVAL, "%s: index %d: the graph has %d", op, i, len(vs)), false
	}
	return vs[i], 0, true
}

// graph_io_count(graph, which) -> count
func graphIOCount(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "nn.graph_io_count"
	g, c, okg := in.graphOf(op, int32(stack[0]))
	if !okg {
		return c
	}
	vs, c, okw := in.graphIO(op, g, int32(stack[1]))
	if !okw {
		return c
	}
	return ok(int32(len(vs)))
}

// graph_io_name(graph, which, index, buf_ptr, buf_cap) -> full length
func graphIOName(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "nn.graph_io_name"
	v, c, okv := in.graphValue(op, stack)
	if !okv {
		return c
	}
	ptr, capacity := uint32(stack[3]), int32(stack[4])
	if capacity < 0 {
		return in.fail(EMEM, "%s: negative buffer capacity %d", op, capacity)
	}
	if n := min(int32(len(v.Name)), capacity); n > 0 {
		buf, c, okm := in.span(mod, op, "buffer", ptr, n)
		if !okm {
			return c
		}
		copy(buf, v.Name)
	}
	return ok(int32(len(v.Name)))
}

// graph_io_shape(graph, which, index, dims_ptr, dims_cap) -> rank; a
// symbolic or unknown dimension is written as -1.
func graphIOShape(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "nn.graph_io_shape"
	v, c, okv := in.graphValue(op, stack)
	if !okv {
		return c
	}
	if !v.HasShape {
		return in.fail(ESHAPE, "%s: %q has no declared shape", op, v.Name)
	}
	ptr, capacity := uint32(stack[3]), int32(stack[4])
	if capacity < int32(len(v.Shape)) {
		return in.fail(EINVAL, "%s: %q has rank %d, the buffer holds %d dimensions", op, v.Name, len(v.Shape), capacity)
	}
	buf, c, okm := in.span(mod, op, "dimensions", ptr, int32(4*len(v.Shape)))
	if !okm {
		return c
	}
	for i, d := range v.Shape {
		x := int32(-1)
		if d.Param == "" && d.Value >= 0 && d.Value <= math.MaxInt32 {
			x = int32(d.Value)
		}
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(x))
	}
	return ok(int32(len(v.Shape)))
}

// tensorDTypeFor is the fennec_tensor dtype that carries an ONNX dtype:
// f32 for float, i32 for int32 and int64 (converted), i8 for int8, uint8
// and bool (the same bytes).
func tensorDTypeFor(d nn.DType) gpu.DType {
	switch d {
	case nn.Float32:
		return gpu.F32
	case nn.Int32, nn.Int64:
		return gpu.I32
	case nn.Int8, nn.Uint8, nn.Bool:
		return gpu.I8
	}
	return 0
}

// graph_io_dtype(graph, which, index) -> fennec_tensor dtype
func graphIODType(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "nn.graph_io_dtype"
	v, c, okv := in.graphValue(op, stack)
	if !okv {
		return c
	}
	dt := tensorDTypeFor(v.DType)
	if dt == 0 {
		return in.fail(EDTYPE, "%s: %q is %s, which no fennec_tensor dtype carries", op, v.Name, v.DType)
	}
	return ok(int32(dt))
}

// graph_run(graph, in_ptr, n_in, out_ptr, out_cap) -> outputs written
func graphRun(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "nn.graph_run"
	g, c, okg := in.graphOf(op, int32(stack[0]))
	if !okg {
		return c
	}
	inPtr, nIn, outPtr, outCap := uint32(stack[1]), int32(stack[2]), uint32(stack[3]), int32(stack[4])
	if nIn != int32(len(g.inputs)) {
		return in.fail(EINVAL, "%s: %d input handles, the graph %s has %d inputs", op, nIn, g.name, len(g.inputs))
	}
	if outCap < int32(len(g.outputs)) {
		return in.fail(EINVAL, "%s: room for %d output handles, the graph %s has %d outputs", op, outCap, g.name, len(g.outputs))
	}
	hs, c, okm := in.span(mod, op, "input handles", inPtr, 4*nIn)
	if !okm {
		return c
	}
	outs, c, okm := in.span(mod, op, "output handles", outPtr, int32(4*len(g.outputs)))
	if !okm {
		return c
	}
	// Inputs: copies of the tensors' elements in the model's dtypes, held
	// against the quota for the call.
	var held int64
	defer func() { in.unhold(held) }()
	feed := make([]*nn.Tensor, len(g.inputs))
	for i, vi := range g.inputs {
		h := int32(binary.LittleEndian.Uint32(hs[4*i:]))
		t, c, okh := in.tensor(op, h)
		if !okh {
			return c
		}
		if want := tensorDTypeFor(vi.DType); t.DType() != want {
			return in.fail(EDTYPE, "%s: input %d (%s) is %s, carried as %s; handle %d is %s", op, i, vi.Name, vi.DType, want, h, t.DType())
		}
		if err := checkDims(vi, t.Shape()); err != nil {
			return in.fail(ESHAPE, "%s: input %d: %v", op, i, err)
		}
		raw := t.Bytes()
		n := int64(t.Len()) * int64(vi.DType.Size())
		if c, okq := in.hold(op, "input copies", raw+n); !okq {
			return c
		}
		held += raw + n
		buf := make([]byte, raw)
		if err := in.cfg.Backend.Read(t, buf); err != nil {
			return in.failErr(op, err)
		}
		nt, err := nn.New(vi.DType, t.Shape(), t.Len())
		if err != nil {
			return in.fail(EINVAL, "%s: input %d: %v", op, i, err)
		}
		if vi.DType == nn.Int64 {
			for j := range nt.I64 {
				nt.I64[j] = int64(int32(binary.LittleEndian.Uint32(buf[4*j:])))
			}
		} else {
			decodeTensor(nt, buf)
		}
		feed[i] = nt
	}
	res, total, err := in.runGraph(g, feed)
	if err != nil {
		if errors.Is(err, errQuota) {
			return in.fail(EQUOTA, "%s: %s: %v", op, g.name, err)
		}
		return in.fail(EINVAL, "%s: %s: %v", op, g.name, err)
	}
	in.uncharge(total) // the host copies die with the call; the handles below count
	made := make([]int32, 0, len(res))
	undo := func() {
		for _, h := range made {
			in.release(h)
		}
	}
	for i, r := range res {
		dt := tensorDTypeFor(r.DType)
		if dt == 0 {
			undo()
			return in.fail(EDTYPE, "%s: output %d (%s) is %s, which no fennec_tensor dtype carries", op, i, g.outputs[i].Name, r.DType)
		}
		t, h, c, oka := in.alloc(op, dt, r.Shape)
		if !oka {
			undo()
			return c
		}
		made = append(made, h)
		buf := make([]byte, t.Bytes())
		if r.DType == nn.Int64 {
			for j, v := range r.I64 {
				if v < math.MinInt32 || v > math.MaxInt32 {
					undo()
					return in.fail(EDTYPE, "%s: output %d (%s) element %d is %d, outside i32", op, i, g.outputs[i].Name, j, v)
				}
				binary.LittleEndian.PutUint32(buf[4*j:], uint32(int32(v)))
			}
		} else {
			encodeTensor(buf, r)
		}
		if err := in.cfg.Backend.Write(t, buf); err != nil {
			undo()
			return in.failErr(op, err)
		}
	}
	for i, h := range made {
		binary.LittleEndian.PutUint32(outs[4*i:], uint32(h))
	}
	return ok(int32(len(made)))
}
