package hostfuncs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
)

// NNConfig is what an instance may do with the model groups. It comes from
// the module's manifest ([nn] table).
type NNConfig struct {
	// ABI selects the wasi-nn enum values the guest was built against:
	// NNABIWasmtime (the default: the wasi-nn Rust crate and wasmtime's
	// witx) or NNABIWasmEdge (WasmEdge's plugin and its wasmedge-wasi-nn
	// crate). They differ in the tensor-type codes only.
	ABI string
	// Models are the names of the operator's models the module may load by
	// name; a model not listed is not found, whether the operator has it or
	// not.
	Models []string
	// SHA256 pins models by the SHA-256 of their file (lower-case hex, by
	// name): a granted model whose loaded bytes hash otherwise is refused.
	SHA256 map[string]string
	// MaxGraphs and MaxContexts bound the graphs and execution contexts one
	// instance holds at once (defaults 16 and 64).
	MaxGraphs, MaxContexts int
}

// wasi-nn ABI flavours.
const (
	NNABIWasmtime = "wasmtime"
	NNABIWasmEdge = "wasmedge"
)

// Defaults for NNConfig.
const (
	DefaultMaxNNGraphs   = 16
	DefaultMaxNNContexts = 64
)

// nnState is an instance's graphs and execution contexts. Graph and
// context ids are drawn from one idTable each: salted and
// generation-tagged, so a forged, stale or other instance's id is refused.
type nnState struct {
	graphs idTable[*nnGraph]
	ctxs   idTable[*nnContext]
}

// nnGraph is a graph an instance loaded: a shared model (load_by_name,
// graph_load) or one the guest passed as bytes (load), which it owns.
type nnGraph struct {
	name    string
	sess    *onnx.Session
	inputs  []onnx.ValueInfo
	outputs []onnx.ValueInfo
	owned   bool  // the session is the instance's own: closed with the graph
	charge  int64 // bytes counted against the tensor quota while it lives
	ctxs    int   // live contexts on it
	shared  *SharedModel
	freed   bool
}

// nnContext is one execution context: its inputs (set_input) and the
// outputs of its last compute.
type nnContext struct {
	g       *nnGraph
	inputs  []*nn.Tensor
	outputs []*nn.Tensor
	charge  int64 // bytes of inputs and outputs counted against the quota
}

// idTable maps 32-bit ids to values. An id is the slot index (1-based)
// shifted left by 12, or'ed with a 12-bit tag mixing the table's salt and
// the slot's generation. Slots are few (bounded by the caller), so the
// table never wears out in practice; a slot whose tag would repeat is
// retired.
type idTable[T any] struct {
	salt  uint32
	slots []idSlot[T]
	free  []uint32
	live  int
}

type idSlot[T any] struct {
	v    T
	used bool
	gen  uint32
	dead bool // retired
}

const idTagBits = 12

func (t *idTable[T]) tag(idx, gen uint32) uint32 {
	return (t.salt + gen*0x9e5 + idx*0x3b) & (1<<idTagBits - 1)
}

func (t *idTable[T]) put(v T) uint32 {
	var idx uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.slots = append(t.slots, idSlot[T]{})
		idx = uint32(len(t.slots)) // 1-based
	}
	s := &t.slots[idx-1]
	s.v, s.used = v, true
	t.live++
	return idx<<idTagBits | t.tag(idx, s.gen)
}

func (t *idTable[T]) get(id uint32) (T, bool) {
	var zero T
	idx := id >> idTagBits
	if idx == 0 || idx > uint32(len(t.slots)) {
		return zero, false
	}
	s := &t.slots[idx-1]
	if !s.used || id&(1<<idTagBits-1) != t.tag(idx, s.gen) {
		return zero, false
	}
	return s.v, true
}

func (t *idTable[T]) remove(id uint32) {
	if _, ok := t.get(id); !ok {
		return
	}
	idx := id >> idTagBits
	s := &t.slots[idx-1]
	var zero T
	s.v, s.used = zero, false
	s.gen++
	t.live--
	if s.gen < 1<<idTagBits {
		t.free = append(t.free, idx)
	} else {
		s.dead = true
	}
}

func (t *idTable[T]) each(f func(T)) {
	for _, s := range t.slots {
		if s.used {
			f(s.v)
		}
	}
}

// nn returns the instance's model state, creating it on first use.
func (in *Instance) nnState() *nnState {
	if in.nn == nil {
		in.nn = &nnState{}
		in.nn.graphs.salt = uint32(in.tab.salt) * 0x11
		in.nn.ctxs.salt = uint32(in.tab.salt)*0x7 + 0x155
	}
	return in.nn
}

func (in *Instance) nnServices() *NNServices {
	if in.cfg.Services == nil {
		return nil
	}
	return in.cfg.Services.NN
}

// nnGranted reports whether the manifest grants the model name.
func (in *Instance) nnGranted(name string) bool {
	for _, m := range in.cfg.NN.Models {
		if m == name {
			return true
		}
	}
	return false
}

// errDigest marks a model refused because its bytes do not match the
// manifest's pin.
var errDigest = errors.New("model digest mismatch")

// charge counts n more bytes of graph or context memory against the tensor
// quota, or says why not.
func (in *Instance) charge(n int64) error {
	if n < 0 || in.bytes+in.held+n > in.cfg.MaxTensorBytes {
		return fmt.Errorf("%w: %d more bytes, %d of %d bytes in use", errQuota, n, in.bytes+in.held, in.cfg.MaxTensorBytes)
	}
	in.bytes += n
	return nil
}

func (in *Instance) uncharge(n int64) { in.bytes -= n }

// openShared makes a graph of the shared model name for this instance,
// charging its weights. It fails with a message when the model is not
// granted or not loaded.
func (in *Instance) openShared(name string) (*nnGraph, error) {
	if !in.nnGranted(name) {
		return nil, fmt.Errorf("model %q is not granted to module %s (its manifest's [nn] models list: %q)", name, in.cfg.Module, in.cfg.NN.Models)
	}
	svc := in.nnServices()
	var m *SharedModel
	if svc != nil {
		m = svc.Models.open(name, in.cfg.NN.SHA256[name])
	}
	if m == nil {
		return nil, fmt.Errorf("model %q is granted but this host has not loaded it (--nn-preload %s:onnx:cpu:PATH)", name, name)
	}
	if want, pinned := in.cfg.NN.SHA256[name]; pinned && want != m.SHA256 {
		m.release()
		return nil, fmt.Errorf("%w: model %q (file %s) has SHA-256 %s; the manifest of module %s pins %s", errDigest, name, m.Path, m.SHA256, in.cfg.Module, want)
	}
	if err := in.charge(m.Bytes); err != nil {
		m.release()
		return nil, fmt.Errorf("model %q (%d bytes): %w", name, m.Bytes, err)
	}
	return &nnGraph{name: name, sess: m.sess, inputs: m.inputs, outputs: m.outputs, charge: m.Bytes, shared: m}, nil
}

// addGraph stores g, within the instance's graph limit.
func (in *Instance) addGraph(g *nnGraph) (uint32, error) {
	st := in.nnState()
	if st.graphs.live >= in.cfg.NN.MaxGraphs {
		return 0, fmt.Errorf("instance holds %d graphs, the limit", st.graphs.live)
	}
	return st.graphs.put(g), nil
}

// closeGraph frees a graph whose contexts are gone.
func (in *Instance) closeGraph(g *nnGraph) {
	if g.freed {
		return
	}
	g.freed = true
	in.uncharge(g.charge)
	if g.owned {
		g.sess.Close()
	}
	if g.shared != nil {
		g.shared.release()
	}
}

// closeContext frees a context's buffers.
func (in *Instance) closeContext(c *nnContext) {
	in.uncharge(c.charge)
	c.charge, c.inputs, c.outputs = 0, nil, nil
	c.g.ctxs--
}

// closeNN frees every graph and context (Instance.Close).
func (in *Instance) closeNN() {
	if in.nn == nil {
		return
	}
	in.nn.ctxs.each(in.closeContext)
	in.nn.graphs.each(in.closeGraph)
	in.nn = nil
}

// tensorBytes is the bytes of t's elements.
func tensorBytes(t *nn.Tensor) int64 { return int64(t.Len()) * int64(t.DType.Size()) }

// encodeTensor writes t's elements little-endian into dst (len = tensorBytes).
func encodeTensor(dst []byte, t *nn.Tensor) {
	switch t.DType {
	case nn.Float32:
		for i, v := range t.F32 {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case nn.Int32:
		for i, v := range t.I32 {
			binary.LittleEndian.PutUint32(dst[4*i:], uint32(v))
		}
	case nn.Int64:
		for i, v := range t.I64 {
			binary.LittleEndian.PutUint64(dst[8*i:], uint64(v))
		}
	default:
		copy(dst, t.U8)
	}
}

// decodeTensor fills t's elements from little-endian src (len = tensorBytes).
func decodeTensor(t *nn.Tensor, src []byte) {
	switch t.DType {
	case nn.Float32:
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case nn.Int32:
		for i := range t.I32 {
			t.I32[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case nn.Int64:
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(src[8*i:]))
		}
	default:
		copy(t.U8, src)
	}
}

// checkDims checks shape against a declared input: rank, and every fixed
// dimension (symbolic ones are checked by the session across inputs).
func checkDims(vi onnx.ValueInfo, shape []int) error {
	if !vi.HasShape {
		return nil
	}
	if len(shape) != len(vi.Shape) {
		return fmt.Errorf("input %q has rank %d (%s), the tensor has rank %d %v", vi.Name, len(vi.Shape), vi.ShapeString(), len(shape), shape)
	}
	for i, d := range vi.Shape {
		if d.Param == "" && d.Value >= 0 && int64(shape[i]) != d.Value {
			return fmt.Errorf("input %q dimension %d is %d (%s), the tensor has %d", vi.Name, i, d.Value, vi.ShapeString(), shape[i])
		}
	}
	return nil
}

// runGraph runs g on inputs (in the graph's input order) and returns its
// outputs in output order, charged to the quota (charge is what was
// counted). A run's intermediate values are bounded by the session's
// MaxLiveBytes.
func (in *Instance) runGraph(g *nnGraph, inputs []*nn.Tensor) ([]*nn.Tensor, int64, error) {
	feed := make(map[string]*nn.Tensor, len(inputs))
	for i, vi := range g.inputs {
		feed[vi.Name] = inputs[i]
	}
	res, err := g.sess.Run(feed)
	if err != nil {
		return nil, 0, err
	}
	outs := make([]*nn.Tensor, len(g.outputs))
	var total int64
	for i, vo := range g.outputs {
		t := res[vo.Name]
		if t == nil {
			return nil, 0, fmt.Errorf("the model produced no output %q", vo.Name)
		}
		outs[i] = t
		total += tensorBytes(t)
	}
	if err := in.charge(total); err != nil {
		return nil, 0, fmt.Errorf("outputs of %d bytes: %w", total, err)
	}
	return outs, total, nil
}
