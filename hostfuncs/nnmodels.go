package hostfuncs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn/onnx"
)

// NNServices configures the model groups, wasi_ephemeral_nn (capability
// CapWASINN) and fennec_nn (capability CapNN). The zero value has no
// models: load_by_name answers not-found and fennec_nn's graph_load ENOENT-like
// EDENIED, while wasi-nn's load (model bytes from the guest) still works.
type NNServices struct {
	// Models are the operator's named models (`--nn-preload`), loaded once
	// per process and shared by every instance that is granted them.
	Models *ModelSet
	// Options bound models that guests pass as bytes (wasi-nn load). Zero
	// fields take nn/onnx's defaults, except MaxLiveBytes, which is also
	// capped by the instance's free tensor quota at load time.
	Options onnx.Options
}

// ModelSet is a process's named models: each is decoded and prepared once,
// and every instance granted it runs the same onnx.Session (safe for
// concurrent runs), so the weights are held once however many instances
// use them. Each instance's execution contexts keep their own inputs and
// outputs.
type ModelSet struct {
	mu      sync.Mutex
	backend gpu.Backend
	opts    onnx.Options
	models  map[string]*SharedModel
	// pinned are models registered by digest (Register): a module whose
	// manifest pins NAME to a digest loads the registered model of that
	// digest, so two versions of a module, each pinning its own model,
	// run side by side during a swap.
	pinned map[pinKey]*pinEntry
	closed bool
}

type pinKey struct{ name, sha string }

// pinEntry is one registered model and how many registrations hold it.
type pinEntry struct {
	m *SharedModel
	n int
}

// SharedModel is one loaded model of a ModelSet.
type SharedModel struct {
	Name string // the name guests load it by
	Path string // the file it came from
	// Bytes is what the model is charged against the tensor quota of each
	// instance that loads it: the size of its file and its external data
	// files (the weights it holds).
	Bytes int64
	// SHA256 is the model's digest (onnx.Model.Digest: the SHA-256 of the
	// file's bytes, or for a model with external data a SHA-256 that also
	// covers every external file), checked against the manifest's
	// [nn.sha256] pins.
	SHA256  string
	sess    *onnx.Session
	inputs  []onnx.ValueInfo
	outputs []onnx.ValueInfo
	// refs counts the set's reference (while m is the current model of
	// its name) and one per graph of an instance that uses it.
	refs   atomic.Int64
	closed atomic.Bool
}

// Inputs and Outputs describe the model's graph inputs and outputs.
func (m *SharedModel) Inputs() []onnx.ValueInfo  { return m.inputs }
func (m *SharedModel) Outputs() []onnx.ValueInfo { return m.outputs }

// NewModelSet returns an empty set whose models run on be (the CPU when
// nil) with the bounds of opts.
func NewModelSet(be gpu.Backend, opts onnx.Options) *ModelSet {
	if be == nil {
		be = gpu.NewCPU()
	}
	return &ModelSet{backend: be, opts: opts, models: map[string]*SharedModel{}, pinned: map[pinKey]*pinEntry{}}
}

// Preload is one `--nn-preload NAME:ENCODING:TARGET:PATH` (WasmEdge's
// convention): a model file the operator names for guests.
type Preload struct {
	Name, Encoding, Target, Path string
}

// ParsePreload parses NAME:ENCODING:TARGET:PATH. The encoding must be onnx
// and the target cpu, gpu or auto (case-insensitive; the model runs on the
// engine's backend either way). The path may itself contain ':'.
func ParsePreload(spec string) (Preload, error) {
	parts := strings.SplitN(spec, ":", 4)
	if len(parts) != 4 || parts[0] == "" || parts[3] == "" {
		return Preload{}, fmt.Errorf("--nn-preload %q: want NAME:ENCODING:TARGET:PATH, e.g. default:onnx:cpu:model.onnx", spec)
	}
	p := Preload{Name: parts[0], Encoding: strings.ToLower(parts[1]), Target: strings.ToLower(parts[2]), Path: parts[3]}
	if !validModelName(p.Name) {
		return Preload{}, fmt.Errorf("--nn-preload %q: model name %q must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'", spec, p.Name)
	}
	if p.Encoding != "onnx" {
		return Preload{}, fmt.Errorf("--nn-preload %q: encoding %q is not supported (this host runs onnx)", spec, parts[1])
	}
	switch p.Target {
	case "cpu", "gpu", "auto":
	default:
		return Preload{}, fmt.Errorf("--nn-preload %q: target %q is not cpu, gpu or auto", spec, parts[2])
	}
	return p, nil
}

func validModelName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Add loads the model p names and makes it available by p.Name. Errors
// name the file (nn/onnx's errors name the node or field).
func (s *ModelSet) Add(p Preload) error {
	sm, err := s.load(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		sm.retire()
		return errors.New("model set is closed")
	}
	if _, dup := s.models[p.Name]; dup {
		sm.retire()
		return fmt.Errorf("model %s is named twice", p.Name)
	}
	s.models[p.Name] = sm
	return nil
}

// load reads, decodes and prepares the model p names (onnx.Load reads each
// file once, so the digest is of the very bytes that are decoded).
func (s *ModelSet) load(p Preload) (*SharedModel, error) {
	if !validModelName(p.Name) {
		return nil, fmt.Errorf("model name %q must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'", p.Name)
	}
	m, err := onnx.Load(p.Path, s.opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", p.Name, err)
	}
	return s.prepare(p.Name, p.Path, m)
}

// decode prepares model bytes; source names them in errors, dir holds
// external data ("" refuses it).
func (s *ModelSet) decode(name, source string, data []byte, dir string) (*SharedModel, error) {
	m, err := onnx.Decode(data, filepath.Base(source), dir, s.opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	return s.prepare(name, source, m)
}

// prepare makes a decoded model a SharedModel with its session.
func (s *ModelSet) prepare(name, source string, m *onnx.Model) (*SharedModel, error) {
	sess, err := onnx.NewSession(m, s.backend)
	if err != nil {
		return nil, fmt.Errorf("model %s: %s: %w", name, source, err)
	}
	sm := &SharedModel{Name: name, Path: source, Bytes: m.Bytes(), SHA256: m.Digest(),
		sess: sess, inputs: m.Inputs(), outputs: modelOutputs(m)}
	sm.refs.Store(1) // the set's own reference
	return sm, nil
}

// Register makes model bytes (a deployed bundle's model) available to the
// modules whose manifest pins name to their SHA-256, and returns that
// digest. Registering the same name and bytes again only counts another
// registration (the weights stay loaded once); Unregister drops one, and
// the model is released when the last registration and the last graph
// using it are gone. source names the bytes in errors and in
// SharedModel.Path. External tensor data is refused: a registered model is
// self-contained.
func (s *ModelSet) Register(name, source string, data []byte) (string, error) {
	if !validModelName(name) {
		return "", fmt.Errorf("model name %q must be 1-64 characters of a-z, A-Z, 0-9, '.', '_' or '-'", name)
	}
	sum := sha256.Sum256(data)
	k := pinKey{name, hex.EncodeToString(sum[:])}
	s.mu.Lock()
	if e := s.pinned[k]; e != nil && !s.closed {
		e.n++
		s.mu.Unlock()
		return k.sha, nil
	}
	s.mu.Unlock()
	sm, err := s.decode(name, source, data, "")
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		sm.retire()
		return "", errors.New("model set is closed")
	}
	if e := s.pinned[k]; e != nil { // registered meanwhile
		e.n++
		sm.retire()
		return k.sha, nil
	}
	s.pinned[k] = &pinEntry{m: sm, n: 1}
	return k.sha, nil
}

// Unregister drops one registration of the model name with digest sha.
func (s *ModelSet) Unregister(name, sha string) {
	s.mu.Lock()
	k := pinKey{name, sha}
	e := s.pinned[k]
	if e == nil {
		s.mu.Unlock()
		return
	}
	e.n--
	if e.n > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.pinned, k)
	s.mu.Unlock()
	e.m.release()
}

// Registered returns the registered model name with digest sha, or nil.
func (s *ModelSet) Registered(name, sha string) *SharedModel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pinned[pinKey{name, sha}]; e != nil {
		return e.m
	}
	return nil
}

// Get returns the model named name, or nil.
func (s *ModelSet) Get(name string) *SharedModel {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.models[name]
}

// Replace loads the model p names and makes it the model of p.Name (adding
// the name when the set lacks it), returning the model it replaced (nil if
// none). Graphs instances already opened keep running the old model until
// they are freed; graphs opened from now on get the new one. The old
// model's memory is released when its last graph is freed. A model that
// fails to load leaves the set as it was.
func (s *ModelSet) Replace(p Preload) (*SharedModel, error) {
	sm, err := s.load(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sm.retire()
		return nil, errors.New("model set is closed")
	}
	old := s.models[p.Name]
	s.models[p.Name] = sm
	s.mu.Unlock()
	if old != nil {
		old.release()
	}
	return old, nil
}

// Remove takes the model name out of the set (graphs already open keep it
// until they are freed) and reports whether it was there.
func (s *ModelSet) Remove(name string) bool {
	s.mu.Lock()
	old := s.models[name]
	delete(s.models, name)
	s.mu.Unlock()
	if old != nil {
		old.release()
	}
	return old != nil
}

// open returns the current model of name with a reference taken for a
// graph (released by SharedModel.release), or nil.
// A pinned name (sha not "") gets the model registered with that digest,
// else the current model of the name.
func (s *ModelSet) open(name, sha string) *SharedModel {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.models[name]
	if e := s.pinned[pinKey{name, sha}]; sha != "" && e != nil {
		m = e.m
	}
	if m == nil || !m.acquire() {
		return nil
	}
	return m
}

// Names lists the models, sorted.
func (s *ModelSet) Names() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.models))
	for n := range s.models {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Close waits for runs in flight and frees every model's session.
func (s *ModelSet) Close() {
	s.mu.Lock()
	ms := s.models
	pins := s.pinned
	s.models, s.pinned, s.closed = map[string]*SharedModel{}, map[pinKey]*pinEntry{}, true
	s.mu.Unlock()
	for _, m := range ms {
		m.release()
	}
	for _, e := range pins {
		e.m.release()
	}
}

// modelOutputs describes m's outputs, taking the dtype and shape that shape
// inference derives where the file declares none.
func modelOutputs(m *onnx.Model) []onnx.ValueInfo {
	outs := slices.Clone(m.Outputs())
	var inferred map[string]onnx.ValueInfo
	for i, o := range outs {
		if o.DType != 0 && o.HasShape {
			continue
		}
		if inferred == nil {
			inferred = m.InferShapes()
		}
		if v, ok := inferred[o.Name]; ok {
			if o.DType == 0 {
				outs[i].DType = v.DType
			}
			if !o.HasShape {
				outs[i].Shape, outs[i].HasShape = v.Shape, v.HasShape
			}
		}
	}
	return outs
}

// acquire takes a reference for a graph that will run m. It fails once m
// has been retired (replaced or its set closed) and its last user left.
func (m *SharedModel) acquire() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one frees the session's memory.
func (m *SharedModel) release() {
	if m.refs.Add(-1) == 0 {
		m.sess.Close()
		m.closed.Store(true)
	}
}

// retire drops the set's reference of a model never published.
func (m *SharedModel) retire() { m.release() }

// Retired reports whether m's memory has been released: it was replaced
// (or its set closed) and every graph that used it has been freed.
func (m *SharedModel) Retired() bool { return m.closed.Load() }
