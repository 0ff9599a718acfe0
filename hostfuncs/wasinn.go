package hostfuncs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/tetratelabs/wazero/api"
)

// ModuleWASINN is the import module of wasi-nn's witx ABI, as WasmEdge's
// plugin and wasmtime's wasi-nn crate implement it (capability CapWASINN).
const ModuleWASINN = "wasi_ephemeral_nn"

// CapWASINN is the capability of the wasi_ephemeral_nn group. Engines do not
// allow it unless the operator says so (runtime.Config.Allow).
const CapWASINN = "wasi:nn"

// Errno is a wasi-nn result: 0 on success, else one of the nn_errno values
// that WasmEdge's types.h and wasmtime's witx share (docs/ABI.md).
type Errno uint32

// wasi-nn errno values.
const (
	NNSuccess              Errno = 0
	NNInvalidArgument      Errno = 1
	NNInvalidEncoding      Errno = 2
	NNMissingMemory        Errno = 3
	NNBusy                 Errno = 4
	NNRuntimeError         Errno = 5
	NNUnsupportedOperation Errno = 6
	NNTooLarge             Errno = 7
	NNNotFound             Errno = 8
)

var errnoNames = [...]string{"success", "invalid-argument", "invalid-encoding", "missing-memory", "busy", "runtime-error", "unsupported-operation", "too-large", "not-found"}

func (e Errno) String() string {
	if int(e) < len(errnoNames) {
		return errnoNames[e]
	}
	return fmt.Sprintf("errno(%d)", uint32(e))
}

// Graph encodings (the same in both ABIs) and execution targets.
const (
	nnEncodingONNX = 1
	nnTargetMax    = 3 // cpu 0, gpu 1, tpu 2, auto 3 (WasmEdge)
)

// nnTensorSize is the size of wasi-nn's tensor struct in guest memory:
// dimensions (pointer, count of u32), type (one byte, then 3 bytes of
// padding), data (pointer, byte length).
const nnTensorSize = 20

// NNTensorDesc is the tensor struct as a guest lays it out.
type NNTensorDesc struct {
	DimsPtr, DimsLen uint32
	Type             uint8
	DataPtr, DataLen uint32
}

// ParseNNTensorDesc decodes the 20-byte struct. Bytes 9-11 are padding
// (the Rust crates leave them undefined) and are ignored.
func ParseNNTensorDesc(b [nnTensorSize]byte) NNTensorDesc {
	le := binary.LittleEndian
	return NNTensorDesc{
		DimsPtr: le.Uint32(b[0:]), DimsLen: le.Uint32(b[4:]),
		Type:    b[8],
		DataPtr: le.Uint32(b[12:]), DataLen: le.Uint32(b[16:]),
	}
}

// NNType maps a wasi-nn tensor-type code of abi to an element type.
// Known but unsupported types (f16, f64) return ok with dt 0.
func NNType(abi string, code uint8) (name string, dt nn.DType, ok bool) {
	var names []string
	if abi == NNABIWasmEdge {
		names = []string{"f16", "f32", "u8", "i32", "i64"}
	} else {
		names = []string{"f16", "f32", "f64", "u8", "i32", "i64"}
	}
	if int(code) >= len(names) {
		return "", 0, false
	}
	name = names[code]
	switch name {
	case "f32":
		dt = nn.Float32
	case "u8":
		dt = nn.Uint8
	case "i32":
		dt = nn.Int32
	case "i64":
		dt = nn.Int64
	}
	return name, dt, true
}

// memReader is the part of api.Memory the tensor decoder uses (a byte
// slice in the fuzz test).
type memReader interface {
	Read(offset, byteCount uint32) ([]byte, bool)
}

// NNTensor is a decoded set_input argument: a view of guest memory.
type NNTensor struct {
	TypeName string
	DType    nn.DType
	Shape    []int
	Data     []byte
}

// ReadNNTensor decodes the tensor struct at ptr in m for abi, checking
// every pointer and length against m, the rank against nn.MaxRank, the
// element count against maxElems and the data length against the shape.
// It allocates only the shape (at most nn.MaxRank ints).
func ReadNNTensor(m memReader, ptr uint32, abi string, maxElems int) (NNTensor, Errno, error) {
	raw, ok := m.Read(ptr, nnTensorSize)
	if !ok {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("tensor struct [%d, +%d) is outside guest memory", ptr, nnTensorSize)
	}
	d := ParseNNTensorDesc([nnTensorSize]byte(raw))
	name, dt, ok := NNType(abi, d.Type)
	if !ok {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("tensor type %d is not a %s wasi-nn tensor type", d.Type, abi)
	}
	if dt == 0 {
		return NNTensor{}, NNUnsupportedOperation, fmt.Errorf("tensor type %s is not supported (f32, u8, i32, i64 are)", name)
	}
	if d.DimsLen > nn.MaxRank {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("tensor rank %d exceeds %d", d.DimsLen, nn.MaxRank)
	}
	dims, ok := m.Read(d.DimsPtr, d.DimsLen*4)
	if !ok {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("dimensions [%d, +%d) are outside guest memory", d.DimsPtr, d.DimsLen*4)
	}
	shape := make([]int, d.DimsLen)
	for i := range shape {
		v := binary.LittleEndian.Uint32(dims[4*i:])
		if v > 1<<31-1 {
			return NNTensor{}, NNInvalidArgument, fmt.Errorf("dimension %d is %d", i, v)
		}
		shape[i] = int(v)
	}
	n, err := nn.Elements(shape, maxElems)
	if err != nil {
		return NNTensor{}, NNTooLarge, fmt.Errorf("tensor %v: %v", shape, err)
	}
	if want := int64(n) * int64(dt.Size()); int64(d.DataLen) != want {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("tensor data is %d bytes, a %s%v tensor has %d", d.DataLen, name, shape, want)
	}
	data, ok := m.Read(d.DataPtr, d.DataLen)
	if !ok {
		return NNTensor{}, NNInvalidArgument, fmt.Errorf("tensor data [%d, +%d) is outside guest memory", d.DataPtr, d.DataLen)
	}
	return NNTensor{TypeName: name, DType: dt, Shape: shape, Data: data}, NNSuccess, nil
}

func wasiNNGroup() Group {
	return Group{
		Module:     ModuleWASINN,
		Capability: CapWASINN,
		Doc:        "wasi-nn (witx, as WasmEdge and wasmtime): load ONNX graphs, run them on the host",
		Funcs: []Func{
			{"load", i32s(5), i32s(1), host(nnLoad)},
			{"load_by_name", i32s(3), i32s(1), host(nnLoadByName)},
			{"load_by_name_with_config", i32s(5), i32s(1), host(nnLoadByNameWithConfig)},
			{"init_execution_context", i32s(2), i32s(1), host(nnInitContext)},
			{"set_input", i32s(3), i32s(1), host(nnSetInput)},
			{"compute", i32s(1), i32s(1), host(nnCompute)},
			{"get_output", i32s(5), i32s(1), host(nnGetOutput)},
			{"fini_single", i32s(1), i32s(1), host(nnFiniSingle)},
			{"unload", i32s(1), i32s(1), host(nnUnload)},
		},
	}
}

// nnFail records a wasi-nn failure (last_error, and a rate-limited warning
// in the module's log, since wasi-nn guests have no last_error of their
// own) and returns its errno.
func (in *Instance) nnFail(e Errno, op string, format string, args ...any) uint64 {
	msg := fmt.Sprintf("wasi-nn %s: %s: %s", op, e, fmt.Sprintf(format, args...))
	in.lastErr = msg
	in.out.emit(in.log, slog.LevelWarn, []byte(msg), len(msg), "source", "host")
	return uint64(e)
}

// putU32 writes v at ptr in guest memory.
func putU32(mod api.Module, ptr, v uint32) bool {
	m := mod.Memory()
	return m != nil && m.WriteUint32Le(ptr, v)
}

// outPtr checks that a 4-byte result pointer lies in guest memory.
func outPtr(mod api.Module, ptr uint32) bool {
	m := mod.Memory()
	if m == nil {
		return false
	}
	_, ok := m.Read(ptr, 4)
	return ok
}

// load(builders_ptr, builders_len, encoding, target, graph_ptr) -> errno
func nnLoad(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "load"
	bptr, blen, enc, target, gptr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	if mod.Memory() == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	}
	if !outPtr(mod, gptr) {
		return in.nnFail(NNInvalidArgument, op, "graph pointer %d is outside guest memory", gptr)
	}
	if target > nnTargetMax {
		return in.nnFail(NNInvalidArgument, op, "execution target %d is not cpu (0), gpu (1), tpu (2) or auto (3)", target)
	}
	if enc != nnEncodingONNX {
		return in.nnFail(NNInvalidEncoding, op, "graph encoding %d is not supported: this host runs onnx (1)", enc)
	}
	if blen != 1 {
		return in.nnFail(NNInvalidArgument, op, "an onnx graph is one builder (the model bytes), got %d", blen)
	}
	pair, ok := mod.Memory().Read(bptr, 8)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "builder array [%d, +8) is outside guest memory", bptr)
	}
	dptr, dlen := binary.LittleEndian.Uint32(pair), binary.LittleEndian.Uint32(pair[4:])
	data, ok := mod.Memory().Read(dptr, dlen)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "builder 0 [%d, +%d) is outside guest memory", dptr, dlen)
	}
	if in.nnState().graphs.live >= in.cfg.NN.MaxGraphs {
		return in.nnFail(NNBusy, op, "instance holds %d graphs, the limit", in.nn.graphs.live)
	}
	// The decoded model (its weights) is about as large as its bytes;
	// decoding may not use more of the quota than is free.
	free := in.cfg.MaxTensorBytes - in.bytes - in.held
	if int64(dlen) > free {
		return in.nnFail(NNTooLarge, op, "model of %d bytes exceeds the free tensor quota (%d of %d bytes in use)", dlen, in.bytes+in.held, in.cfg.MaxTensorBytes)
	}
	opts := onnx.Options{}
	if svc := in.nnServices(); svc != nil {
		opts = svc.Options
	}
	opts.MaxFileBytes = int64(dlen)
	if opts.MaxLiveBytes == 0 || opts.MaxLiveBytes > free {
		opts.MaxLiveBytes = free
	}
	if c, okh := in.hold(op, "model bytes", int64(dlen)); !okh {
		return c
	}
	m, err := onnx.Decode(data, "guest model", "", opts)
	var sess *onnx.Session
	if err == nil {
		sess, err = onnx.NewSession(m, in.cfg.Backend)
	}
	in.unhold(int64(dlen))
	if err != nil {
		return in.nnFail(NNInvalidArgument, op, "%v", err)
	}
	if err := in.charge(int64(dlen)); err != nil {
		sess.Close()
		return in.nnFail(NNTooLarge, op, "%v", err)
	}
	g := &nnGraph{name: "guest model", sess: sess, inputs: m.Inputs(), outputs: modelOutputs(m), owned: true, charge: int64(dlen)}
	id, err := in.addGraph(g)
	if err != nil {
		in.closeGraph(g)
		return in.nnFail(NNBusy, op, "%v", err)
	}
	putU32(mod, gptr, id)
	return 0
}

// load_by_name(name_ptr, name_len, graph_ptr) -> errno
func nnLoadByName(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	return in.nnLoadNamed(mod, "load_by_name", uint32(stack[0]), uint32(stack[1]), uint32(stack[2]))
}

// load_by_name_with_config(name_ptr, name_len, config_ptr, config_len, graph_ptr) -> errno
func nnLoadByNameWithConfig(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "load_by_name_with_config"
	cptr, clen := uint32(stack[2]), uint32(stack[3])
	if m := mod.Memory(); m == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	} else if _, ok := m.Read(cptr, clen); !ok {
		return in.nnFail(NNInvalidArgument, op, "config [%d, +%d) is outside guest memory", cptr, clen)
	}
	// The config (a JSON object for WasmEdge's GGML backend) has no meaning
	// for onnx graphs; it is checked and ignored.
	return in.nnLoadNamed(mod, op, uint32(stack[0]), uint32(stack[1]), uint32(stack[4]))
}

func (in *Instance) nnLoadNamed(mod api.Module, op string, nptr, nlen, gptr uint32) uint64 {
	m := mod.Memory()
	if m == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	}
	if !outPtr(mod, gptr) {
		return in.nnFail(NNInvalidArgument, op, "graph pointer %d is outside guest memory", gptr)
	}
	if nlen > 256 {
		return in.nnFail(NNInvalidArgument, op, "model name of %d bytes is longer than 256", nlen)
	}
	b, ok := m.Read(nptr, nlen)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "name [%d, +%d) is outside guest memory", nptr, nlen)
	}
	name := string(b)
	if in.nnState().graphs.live >= in.cfg.NN.MaxGraphs {
		return in.nnFail(NNBusy, op, "instance holds %d graphs, the limit", in.nn.graphs.live)
	}
	g, err := in.openShared(name)
	if err != nil {
		if errors.Is(err, errQuota) {
			return in.nnFail(NNTooLarge, op, "%v", err)
		}
		if errors.Is(err, errDigest) {
			return in.nnFail(NNRuntimeError, op, "%v", err)
		}
		return in.nnFail(NNNotFound, op, "%v", err)
	}
	id, err := in.addGraph(g)
	if err != nil {
		in.closeGraph(g)
		return in.nnFail(NNBusy, op, "%v", err)
	}
	putU32(mod, gptr, id)
	return 0
}

// graph resolves a graph id of this instance.
func (in *Instance) nnGraphOf(id uint32) (*nnGraph, bool) {
	if in.nn == nil {
		return nil, false
	}
	return in.nn.graphs.get(id)
}

func (in *Instance) nnContextOf(id uint32) (*nnContext, bool) {
	if in.nn == nil {
		return nil, false
	}
	return in.nn.ctxs.get(id)
}

// init_execution_context(graph, ctx_ptr) -> errno
func nnInitContext(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "init_execution_context"
	gid, cptr := uint32(stack[0]), uint32(stack[1])
	if mod.Memory() == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	}
	if !outPtr(mod, cptr) {
		return in.nnFail(NNInvalidArgument, op, "context pointer %d is outside guest memory", cptr)
	}
	g, ok := in.nnGraphOf(gid)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "graph %d is not a loaded graph of this instance", gid)
	}
	st := in.nnState()
	if st.ctxs.live >= in.cfg.NN.MaxContexts {
		return in.nnFail(NNBusy, op, "instance holds %d execution contexts, the limit (fini_single frees one)", st.ctxs.live)
	}
	c := &nnContext{g: g, inputs: make([]*nn.Tensor, len(g.inputs))}
	g.ctxs++
	putU32(mod, cptr, st.ctxs.put(c))
	return 0
}

// set_input(ctx, index, tensor_ptr) -> errno
func nnSetInput(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "set_input"
	cid, idx, tptr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	m := mod.Memory()
	if m == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	}
	c, ok := in.nnContextOf(cid)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "context %d is not an execution context of this instance", cid)
	}
	if idx >= uint32(len(c.g.inputs)) {
		return in.nnFail(NNInvalidArgument, op, "input index %d: the model has %d inputs", idx, len(c.g.inputs))
	}
	vi := c.g.inputs[idx]
	// What the tensor may hold: the quota left after this input's old
	// value goes.
	var old int64
	if t := c.inputs[idx]; t != nil {
		old = tensorBytes(t)
	}
	free := in.cfg.MaxTensorBytes - in.bytes - in.held + old
	t, e, err := ReadNNTensor(m, tptr, in.cfg.NN.ABI, int(min(free, 1<<40)))
	if err != nil {
		return in.nnFail(e, op, "input %d (%s): %v", idx, vi.Name, err)
	}
	dt := t.DType
	if dt == nn.Uint8 && (vi.DType == nn.Bool || vi.DType == nn.Int8) {
		dt = vi.DType // the same bytes
	}
	if vi.DType != 0 && dt != vi.DType {
		return in.nnFail(NNInvalidArgument, op, "input %d (%s) is %s, the tensor is %s", idx, vi.Name, vi.DType, t.TypeName)
	}
	if err := checkDims(vi, t.Shape); err != nil {
		return in.nnFail(NNInvalidArgument, op, "input %d: %v", idx, err)
	}
	size := int64(len(t.Data))
	if size > free {
		return in.nnFail(NNTooLarge, op, "input %d (%s) of %d bytes exceeds the free tensor quota", idx, vi.Name, size)
	}
	nt, err := nn.New(dt, t.Shape, int(min(free, 1<<40)))
	if err != nil {
		return in.nnFail(NNTooLarge, op, "input %d (%s): %v", idx, vi.Name, err)
	}
	decodeTensor(nt, t.Data)
	in.uncharge(old)
	c.charge -= old
	in.bytes += size
	c.charge += size
	c.inputs[idx] = nt
	return 0
}

// compute(ctx) -> errno
func nnCompute(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "compute"
	cid := uint32(stack[0])
	c, ok := in.nnContextOf(cid)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "context %d is not an execution context of this instance", cid)
	}
	for i, t := range c.inputs {
		if t == nil {
			return in.nnFail(NNInvalidArgument, op, "input %d (%s) is not set", i, c.g.inputs[i].Name)
		}
	}
	// The previous outputs go before the run.
	for _, t := range c.outputs {
		n := tensorBytes(t)
		in.uncharge(n)
		c.charge -= n
	}
	c.outputs = nil
	outs, n, err := in.runGraph(c.g, c.inputs)
	if err != nil {
		if errors.Is(err, errQuota) {
			return in.nnFail(NNTooLarge, op, "%s: %v", c.g.name, err)
		}
		return in.nnFail(NNRuntimeError, op, "%s: %v", c.g.name, err)
	}
	c.outputs = outs
	c.charge += n
	in.checkpoint() // a compute that overran the deadline traps here
	return 0
}

// get_output(ctx, index, buf_ptr, buf_max, written_ptr) -> errno
func nnGetOutput(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "get_output"
	cid, idx, bptr, bmax, wptr := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	m := mod.Memory()
	if m == nil {
		return in.nnFail(NNMissingMemory, op, "the module has no memory")
	}
	c, ok := in.nnContextOf(cid)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "context %d is not an execution context of this instance", cid)
	}
	if c.outputs == nil {
		return in.nnFail(NNInvalidArgument, op, "context %d has not computed (call compute first)", cid)
	}
	if idx >= uint32(len(c.outputs)) {
		return in.nnFail(NNInvalidArgument, op, "output index %d: the model has %d outputs", idx, len(c.outputs))
	}
	if !outPtr(mod, wptr) {
		return in.nnFail(NNInvalidArgument, op, "bytes-written pointer %d is outside guest memory", wptr)
	}
	buf, ok := m.Read(bptr, bmax)
	if !ok {
		return in.nnFail(NNInvalidArgument, op, "output buffer [%d, +%d) is outside guest memory", bptr, bmax)
	}
	t := c.outputs[idx]
	n := tensorBytes(t)
	if n > int64(bmax) {
		return in.nnFail(NNTooLarge, op, "output %d (%s, %s%v) is %d bytes, the buffer holds %d", idx, c.g.outputs[idx].Name, t.DType, t.Shape, n, bmax)
	}
	encodeTensor(buf[:n], t)
	putU32(mod, wptr, uint32(n))
	return 0
}

// fini_single(ctx) -> errno: frees an execution context (WasmEdge has it
// for GGML only; here it frees any).
func nnFiniSingle(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	cid := uint32(stack[0])
	c, ok := in.nnContextOf(cid)
	if !ok {
		return in.nnFail(NNInvalidArgument, "fini_single", "context %d is not an execution context of this instance", cid)
	}
	in.closeContext(c)
	in.nn.ctxs.remove(cid)
	return 0
}

// unload(graph) -> errno: frees a graph with no live contexts.
func nnUnload(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	gid := uint32(stack[0])
	g, ok := in.nnGraphOf(gid)
	if !ok {
		return in.nnFail(NNInvalidArgument, "unload", "graph %d is not a loaded graph of this instance", gid)
	}
	if g.ctxs > 0 {
		return in.nnFail(NNBusy, "unload", "graph %d has %d live execution contexts (fini_single them first)", gid, g.ctxs)
	}
	in.closeGraph(g)
	in.nn.graphs.remove(gid)
	return 0
}
