package onnx

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/par"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// Session runs one model on one gpu.Backend.
//
// Placement: the matrix products of MatMul, Gemm and Conv (im2col + SGEMM)
// run on the backend; every other node runs on the host CPU in this
// package's kernels. On the CPU backend (*gpu.CPU), whose memory is host
// memory, products run in place through its Sgemm and SgemmRows. On any other
// backend operands cross only through Backend.Write and Backend.Read, so the
// executor assumes nothing about where backend memory lives; constant
// operands (weights) are uploaded once, when first used, and kept on the
// backend until Close. NewSession logs the placement, and Stats counts the
// bytes copied each way (none on the CPU backend) and the products run.
//
// Memory: a value's f32 buffer returns to a per-session pool (at most
// 64 MiB) when the last value using it dies, and the per-Run bookkeeping is
// reused, so steady-state runs allocate little; the tensors Run returns are
// never reused and belong to the caller.
//
// A Session is safe for concurrent Run calls.
type Session struct {
	m    *Model
	be   gpu.Backend
	opts Options
	main *plan

	runs      sync.RWMutex // Run holds it shared, Close exclusively
	mu        sync.Mutex
	weights   map[*float32]gpu.Tensor // backend copies of constant operands
	scratch   map[[2]int][]gpu.Tensor // free backend operands and results, by shape
	host      map[int][][]float32     // free host work buffers (im2col columns), by length
	pool      map[int][][]float32     // free f32 value buffers, by length (runState)
	folded    int64                   // bytes created by constant folding (NewSession only)
	foldWork  int64                   // multiply-adds spent by constant folding (NewSession only)
	poolBytes int64
	consts    map[*nn.Tensor]bool // every constant of every plan (set by NewSession)
	subs      map[*graph]*plan    // prepared subgraphs (If branches)
	closed    bool

	toDevice, fromDevice, deviceCalls atomic.Int64
	states                            sync.Pool // *runState, reused by Run
	// spare keeps one runState out of the pool: sync.Pool drops its
	// contents at every GC, and a run that rebuilt its arena after each
	// collection would allocate in the steady state.
	spare atomic.Pointer[runState]
}

// Stats counts the explicit copies between host and backend memory.
type Stats struct {
	BytesToBackend   int64
	BytesFromBackend int64
	BackendCalls     int64 // products run (MatMul calls, or SGEMM in place on the CPU backend)
	Weights          int   // constant operands resident on the backend
}

// plan is one graph prepared for execution.
type plan struct {
	g       *graph
	consts  map[string]*nn.Tensor
	steps   []*node
	lastUse map[string]int // value name -> last step that reads it
	release [][]string     // per step: the values it is the last to read
	sl      *slots         // the same, as slot indexes (assignSlots)
	outputs map[string]bool
	extra   []string // values returned besides the graph outputs
}

// UnsupportedNode names a node this engine cannot run and why.
type UnsupportedNode struct {
	Node   string `json:"node"`
	OpType string `json:"op_type"`
	Domain string `json:"domain"`
	Opset  int    `json:"opset"`
	Reason string `json:"reason"`
}

func (u UnsupportedNode) Error() string {
	d := u.Domain
	if d == "" {
		d = "ai.onnx"
	}
	return fmt.Sprintf("node %q: %s (%s opset %d): %s", u.Node, u.OpType, d, u.Opset, u.Reason)
}

// Unsupported lists every node (subgraphs included) that NewSession would
// refuse.
func (m *Model) Unsupported() []UnsupportedNode {
	var out []UnsupportedNode
	var walk func(g *graph)
	walk = func(g *graph) {
		for _, list := range [][]ValueInfo{g.inputs, g.outputs} {
			for _, vi := range list {
				if vi.NonTensor != "" {
					out = append(out, UnsupportedNode{Node: "graph " + quote(g.name), OpType: "(value)", Opset: m.Opset,
						Reason: fmt.Sprintf("value %q has a %s type; only tensors are supported", vi.Name, vi.NonTensor)})
				}
				if vi.DType != 0 && vi.DType.Size() == 0 {
					out = append(out, UnsupportedNode{Node: "graph " + quote(g.name), OpType: "(value)", Opset: m.Opset,
						Reason: fmt.Sprintf("value %q has dtype %v; supported: f32, i64, i32, bool, u8, i8", vi.Name, onnxpb.TensorProto_DataType(vi.DType))})
				}
			}
		}
		for _, n := range g.nodes {
			if reason := checkSupported(n); reason != "" {
				name := n.name
				if name == "" {
					name = fmt.Sprintf("#%d", n.index)
				}
				out = append(out, UnsupportedNode{Node: name, OpType: n.op, Domain: n.domain, Opset: n.opset, Reason: reason})
			}
			for _, a := range n.attrs {
				if a.g != nil {
					walk(a.g)
				}
			}
		}
	}
	walk(m.graph)
	return out
}

func checkSupported(n *node) string {
	if n.domain != "" {
		return "domain not supported"
	}
	d, ok := registry[n.op]
	if !ok || d.internal {
		return "operator not implemented"
	}
	if n.opset < d.since {
		return fmt.Sprintf("implemented from opset %d", d.since)
	}
	for name := range n.attrs {
		if !d.hasAttr(name) {
			return fmt.Sprintf("attribute %q not supported", name)
		}
	}
	return ""
}

// NewSession prepares m for execution on be: it checks every node is
// supported, folds constants, drops nodes no output needs and computes
// value lifetimes. Run returns the graph outputs and, when extra names
// intermediate values of the main graph, those too (for debugging and
// parity tests).
func NewSession(m *Model, be gpu.Backend, extra ...string) (*Session, error) {
	if us := m.Unsupported(); len(us) > 0 {
		errs := make([]error, 0, len(us))
		for _, u := range us {
			errs = append(errs, u)
		}
		return nil, fmt.Errorf("%s: %w: %d node(s): %w", m.Name, ErrUnsupported, len(us), errors.Join(errs...))
	}
	s := &Session{m: m, be: be, opts: m.opts, weights: map[*float32]gpu.Tensor{}, scratch: map[[2]int][]gpu.Tensor{}, host: map[int][][]float32{}, pool: map[int][][]float32{}, consts: map[*nn.Tensor]bool{}, subs: map[*graph]*plan{}}
	p, err := s.prepare(m.graph, nil, extra...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	s.main = p
	onBackend, onHost := map[string]int{}, map[string]int{}
	for _, n := range p.steps {
		if registry[n.op].backend {
			onBackend[n.op]++
		} else {
			onHost[n.op]++
		}
	}
	s.opts.Logger.Info("onnx: placement", "model", m.Name, "backend", be.Name(),
		"backend_ops", onBackend, "host_ops", onHost, "folded_or_dead", len(m.graph.nodes)-len(p.steps))
	return s, nil
}

// prepare folds constants (Constant nodes and nodes whose inputs are all
// constant) and removes dead nodes. outer holds the constants visible from
// enclosing graphs.
func (s *Session) prepare(g *graph, outer map[string]*nn.Tensor, extra ...string) (*plan, error) {
	p := &plan{g: g, consts: map[string]*nn.Tensor{}, outputs: map[string]bool{}, extra: extra}
	for k, v := range g.inits {
		p.consts[k] = v
	}
	isConst := func(name string) bool {
		if name == "" {
			return true
		}
		if _, ok := p.consts[name]; ok {
			return true
		}
		_, ok := outer[name]
		return ok
	}
	live := []*node{}
	folded := map[string]*node{} // folded DequantizeLinear nodes, by output
	for _, n := range g.nodes {
		foldable := registry[n.op].foldable
		for _, in := range n.inputs {
			if !isConst(in) {
				foldable = false
			}
		}
		for _, a := range n.attrs {
			if a.g != nil {
				foldable = false
			}
		}
		if !foldable {
			live = append(live, n)
			continue
		}
		in := make([]*nn.Tensor, len(n.inputs))
		for i, name := range n.inputs {
			if name == "" {
				continue
			}
			if t, ok := p.consts[name]; ok {
				in[i] = t
			} else {
				in[i] = outer[name]
			}
		}
		out, err := s.runNode(n, in, nil, nil)
		if err != nil {
			return nil, err
		}
		for i, name := range n.outputs {
			if name != "" && i < len(out) {
				p.consts[name] = out[i]
			}
		}
		if n.op == "DequantizeLinear" && n.domain == "" && len(n.outputs) == 1 {
			folded[n.outputs[0]] = n // for fuseQDQ
		}
	}
	// Graph rewrites, in order (each in its own pass_*.go file).
	wanted := map[string]bool{}
	for _, o := range g.outputs {
		wanted[o.Name] = true
	}
	for _, name := range extra {
		wanted[name] = true
	}
	live = fuseQDQ(live, p.consts, wanted, folded)
	live = fuseConvBN(live, p.consts, wanted)
	live = fuseLayerNorm(live, p.consts, wanted)
	live = fuseGelu(live, p.consts, wanted)
	live = fuseQDense(live, p.consts, wanted)
	var shapes map[string]ValueInfo
	if g == s.m.graph {
		shapes = s.shapes()
	}
	graphOut := map[string]bool{}
	for _, o := range g.outputs {
		graphOut[o.Name] = true
	}
	live = fuseEpilogues(live, p.consts, wanted, shapes, graphOut)
	// Subgraphs see this graph's constants and the enclosing ones.
	scope := make(map[string]*nn.Tensor, len(outer)+len(p.consts))
	for k, v := range outer {
		scope[k] = v
	}
	for k, v := range p.consts {
		scope[k] = v
	}
	for _, n := range live {
		for _, a := range n.attrs {
			if a.g != nil {
				sp, err := s.prepare(a.g, scope)
				if err != nil {
					return nil, fmt.Errorf("node %s: subgraph %s: %w", n, quote(a.g.name), err)
				}
				s.subs[a.g] = sp
			}
		}
	}
	// Dead-node elimination: keep what the outputs need.
	need := map[string]bool{}
	for _, o := range g.outputs {
		need[o.Name] = true
		p.outputs[o.Name] = true
	}
	for _, name := range extra {
		found := p.consts[name] != nil
		for _, n := range live {
			for _, o := range n.outputs {
				found = found || o == name
			}
		}
		if !found {
			return nil, fmt.Errorf("no value %q in graph %s", name, quote(g.name))
		}
		need[name] = true
		p.outputs[name] = true
	}
	var keep []*node
	for i := len(live) - 1; i >= 0; i-- {
		n := live[i]
		used := false
		for _, o := range n.outputs {
			if need[o] {
				used = true
			}
		}
		if !used {
			continue
		}
		keep = append(keep, n)
		for _, in := range nodeReads(n) {
			need[in] = true
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	p.steps = keep
	for k := range p.consts {
		if !need[k] {
			delete(p.consts, k)
		}
	}
	for _, t := range p.consts {
		s.consts[t] = true
	}
	p.lastUse = map[string]int{}
	for i, n := range keep {
		for _, in := range nodeReads(n) {
			p.lastUse[in] = i
		}
	}
	// The values each step is the last to read (freed after it).
	p.release = make([][]string, len(keep))
	for i, n := range keep {
		seen := map[string]bool{}
		for _, name := range nodeReads(n) {
			if name == "" || seen[name] || p.lastUse[name] != i || p.outputs[name] {
				continue
			}
			seen[name] = true
			if _, isConst := p.consts[name]; !isConst {
				p.release[i] = append(p.release[i], name)
			}
		}
	}
	p.assignSlots()
	return p, nil
}

// shapes returns the inferred shapes of the main graph's values, which the
// epilogue fusion uses to admit extra inputs. Inference is advisory (the
// kernels check every shape), so a rule that trips over a malformed node
// must not take NewSession down: a panic there means no shapes (and so no
// extra inputs fused), and the node's own kernel reports the error when it
// runs. The fuzz targets keep finding and fixing such rules; this is the
// backstop.
func (s *Session) shapes() (shapes map[string]ValueInfo) {
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Debug("onnx: shape inference failed; fusing without it", "model", s.m.Name, "panic", fmt.Sprint(r))
			shapes = nil
		}
	}()
	return s.m.InferShapes()
}

// nodeReads lists the values a node reads, including the outer-scope names
// its subgraphs use.
func nodeReads(n *node) []string {
	out := append([]string(nil), n.inputs...)
	for _, a := range n.attrs {
		if a.g != nil {
			out = append(out, freeVars(a.g)...)
		}
	}
	return out
}

// freeVars lists the names g reads from enclosing scopes.
func freeVars(g *graph) []string {
	def := map[string]bool{}
	for k := range g.inits {
		def[k] = true
	}
	for _, i := range g.inputs {
		def[i.Name] = true
	}
	seen := map[string]bool{}
	var out []string
	use := func(name string) {
		if name != "" && !def[name] && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, n := range g.nodes {
		for _, in := range nodeReads(n) {
			use(in)
		}
		for _, o := range n.outputs {
			def[o] = true
		}
	}
	for _, o := range g.outputs {
		use(o.Name)
	}
	sort.Strings(out)
	return out
}

// Inputs describes the model's graph inputs (initializers excluded).
func (m *Model) Inputs() []ValueInfo { return m.graph.inputs }

// Outputs describes the model's graph outputs as the file declares them.
func (m *Model) Outputs() []ValueInfo { return m.graph.outputs }

// Run executes the model. inputs maps each graph input name to a tensor of
// its declared dtype and a shape that agrees with its declared dims (a
// symbolic dim must take one value across all inputs). It returns every graph
// output.
func (s *Session) Run(inputs map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	return s.run(inputs, nil)
}

// RunInto is Run writing the results into the caller's tensors: for each
// graph output named in outputs, the tensor there gets the result's dtype,
// shape and values, reusing its Shape and data slices when their capacity
// suffices (a tensor of another dtype is refused; a zero Tensor takes any).
// Outputs not named are dropped. A loop that runs a model on inputs of the
// same shapes into the same tensors allocates nothing after its first Run
// (TestSteadyStateAllocs), where Run hands back a fresh map, headers and
// output buffers each time.
func (s *Session) RunInto(inputs, outputs map[string]*nn.Tensor) error {
	if outputs == nil {
		return fmt.Errorf("%s: RunInto needs an outputs map", s.m.Name)
	}
	_, err := s.run(inputs, outputs)
	return err
}

// copyInto sets dst to a copy of src, reusing dst's slices where they are
// long enough.
func copyInto(dst, src *nn.Tensor) error {
	if dst.DType != 0 && dst.DType != src.DType {
		return fmt.Errorf("%w: the output is %v, the tensor given for it %v", ErrInvalid, src.DType, dst.DType)
	}
	dst.DType = src.DType
	dst.Shape = append(dst.Shape[:0], src.Shape...)
	switch src.DType {
	case nn.Float32:
		dst.F32 = append(dst.F32[:0], src.F32...)
	case nn.Int64:
		dst.I64 = append(dst.I64[:0], src.I64...)
	case nn.Int32:
		dst.I32 = append(dst.I32[:0], src.I32...)
	default:
		dst.U8 = append(dst.U8[:0], src.U8...)
	}
	return nil
}

func (s *Session) run(inputs, into map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	s.runs.RLock()
	defer s.runs.RUnlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s: session is closed", s.m.Name)
	}
	bind := map[string]int{}
	for _, vi := range s.m.graph.inputs {
		t, ok := inputs[vi.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("%s: input %q is missing", s.m.Name, vi.Name)
		}
		if err := checkInput(vi, t, bind, s.opts.MaxTensorElements); err != nil {
			return nil, fmt.Errorf("%s: input %q: %w", s.m.Name, vi.Name, err)
		}
	}
	for name := range inputs {
		found := false
		for _, vi := range s.m.graph.inputs {
			found = found || vi.Name == name
		}
		if !found {
			return nil, fmt.Errorf("%s: the model has no input %q", s.m.Name, name)
		}
	}
	rs := s.spare.Swap(nil)
	if rs == nil {
		rs, _ = s.states.Get().(*runState)
	}
	if rs == nil {
		rs = &runState{refs: map[*float32]int{}}
	}
	var out map[string]*nn.Tensor
	var err error
	if into != nil {
		if rs.results == nil {
			rs.results = map[string]*nn.Tensor{}
		}
		res, e := s.exec(s.main, inputs, nil, rs, rs.results)
		err = e
		for k, t := range res {
			if d := into[k]; d != nil && err == nil {
				if e := copyInto(d, t); e != nil {
					err = fmt.Errorf("output %q: %w", k, e)
				}
			}
			s.release(rs, t) // copied: the buffer goes back to the pool
		}
		clear(res)
	} else {
		out, err = s.exec(s.main, inputs, nil, rs, nil)
		rs.keepOutputs(out)
		for k, t := range out {
			out[k] = detach(t) // the arena's headers stay with rs
		}
	}
	// The map keeps its buckets for the next Run; what it counted now
	// belongs to the caller (outputs) or is back in the pool.
	clear(rs.refs)
	rs.live, rs.next, rs.work, rs.nextOther, rs.intOff = 0, 0, 0, 0, 0
	if !s.spare.CompareAndSwap(nil, rs) {
		s.states.Put(rs)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.m.Name, err)
	}
	return out, nil
}

func checkInput(vi ValueInfo, t *nn.Tensor, bind map[string]int, limit int) error {
	if err := t.Check(); err != nil {
		return err
	}
	if _, err := nn.Elements(t.Shape, limit); err != nil {
		return err
	}
	if vi.DType != 0 && t.DType != vi.DType {
		return fmt.Errorf("dtype %v, the model declares %v", t.DType, vi.DType)
	}
	if !vi.HasShape {
		return nil
	}
	if len(t.Shape) != len(vi.Shape) {
		return fmt.Errorf("shape %v has rank %d, the model declares %v", t.Shape, len(t.Shape), vi.Shape)
	}
	for i, d := range vi.Shape {
		switch {
		case d.Param != "":
			if v, ok := bind[d.Param]; ok && v != t.Shape[i] {
				return fmt.Errorf("dimension %d (%s) is %d but %s is %d in another input", i, d.Param, t.Shape[i], d.Param, v)
			}
			bind[d.Param] = t.Shape[i]
		case d.Value >= 0 && int64(t.Shape[i]) != d.Value:
			return fmt.Errorf("shape %v, the model declares %v", t.Shape, vi.Shape)
		}
	}
	return nil
}

// slots gives every value a plan reads or writes an index into one slice
// of tensors per run, so that executing a step touches no map: slot >= 0 is
// a value of this graph, -1 an absent optional input, and -2-k the k-th name
// read from enclosing scopes (outer).
type slots struct {
	n       int
	index   map[string]int
	names   []string // slot -> value name
	outer   []string
	consts  []slotConst
	in, out [][]int  // per step
	release [][]int  // per step: the slots it is the last to read
	free    [][]int  // per step running subgraphs: the names they read, as codes
	defs    []*opDef // per step
	results []int    // graph outputs, then extra values
	maxIn   int
}

type slotConst struct {
	slot int
	t    *nn.Tensor
}

// assignSlots fills p.sl from the prepared steps.
func (p *plan) assignSlots() {
	sl := &slots{index: map[string]int{}}
	outerIdx := map[string]int{}
	def := func(name string) int {
		if i, ok := sl.index[name]; ok {
			return i
		}
		sl.index[name] = sl.n
		sl.names = append(sl.names, name)
		sl.n++
		return sl.n - 1
	}
	code := func(name string) int {
		if name == "" {
			return -1
		}
		if i, ok := sl.index[name]; ok {
			return i
		}
		k, ok := outerIdx[name]
		if !ok {
			k = len(sl.outer)
			outerIdx[name] = k
			sl.outer = append(sl.outer, name)
		}
		return -2 - k
	}
	names := make([]string, 0, len(p.consts))
	for name := range p.consts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sl.consts = append(sl.consts, slotConst{def(name), p.consts[name]})
	}
	for _, vi := range p.g.inputs {
		def(vi.Name)
	}
	for _, n := range p.steps {
		for _, o := range n.outputs {
			if o != "" {
				def(o)
			}
		}
	}
	// outputs nothing reads (an LSTM's unused Y in Silero VAD v5) and that
	// are not results are released right after their step: no later read
	// would drop their binding, and their buffers would miss the pool
	read := map[string]bool{}
	for _, n := range p.steps {
		for _, name := range nodeReads(n) {
			read[name] = true
		}
	}
	for _, o := range p.g.outputs {
		read[o.Name] = true
	}
	for _, name := range p.extra {
		read[name] = true
	}
	for i, n := range p.steps {
		in := make([]int, len(n.inputs))
		for j, name := range n.inputs {
			in[j] = code(name)
		}
		out := make([]int, len(n.outputs))
		for j, name := range n.outputs {
			out[j] = code(name)
		}
		var rel []int
		for _, name := range p.release[i] {
			if c := code(name); c >= 0 {
				rel = append(rel, c)
			}
		}
		for _, name := range n.outputs {
			if c := code(name); name != "" && c >= 0 && !read[name] && !slices.Contains(rel, c) {
				rel = append(rel, c)
			}
		}
		var free []int
		d := registry[n.op]
		if d.subgraphs {
			seen := map[string]bool{}
			for _, a := range n.attrs {
				if a.g == nil {
					continue
				}
				for _, name := range freeVars(a.g) {
					if !seen[name] {
						seen[name] = true
						free = append(free, code(name))
					}
				}
			}
		}
		sl.in, sl.out, sl.release, sl.free = append(sl.in, in), append(sl.out, out), append(sl.release, rel), append(sl.free, free)
		sl.defs = append(sl.defs, &d)
		sl.maxIn = max(sl.maxIn, len(in))
	}
	for _, o := range p.g.outputs {
		sl.results = append(sl.results, code(o.Name))
	}
	for _, name := range p.extra {
		sl.results = append(sl.results, code(name))
	}
	p.sl = sl
}

// exec runs a prepared plan. inputs holds the graph inputs; outer the
// values of enclosing scopes (for subgraphs).
func (s *Session) exec(p *plan, inputs map[string]*nn.Tensor, outer map[string]*nn.Tensor, rs *runState, res map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	sl := p.sl
	// Each nesting depth (the main graph, an If branch, a Loop body) has a
	// frame in rs that keeps its slot array and kernel context Run after
	// Run, so a steady-state exec allocates neither.
	f := rs.frame()
	defer rs.pop()
	if cap(f.vals) < sl.n+sl.maxIn {
		f.vals = make([]*nn.Tensor, sl.n+sl.maxIn)
	}
	vals := f.vals[:sl.n+sl.maxIn]
	clear(vals)
	defer clear(vals) // no tensor stays reachable from the pool
	vals, inBuf := vals[:sl.n], vals[sl.n:]
	for _, c := range sl.consts {
		vals[c.slot] = c.t
	}
	for name, t := range inputs {
		if i, ok := sl.index[name]; ok {
			vals[i] = t
		}
	}
	get := func(code int) (*nn.Tensor, bool) {
		switch {
		case code >= 0:
			return vals[code], vals[code] != nil
		case code == -1:
			return nil, true
		}
		t, ok := outer[sl.outer[-2-code]]
		return t, ok
	}
	c := &f.c
	*c = kctx{s: s, limit: s.opts.MaxTensorElements, rs: rs}
	c.fresh = c.freshBuf[:0]
	for i, n := range p.steps {
		in := inBuf[:len(sl.in[i])]
		for j, code := range sl.in[i] {
			t, ok := get(code)
			if !ok {
				return nil, fmt.Errorf("node %s: input %q has no value", n, n.inputs[j])
			}
			in[j] = t
		}
		c.scope = nil
		if sl.defs[i].subgraphs {
			if f.scope == nil {
				f.scope = make(map[string]*nn.Tensor, len(sl.free[i]))
			}
			clear(f.scope)
			c.scope = f.scope
			for _, code := range sl.free[i] {
				if t, ok := get(code); ok && t != nil {
					if code >= 0 {
						c.scope[sl.names[code]] = t
					} else {
						c.scope[sl.outer[-2-code]] = t
					}
				}
			}
		}
		c.n = n
		c.fresh = c.fresh[:0]
		var t0 time.Duration
		if traceNode != nil {
			t0 = traceClock()
		}
		out, err := s.runDef(c, sl.defs[i], in)
		if traceNode != nil {
			traceNode(n, in, out, traceClock()-t0)
		}
		clear(in)
		if err != nil {
			return nil, err
		}
		for j, slot := range sl.out[i] {
			if slot == -1 {
				continue
			}
			if j >= len(out) || out[j] == nil {
				return nil, fmt.Errorf("node %s: output %d (%q) was not produced", n, j, n.outputs[j])
			}
			vals[slot] = out[j]
			rs.bind(out[j])
		}
		// A buffer the kernel allocated but returned in no output (a
		// temporary, like a variadic Sum's partial sums) goes back now.
		for _, b := range c.fresh {
			if cnt, owned := rs.refs[&b[0]]; owned && cnt == 0 {
				s.releaseBuf(rs, b)
			}
		}
		clear(c.fresh)
		// Liveness: drop values no later step reads.
		for _, slot := range sl.release[i] {
			if t := vals[slot]; t != nil {
				s.release(rs, t)
				vals[slot] = nil
			}
		}
	}
	if res == nil {
		res = make(map[string]*nn.Tensor, len(sl.results))
	}
	clear(res)
	if outer != nil {
		// A subgraph's results go to the node that ran it, whose exec binds
		// them to its own slots: drop this level's binding of each (once a
		// slot), or their buffers would never reach a count of zero and
		// would miss the pool every Run.
		for k, code := range sl.results {
			if code < 0 || slices.Contains(sl.results[:k], code) {
				continue
			}
			rs.unbind(vals[code])
		}
	}
	for k, code := range sl.results {
		t, ok := get(code)
		if k < len(p.g.outputs) {
			if !ok || t == nil {
				return nil, fmt.Errorf("output %q has no value", p.g.outputs[k].Name)
			}
			res[p.g.outputs[k].Name] = t
			continue
		}
		if ok && t != nil {
			res[p.extra[k-len(p.g.outputs)]] = t
		}
	}
	return res, nil
}

// runDef runs one node whose operator is d with the context c (c.n set).
// traceNode, when set (by the op profile in a test, never in a serving
// process), sees every node the executor runs with its time.
// traceClock is its clock.
var (
	traceNode  func(n *node, in, out []*nn.Tensor, d time.Duration)
	traceClock func() time.Duration
)

func (s *Session) runDef(c *kctx, d *opDef, in []*nn.Tensor) ([]*nn.Tensor, error) {
	n := c.n
	if len(in) < d.minIn || (d.maxIn >= 0 && len(in) > d.maxIn) {
		return nil, fmt.Errorf("%w: node %s: %d inputs (want %d..%d)", ErrInvalid, n, len(in), d.minIn, d.maxIn)
	}
	for i := 0; i < d.minIn; i++ {
		if in[i] == nil {
			return nil, fmt.Errorf("%w: node %s: required input %d is empty", ErrInvalid, n, i)
		}
	}
	out, err := d.run(c, in)
	if err != nil {
		return nil, fmt.Errorf("node %s (opset %d): %w", n, n.opset, err)
	}
	return out, nil
}

func (s *Session) runNode(n *node, in []*nn.Tensor, scope map[string]*nn.Tensor, rs *runState) ([]*nn.Tensor, error) {
	d := registry[n.op]
	if len(in) < d.minIn || (d.maxIn >= 0 && len(in) > d.maxIn) {
		return nil, fmt.Errorf("%w: node %s: %d inputs (want %d..%d)", ErrInvalid, n, len(in), d.minIn, d.maxIn)
	}
	for i := 0; i < d.minIn; i++ {
		if in[i] == nil {
			return nil, fmt.Errorf("%w: node %s: required input %d is empty", ErrInvalid, n, i)
		}
	}
	c := &kctx{s: s, n: n, limit: s.opts.MaxTensorElements, scope: scope, rs: rs}
	out, err := d.run(c, in)
	if err != nil {
		return nil, fmt.Errorf("node %s (opset %d): %w", n, n.opset, err)
	}
	return out, nil
}

// Stats reports the copies made so far.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	w := len(s.weights)
	s.mu.Unlock()
	return Stats{BytesToBackend: s.toDevice.Load(), BytesFromBackend: s.fromDevice.Load(), BackendCalls: s.deviceCalls.Load(), Weights: w}
}

// Close waits for running calls to finish and frees the backend copies of
// the weights; Run fails afterwards.
func (s *Session) Close() {
	s.runs.Lock()
	defer s.runs.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.weights {
		s.be.Free(t)
		delete(s.weights, k)
	}
	for k, ts := range s.scratch {
		for _, t := range ts {
			s.be.Free(t)
		}
		delete(s.scratch, k)
	}
	s.closed = true
}

// one returns t as a kernel's only result. During a Run the slice is the
// context's own, reused by the next node (exec copies the result out
// first); while folding constants it is a new one.
// three is one for a kernel with three results (LSTM's Y, Y_h, Y_c).
func (c *kctx) three(a, b, d *nn.Tensor) []*nn.Tensor {
	if c.rs == nil {
		return []*nn.Tensor{a, b, d}
	}
	c.res = [3]*nn.Tensor{a, b, d}
	return c.res[:3]
}

func (c *kctx) one(t *nn.Tensor) []*nn.Tensor {
	if c.rs == nil {
		return []*nn.Tensor{t}
	}
	c.res[0] = t
	return c.res[:1]
}

// kctx is what a kernel sees.
type kctx struct {
	res      [3]*nn.Tensor // see one and three
	fresh    [][]float32   // pooled buffers the current node allocated (see exec)
	freshBuf [4][]float32  // fresh's first backing array
	s        *Session
	n        *node
	limit    int
	scope    map[string]*nn.Tensor
	rs       *runState // nil while folding constants
	charged  bool      // the node charged its products up front; gemm does not again
}

// charge counts a*b*d multiply-adds against the Run's budget (or, while
// folding constants, NewSession's), refusing them before they are spent
// when the total would pass Options.MaxRunWork. The product is checked
// without overflow.
func (c *kctx) charge(what string, a, b, d int) error {
	limit := c.s.opts.MaxRunWork
	work := &c.s.foldWork
	if c.rs != nil {
		work = &c.rs.work
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	hi2, lo2 := bits.Mul64(lo, uint64(d))
	if a < 0 || b < 0 || d < 0 || hi != 0 || hi2 != 0 || lo2 > uint64(limit) || *work+int64(lo2) > limit {
		return fmt.Errorf("%w: %s of %d x %d x %d would bring the work of this run past the limit of %d multiply-adds (Options.MaxRunWork)",
			ErrInvalid, what, a, b, d, limit)
	}
	*work += int64(lo2)
	return nil
}

// runState tracks, for one Run, the f32 buffers its kernels allocated and
// how many values (names in the environments of the graph and its
// subgraphs) refer to each: a view (Reshape, Identity) shares its input's
// buffer, so a buffer returns to the session's pool only when the last value
// using it is dead. Buffers never leave a Run while a value can reach them:
// graph outputs and values nobody reads are never released.
type runState struct {
	frames []*execFrame // per nesting depth, reused Run after Run
	depth  int
	refs   map[*float32]int
	live   int64        // bytes of the tensors this Run allocated and holds
	work   int64        // multiply-adds charged so far (Options.MaxRunWork)
	boxes  []*tensorBox // tensor headers, reused Run after Run
	next   int          // boxes used by this Run
	// small non-f32 tensors (shapes, indices, masks, quantized
	// activations) by allocation order: the k-th one of a Run reuses the
	// k-th buffer of the last Run with this state (no refcounts: nothing of
	// a Run outlives it but its outputs, whose buffers are dropped here at
	// the end of the Run, see keepOutputs)
	others     []*otherBuf
	nextOther  int
	results    map[string]*nn.Tensor // RunInto's result map, reused
	intBuf     []int                 // kernels' small int scratch (kctx.ints), reset each Run
	intOff     int
	otherBytes int64 // capacity held in others
}

// otherBuf is one reusable non-f32 tensor: its header, shape storage and
// a buffer for each integer element size.
type otherBuf struct {
	t     nn.Tensor
	shape [4]int
	u8    []uint8
	i32   []int32
	i64   []int64
}

// Bounds of the non-f32 arena: tensors up to maxOtherBytes each, at most
// maxOthers of them and maxOtherTotal bytes a state; larger or further
// allocations take nn.New as before. An int8 model's u8 activations, int32
// accumulators and patch matrices live here, so the bounds are those of
// the f32 pool (maxPoolBytes): a quantized conv model runs without
// allocating (TestSteadyStateAllocs).
const (
	maxOtherBytes = 16 << 20
	maxOthers     = 4096
	maxOtherTotal = 64 << 20
)

// other returns a non-f32 tensor of n elements from the run's arena, or nil
// when the arena does not take it.
func (rs *runState) other(dt nn.DType, shape []int, n int, zero bool) *nn.Tensor {
	size := int64(n) * int64(dt.Size())
	if size > maxOtherBytes || len(shape) > len(otherBuf{}.shape) || rs.nextOther >= maxOthers {
		return nil
	}
	if rs.nextOther == len(rs.others) {
		rs.others = append(rs.others, new(otherBuf))
	}
	b := rs.others[rs.nextOther]
	r := copy(b.shape[:], shape)
	b.t = nn.Tensor{DType: dt, Shape: b.shape[:r:r]}
	grow := func(have int) bool {
		if have >= n {
			return true
		}
		if rs.otherBytes+size > maxOtherTotal {
			return false
		}
		rs.otherBytes += size
		return true
	}
	switch dt {
	case nn.Int64:
		if !grow(cap(b.i64)) {
			return nil
		}
		if cap(b.i64) < n {
			b.i64 = make([]int64, n)
		}
		b.t.I64 = b.i64[:n]
		if zero {
			clear(b.t.I64)
		}
	case nn.Int32:
		if !grow(cap(b.i32)) {
			return nil
		}
		if cap(b.i32) < n {
			b.i32 = make([]int32, n)
		}
		b.t.I32 = b.i32[:n]
		if zero {
			clear(b.t.I32)
		}
	case nn.Bool, nn.Uint8, nn.Int8:
		if !grow(cap(b.u8)) {
			return nil
		}
		if cap(b.u8) < n {
			b.u8 = make([]uint8, n)
		}
		b.t.U8 = b.u8[:n]
		if zero {
			clear(b.t.U8)
		}
	default:
		return nil
	}
	rs.nextOther++
	return &b.t
}

// keepOutputs drops from the non-f32 arena the buffers of the tensors a
// Run hands its caller (views share the buffer, so the backing arrays are
// compared by their last element), so that the next Run does not write
// into them.
func (rs *runState) keepOutputs(out map[string]*nn.Tensor) {
	for _, t := range out {
		if t == nil || t.DType == nn.Float32 {
			continue
		}
		for _, b := range rs.others[:rs.nextOther] {
			switch {
			case cap(t.U8) > 0 && cap(b.u8) > 0 && &t.U8[:cap(t.U8)][cap(t.U8)-1] == &b.u8[:cap(b.u8)][cap(b.u8)-1]:
				rs.otherBytes -= int64(cap(b.u8))
				b.u8 = nil
			case cap(t.I32) > 0 && cap(b.i32) > 0 && &t.I32[:cap(t.I32)][cap(t.I32)-1] == &b.i32[:cap(b.i32)][cap(b.i32)-1]:
				rs.otherBytes -= 4 * int64(cap(b.i32))
				b.i32 = nil
			case cap(t.I64) > 0 && cap(b.i64) > 0 && &t.I64[:cap(t.I64)][cap(t.I64)-1] == &b.i64[:cap(b.i64)][cap(b.i64)-1]:
				rs.otherBytes -= 8 * int64(cap(b.i64))
				b.i64 = nil
			}
		}
	}
}

// maxPoolBytes bounds the f32 buffers a Session keeps for reuse.
const maxPoolBytes = 64 << 20

func (c *kctx) alloc(dt nn.DType, shape []int) (*nn.Tensor, error) { return c.allocZ(dt, shape, true) }

// allocFull is alloc for a kernel that writes every element of the result:
// a reused f32 buffer is not cleared first.
func (c *kctx) allocFull(dt nn.DType, shape []int) (*nn.Tensor, error) {
	return c.allocZ(dt, shape, false)
}

func (c *kctx) allocZ(dt nn.DType, shape []int, zero bool) (*nn.Tensor, error) {
	n, err := nn.Elements(shape, c.limit)
	if err != nil {
		return nil, fmt.Errorf("%w: output %v: %v", ErrInvalid, dt, err)
	}
	if err := c.charge("output", n, 1, 1); err != nil {
		return nil, err
	}
	// The live-bytes budget: a Run's tensors, or at NewSession the
	// constants that folding creates.
	live := &c.s.folded
	if c.rs != nil {
		live = &c.rs.live
	}
	size := int64(n) * int64(max(dt.Size(), 1))
	if *live+size > c.s.opts.MaxLiveBytes {
		return nil, fmt.Errorf("%w: output %v%v would bring the live tensors to %d bytes, over the limit of %d (Options.MaxLiveBytes)",
			ErrInvalid, dt, slices.Clone(shape), *live+size, c.s.opts.MaxLiveBytes)
	}
	*live += size
	if c.rs != nil && dt == nn.Float32 {
		if n > 0 {
			buf := c.s.poolGetRaw(n, zero)
			c.rs.refs[&buf[0]] = 0
			c.fresh = append(c.fresh, buf)
			return c.rs.tensor(dt, shape, buf), nil
		}
	}
	if c.rs != nil && dt != nn.Float32 {
		if t := c.rs.other(dt, shape, n, zero); t != nil {
			return t, nil
		}
	}
	t, err := nn.New(dt, shape, c.limit)
	if err != nil {
		return nil, fmt.Errorf("%w: output %v: %v", ErrInvalid, dt, err)
	}
	return t, nil
}

// ints returns n zeroed ints of scratch that live until the end of the
// Run (index maps, attribute arrays): from the run state's buffer, reused
// Run after Run, or fresh while folding constants. A kernel must not keep
// them past its Run.
func (c *kctx) ints(n int) []int {
	rs := c.rs
	if rs == nil || n > 1<<16 {
		return make([]int, n)
	}
	if rs.intOff+n > len(rs.intBuf) {
		// a bigger buffer; the slices already handed out keep the old one
		rs.intBuf = make([]int, max(2*len(rs.intBuf), rs.intOff+n, 256))
		rs.intOff = 0
	}
	b := rs.intBuf[rs.intOff : rs.intOff+n : rs.intOff+n]
	rs.intOff += n
	clear(b)
	return b
}

// tensorBox holds a tensor and its shape in one allocation.
type tensorBox struct {
	t     nn.Tensor
	shape [4]int
}

// newTensor returns an f32 tensor header for buf with a copy of shape.
func newTensor(dt nn.DType, shape []int, buf []float32) *nn.Tensor {
	if len(shape) > len(tensorBox{}.shape) {
		return &nn.Tensor{DType: dt, Shape: append([]int(nil), shape...), F32: buf}
	}
	b := new(tensorBox)
	r := copy(b.shape[:], shape)
	b.t = nn.Tensor{DType: dt, Shape: b.shape[:r:r], F32: buf}
	return &b.t
}

// tensor returns a tensor header for buf from the run's arena: the boxes
// are reused by the next Run with this state, so Run hands the caller
// copies of the headers it returns (detach).
func (rs *runState) tensor(dt nn.DType, shape []int, buf []float32) *nn.Tensor {
	if len(shape) > len(tensorBox{}.shape) {
		return newTensor(dt, shape, buf)
	}
	if rs.next == len(rs.boxes) {
		rs.boxes = append(rs.boxes, new(tensorBox))
	}
	b := rs.boxes[rs.next]
	rs.next++
	r := copy(b.shape[:], shape)
	b.t = nn.Tensor{DType: dt, Shape: b.shape[:r:r], F32: buf}
	return &b.t
}

// detach returns t with a header of its own (buffers are shared).
func detach(t *nn.Tensor) *nn.Tensor {
	if t == nil {
		return nil
	}
	d := *t
	d.Shape = append([]int(nil), t.Shape...)
	return &d
}

// bind counts a new value referring to t's buffer.
func (rs *runState) bind(t *nn.Tensor) {
	if rs == nil || t == nil || len(t.F32) == 0 {
		return
	}
	if _, owned := rs.refs[&t.F32[0]]; owned {
		rs.refs[&t.F32[0]]++
	}
}

// unbind drops one binding of t without releasing its buffer (the count
// may reach zero: the caller binds it again).
func (rs *runState) unbind(t *nn.Tensor) {
	if rs == nil || t == nil || len(t.F32) == 0 {
		return
	}
	if cnt, owned := rs.refs[&t.F32[0]]; owned && cnt > 0 {
		rs.refs[&t.F32[0]] = cnt - 1
	}
}

// release drops a dead value; the buffer goes back to the pool when no
// value refers to it.
func (s *Session) release(rs *runState, t *nn.Tensor) {
	if rs == nil || t == nil || len(t.F32) == 0 {
		return
	}
	p := &t.F32[0]
	cnt, owned := rs.refs[p]
	if !owned {
		return
	}
	if cnt > 1 {
		rs.refs[p] = cnt - 1
		return
	}
	s.releaseBuf(rs, t.F32)
}

// releaseBuf returns buf, which no value refers to any more, to the pool.
func (s *Session) releaseBuf(rs *runState, buf []float32) {
	delete(rs.refs, &buf[0])
	rs.live -= 4 * int64(len(buf))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poolBytes+4*int64(len(buf)) <= maxPoolBytes {
		s.pool[len(buf)] = append(s.pool[len(buf)], buf)
		s.poolBytes += 4 * int64(len(buf))
	}
}

// poolGet returns a zeroed f32 buffer of n elements, reused when one is free.
func (s *Session) poolGet(n int) []float32 { return s.poolGetRaw(n, true) }

// poolGetRaw is poolGet; a reused buffer is cleared only when zero is set.
func (s *Session) poolGetRaw(n int, zero bool) []float32 {
	s.mu.Lock()
	if free := s.pool[n]; len(free) > 0 {
		b := free[len(free)-1]
		s.pool[n] = free[:len(free)-1]
		s.poolBytes -= 4 * int64(n)
		s.mu.Unlock()
		if zero {
			clear(b)
		}
		return b
	}
	s.mu.Unlock()
	return make([]float32, n)
}

// gemm computes out[m,n] = op(a)[m,k] x op(b)[k,n] on the backend. A
// constant operand (aConst/bConst) is uploaded once and kept.
func (c *kctx) gemm(out, a, b []float32, m, k, n int, transA, transB, aConst, bConst bool) error {
	if m == 0 || n == 0 {
		return nil
	}
	if !c.charged {
		if err := c.charge("product", m, k, n); err != nil {
			return err
		}
	}
	if k == 0 { // an empty sum; the SGEMM kernels need k >= 1
		clear(out[:m*n])
		return nil
	}
	if cpu, ok := c.s.be.(*gpu.CPU); ok {
		// The CPU backend's memory is host memory: run its SGEMM on the
		// operands in place, with no copy in or out.
		if !transA && k >= 8 && ((n < smallN && !transB) || (m <= smallM && transB)) {
			c.dots(out, a, b, m, k, n, transB)
			c.s.deviceCalls.Add(1)
			return nil
		}
		ar, br := m*k, k*n
		if err := cpu.Sgemm(transA, transB, m, n, k, a[:ar], b[:br], out[:m*n]); err != nil {
			return err
		}
		c.s.deviceCalls.Add(1)
		return nil
	}
	be := c.s.be
	operand := func(data []float32, rows, cols int, isConst bool) (gpu.Tensor, bool, error) {
		if isConst && len(data) > 0 {
			c.s.mu.Lock()
			t, ok := c.s.weights[&data[0]]
			c.s.mu.Unlock()
			if ok && t.Len() == len(data) {
				if sh := t.Shape(); len(sh) != 2 || sh[0] != rows || sh[1] != cols {
					return nil, false, fmt.Errorf("weight shared with another shape")
				}
				return t, false, nil
			}
		}
		var t gpu.Tensor
		var err error
		if isConst && len(data) > 0 {
			t, err = be.New(gpu.F32, []int{rows, cols})
		} else {
			t, err = c.s.scratchGet(rows, cols)
		}
		if err != nil {
			return nil, false, err
		}
		if err := gpu.WriteF32(be, t, data); err != nil {
			be.Free(t)
			return nil, false, err
		}
		c.s.toDevice.Add(int64(4 * len(data)))
		if isConst && len(data) > 0 {
			// Another Run may have uploaded the same weight meanwhile: keep
			// the first copy (it may be in use) and free this one.
			c.s.mu.Lock()
			defer c.s.mu.Unlock()
			if first, ok := c.s.weights[&data[0]]; ok {
				be.Free(t)
				return first, false, nil
			}
			c.s.weights[&data[0]] = t
			return t, false, nil
		}
		return t, true, nil
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	ta, freeA, err := operand(a[:ar*ac], ar, ac, aConst)
	if err != nil {
		return err
	}
	if freeA {
		defer c.s.scratchPut(ta)
	}
	tb, freeB, err := operand(b[:br*bc], br, bc, bConst)
	if err != nil {
		return err
	}
	if freeB {
		defer c.s.scratchPut(tb)
	}
	to, err := c.s.scratchGet(m, n)
	if err != nil {
		return err
	}
	defer c.s.scratchPut(to)
	if err := be.MatMul(to, ta, tb, transA, transB); err != nil {
		return err
	}
	c.s.deviceCalls.Add(1)
	if err := gpu.ReadF32(be, to, out[:m*n]); err != nil {
		return err
	}
	c.s.fromDevice.Add(int64(4 * m * n))
	return nil
}

// smallN is the product width below which the CPU path takes dot products
// instead of SGEMM: its register tile is 16 columns wide, so a pointwise
// Conv on a 2x2 plane (n = 4) or the 1x1 planes of a squeeze-excite block
// (n = 1) would waste most of each tile and pack B for nothing.
const smallN = 8

// smallM is the product height up to which a product with a transposed B
// (the recurrent H x R^T of an LSTM step, batch rows) takes dot products of
// a's rows with b's rows, instead of SGEMM packing all of B for a row or two.
const smallM = 4

// dots computes out[m,n] = a[m,k] x op(b) as m*n dot products of a's rows
// with op(b)'s columns: b's rows when transB is set (b is [n,k]), b's
// columns transposed once into a work buffer otherwise.
func (c *kctx) dots(out, a, b []float32, m, k, n int, transB bool) {
	bt := b[:k*n]
	if n > 1 && !transB {
		bt = c.s.hostGet(k * n)
		defer c.s.hostPut(bt)
		for p := 0; p < k; p++ {
			for j := 0; j < n; j++ {
				bt[j*k+p] = b[p*n+j]
			}
		}
	}
	grain := max(1, partWork/max(1, k*n))
	if c.serial(m, grain) {
		dotRows(out, a, bt, k, n, 0, m)
		return
	}
	c.parallel(m, grain, func(lo, hi int) { dotRows(out, a, bt, k, n, lo, hi) })
}

// dotRows computes rows [lo, hi) of dots.
func dotRows(out, a, bt []float32, k, n, lo, hi int) {
	var acc [4]float32
	var acc2 [8]float32
	i := lo
	if n >= 4 {
		// two rows at a time: the four column loads are shared and eight
		// accumulators keep the FMA units busy
		for ; i+2 <= hi; i += 2 {
			rows := a[i*k : (i+2)*k]
			j := 0
			for ; j+4 <= n; j += 4 {
				vec.Dot4x2(&acc2, rows, k, bt[j*k:(j+4)*k], k)
				copy(out[i*n+j:i*n+j+4], acc2[:4])
				copy(out[(i+1)*n+j:(i+1)*n+j+4], acc2[4:])
			}
			for ; j < n; j++ {
				out[i*n+j] = vec.Dot(rows[:k], bt[j*k:(j+1)*k])
				out[(i+1)*n+j] = vec.Dot(rows[k:], bt[j*k:(j+1)*k])
			}
		}
	}
	for ; i < hi; i++ {
		row := a[i*k : (i+1)*k]
		j := 0
		for ; j+4 <= n; j += 4 { // four columns share the loads of the row
			vec.Dot4(&acc, row, bt[j*k:(j+4)*k], k)
			copy(out[i*n+j:i*n+j+4], acc[:])
		}
		for ; j < n; j++ {
			out[i*n+j] = vec.Dot(row, bt[j*k:(j+1)*k])
		}
	}
}

// partWork is the least work (multiply-adds, or element steps) a part of a
// split kernel gets. Waking a parked thread for a part costs tens of
// microseconds on this class of VM, so a part must be worth about as much:
// measured on the 2-vCPU VM, smaller grains (16K) made 2 threads slower than
// 1 on every shared model.
var partWork = 1 << 18

// serial reports whether parallel(n, grain, ...) would run on the calling
// goroutine alone; callers then call the work directly, so that no closure
// is allocated on the common path.
func (c *kctx) serial(n, grain int) bool { return !par.Parallel(c.threads(), n, grain) }

// threads is how many goroutines a kernel may use: the CPU backend's
// thread count, 1 for other backends (whose host-side kernels are not the
// hot path).
func (c *kctx) threads() int {
	if cpu, ok := c.s.be.(*gpu.CPU); ok {
		return cpu.Threads()
	}
	return 1
}

// parallel calls f over [0, n) in contiguous chunks of at least
// grain/par.ChunksPerThread items, on this goroutine and on up to
// threads()-1 helpers that claim chunks as they start (internal/par), when
// there are at least two grains; it returns when all are done.
func (c *kctx) parallel(n, grain int, f func(lo, hi int)) { par.For(c.threads(), n, grain, f) }

// isConst reports whether t is one of the session's constants (a weight).
func (c *kctx) isConst(t *nn.Tensor) bool { return c.s.consts[t] }

// maxScratch bounds the free backend tensors kept per shape.
const maxScratch = 4

// scratchGet returns a backend f32 tensor of shape [rows, cols] for one
// product's operand or result, reusing a freed one: its contents are
// overwritten by Write or MatMul before they are read.
func (s *Session) scratchGet(rows, cols int) (gpu.Tensor, error) {
	key := [2]int{rows, cols}
	s.mu.Lock()
	if free := s.scratch[key]; len(free) > 0 {
		t := free[len(free)-1]
		s.scratch[key] = free[:len(free)-1]
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	return s.be.New(gpu.F32, []int{rows, cols})
}

func (s *Session) scratchPut(t gpu.Tensor) {
	sh := t.Shape()
	key := [2]int{sh[0], sh[1]}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.scratch[key]) >= maxScratch {
		s.be.Free(t)
		return
	}
	s.scratch[key] = append(s.scratch[key], t)
}

// hostGet returns a work buffer of n floats with unspecified contents (the
// caller overwrites every element), reusing a freed one of that length.
func (s *Session) hostGet(n int) []float32 {
	s.mu.Lock()
	if free := s.host[n]; len(free) > 0 {
		b := free[len(free)-1]
		s.host[n] = free[:len(free)-1]
		s.mu.Unlock()
		return b
	}
	s.mu.Unlock()
	return make([]float32, n)
}

func (s *Session) hostPut(b []float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.host[len(b)]) < maxScratch {
		s.host[len(b)] = append(s.host[len(b)], b)
	}
}

// execFrame is the per-depth scratch of exec: the slot array and the kernel
// context.
type execFrame struct {
	vals  []*nn.Tensor
	c     kctx
	scope map[string]*nn.Tensor // an If node's enclosing scope, reused node after node
	sub   map[string]*nn.Tensor // the results of the subgraph an If at this depth runs
	outs  []*nn.Tensor          // an If node's outputs (read by exec at once)
}

// frame returns the frame for the next nesting depth, making it on first use.
func (rs *runState) frame() *execFrame {
	if rs.depth == len(rs.frames) {
		rs.frames = append(rs.frames, &execFrame{})
	}
	f := rs.frames[rs.depth]
	rs.depth++
	return f
}

func (rs *runState) pop() {
	rs.depth--
	f := rs.frames[rs.depth]
	f.c = kctx{}
}

// viewOut is a kernel's single result: t's data under shape, with the header
// from the run's arena (shape is copied, so it may be a caller's stack
// buffer) and the result slice from c.one.
func (c *kctx) viewOut(t *nn.Tensor, shape []int) []*nn.Tensor {
	rs := c.rs
	if rs == nil || len(shape) > len(tensorBox{}.shape) {
		return []*nn.Tensor{view(t, slices.Clone(shape))}
	}
	if rs.next == len(rs.boxes) {
		rs.boxes = append(rs.boxes, new(tensorBox))
	}
	b := rs.boxes[rs.next]
	rs.next++
	r := copy(b.shape[:], shape)
	b.t = *t
	b.t.Shape = b.shape[:r:r]
	return c.one(&b.t)
}
