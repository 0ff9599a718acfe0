// Package onnx loads ONNX models and runs them on a gpu.Backend.
//
// A model file is untrusted input. Load checks every dimension, length and
// count before allocating anything it describes, refuses graphs with cycles,
// undefined names or subgraphs nested deeper than Options.MaxSubgraphDepth,
// resolves external tensor data only inside the model's directory, and
// reports unsupported operators by node, op type and opset. NewSession then
// plans and runs the graph; see Session for where each node executes.
package onnx

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Opset range of the default (ai.onnx) domain this package accepts.
const (
	MinOpset = 9
	MaxOpset = 21
)

// ErrInvalid marks a malformed or hostile model; ErrUnsupported a valid
// model using something this engine cannot run. Errors wrap one of them.
var (
	ErrInvalid     = errors.New("invalid model")
	ErrUnsupported = errors.New("unsupported")
)

// Options bound what a model may ask for. Zero fields take the defaults.
type Options struct {
	// MaxFileBytes bounds the model file, and the external data files of
	// one model together (default 2 GiB).
	MaxFileBytes int64
	// MaxTensorElements bounds every tensor the model declares or the
	// executor creates, initializers and intermediate values alike
	// (default 1<<28, 1 GiB of f32).
	MaxTensorElements int
	// MaxSubgraphDepth bounds the nesting of If/Loop/Scan bodies
	// (default 8).
	MaxSubgraphDepth int
	// MaxNodes bounds the node count over all graphs (default 1<<20).
	MaxNodes int
	// MaxLiveBytes bounds the bytes of tensors one Run holds at once, and
	// the bytes constant folding may create at NewSession (default 4 GiB):
	// many tensors each under MaxTensorElements cannot add up to more.
	MaxLiveBytes int64
	// MaxRunWork bounds the work of one Run, and of constant folding at
	// NewSession, in multiply-adds (default 1<<38, minutes of one core):
	// each MatMul, Gemm, Conv, pooling window and RNN product is charged
	// before it is computed, and every element a node writes counts one,
	// so a model whose shapes are each within MaxTensorElements cannot make
	// a Run spin without end. The error names the node.
	MaxRunWork int64
	// Logger receives placement and copy notes; nil discards them (the
	// one library where nil is not slog.Default: docs/RATIONALE.md "Why
	// does a nil Logger mean slog.Default(), not discard?").
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 2 << 30
	}
	if o.MaxTensorElements <= 0 {
		o.MaxTensorElements = 1 << 28
	}
	if o.MaxSubgraphDepth <= 0 {
		o.MaxSubgraphDepth = 8
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = 1 << 20
	}
	if o.MaxLiveBytes <= 0 {
		o.MaxLiveBytes = 4 << 30
	}
	if o.MaxRunWork <= 0 {
		o.MaxRunWork = 1 << 38
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Model is a decoded, validated ONNX model.
type Model struct {
	Name      string // file name, for errors
	IRVersion int64
	Opset     int // of the default domain
	Producer  string
	graph     *graph
	opts      Options
	digest    string
	external  []ExternalFile
	bytes     int64
}

// ExternalFile is an external data file a model's tensors were read from.
type ExternalFile struct {
	Location string `json:"location"` // as the model names it, relative to its directory
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"` // lower-case hex, of the bytes read
}

// Bytes is the size of what the model was read from: its file (or the
// bytes given to Decode) and its external data files.
func (m *Model) Bytes() int64 { return m.bytes }

// ExternalData lists the external data files the model was read from,
// sorted by location (none for a self-contained model).
func (m *Model) ExternalData() []ExternalFile { return slices.Clone(m.external) }

// Digest is the lower-case hex SHA-256 that pins the model: for a
// self-contained model, the SHA-256 of its file (what sha256sum prints);
// for one with external data, the SHA-256 of the text
//
//	fennec-onnx-digest-v1
//	model HEX-OF-THE-MODEL-FILE
//	external LOCATION BYTES HEX
//	...
//
// one external line per file in location order (ExternalData), each
// ending in a newline, so a pin covers every byte the weights were read
// from. The bytes hashed are the very bytes decoded: each file is read
// once, into memory.
func (m *Model) Digest() string { return m.digest }

// modelDigest is Digest from the model file's SHA-256 (hex) and its
// external files in location order.
func modelDigest(modelSHA256 string, external []ExternalFile) string {
	if len(external) == 0 {
		return modelSHA256
	}
	var b strings.Builder
	b.WriteString("fennec-onnx-digest-v1\nmodel " + modelSHA256 + "\n")
	for _, e := range external {
		fmt.Fprintf(&b, "external %s %d %s\n", e.Location, e.Bytes, e.SHA256)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Load reads and validates the model at path. External tensor data is read
// from path's directory.
func Load(path string, opts Options) (*Model, error) {
	opts = opts.withDefaults()
	data, err := readBounded(path, opts.MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return decode(data, filepath.Base(path), filepath.Dir(path), opts)
}

// Decode validates a model held in memory. dir is where external tensor data
// lives; "" refuses external data.
func Decode(data []byte, name, dir string, opts Options) (*Model, error) {
	return decode(data, name, dir, opts.withDefaults())
}

func decode(data []byte, name, dir string, opts Options) (*Model, error) {
	if int64(len(data)) > opts.MaxFileBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes exceeds the limit of %d", name, ErrInvalid, len(data), opts.MaxFileBytes)
	}
	var mp onnxpb.ModelProto
	if err := (proto.UnmarshalOptions{RecursionLimit: 64 + 8*opts.MaxSubgraphDepth}).Unmarshal(data, &mp); err != nil {
		return nil, fmt.Errorf("%s: %w: not an ONNX ModelProto: %v", name, ErrInvalid, err)
	}
	m := &Model{Name: name, IRVersion: mp.GetIrVersion(), Producer: mp.GetProducerName(), opts: opts}
	if mp.Graph == nil {
		return nil, fmt.Errorf("%s: %w: model has no graph", name, ErrInvalid)
	}
	if m.IRVersion < 3 {
		return nil, fmt.Errorf("%s: %w: ir_version %d (want >= 3)", name, ErrUnsupported, m.IRVersion)
	}
	domains := map[string]int{}
	for _, o := range mp.OpsetImport {
		d := o.GetDomain()
		if d == "ai.onnx" {
			d = ""
		}
		domains[d] = int(o.GetVersion())
	}
	v, ok := domains[""]
	if !ok {
		return nil, fmt.Errorf("%s: %w: no opset_import for the default domain", name, ErrInvalid)
	}
	if v < MinOpset || v > MaxOpset {
		return nil, fmt.Errorf("%s: %w: default-domain opset %d (supported %d..%d)", name, ErrUnsupported, v, MinOpset, MaxOpset)
	}
	m.Opset = v
	ld := &loader{name: name, dir: dir, opts: opts, domains: domains}
	g, err := ld.graph(mp.Graph, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m.graph = g
	for loc, f := range ld.ext {
		m.external = append(m.external, ExternalFile{Location: loc, Bytes: int64(len(f.data)), SHA256: f.sha})
	}
	slices.SortFunc(m.external, func(a, b ExternalFile) int { return strings.Compare(a.Location, b.Location) })
	sum := sha256.Sum256(data)
	m.digest = modelDigest(hex.EncodeToString(sum[:]), m.external)
	m.bytes = int64(len(data)) + ld.extBytes
	return m, nil
}

type loader struct {
	name    string
	dir     string
	opts    Options
	domains map[string]int
	nodes   int
	// ext holds each external data file read, by location as the model
	// names it: read whole and once, so its digest is of the bytes the
	// tensors are cut from.
	ext      map[string]*extFile
	extBytes int64
}

type extFile struct {
	path string // resolved
	data []byte
	sha  string
}

// graph converts and validates one graph. outer lists the names visible from
// enclosing graphs (nil for the main graph).
func (ld *loader) graph(gp *onnxpb.GraphProto, outer map[string]bool, depth int) (*graph, error) {
	if depth > ld.opts.MaxSubgraphDepth {
		return nil, fmt.Errorf("%w: subgraphs nested deeper than %d", ErrInvalid, ld.opts.MaxSubgraphDepth)
	}
	where := "graph " + quote(gp.GetName())
	g := &graph{name: gp.GetName(), inits: map[string]*nn.Tensor{}, depth: depth}
	defined := map[string]bool{}
	for _, t := range gp.Initializer {
		if t.GetName() == "" {
			return nil, fmt.Errorf("%w: %s: initializer without a name", ErrInvalid, where)
		}
		if _, dup := g.inits[t.GetName()]; dup {
			return nil, fmt.Errorf("%w: %s: initializer %q defined twice", ErrInvalid, where, t.GetName())
		}
		tt, err := ld.tensor(t)
		if err != nil {
			return nil, fmt.Errorf("%s: initializer %q: %w", where, t.GetName(), err)
		}
		g.inits[t.GetName()] = tt
		defined[t.GetName()] = true
	}
	if len(gp.SparseInitializer) > 0 {
		return nil, fmt.Errorf("%w: %s: sparse initializers", ErrUnsupported, where)
	}
	for _, vi := range gp.Input {
		info, err := valueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("%s: input %q: %w", where, vi.GetName(), err)
		}
		if _, isInit := g.inits[info.Name]; isInit {
			continue // an initializer listed as an input (IR < 4): a constant here
		}
		if defined[info.Name] {
			return nil, fmt.Errorf("%w: %s: input %q listed twice", ErrInvalid, where, info.Name)
		}
		defined[info.Name] = true
		g.inputs = append(g.inputs, info)
	}
	for _, vi := range gp.Output {
		info, err := valueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("%s: output %q: %w", where, vi.GetName(), err)
		}
		g.outputs = append(g.outputs, info)
	}
	g.valueInfo = map[string]ValueInfo{}
	for _, vi := range gp.ValueInfo {
		if info, err := valueInfo(vi); err == nil {
			g.valueInfo[info.Name] = info
		}
	}
	ld.nodes += len(gp.Node)
	if ld.nodes > ld.opts.MaxNodes {
		return nil, fmt.Errorf("%w: more than %d nodes", ErrInvalid, ld.opts.MaxNodes)
	}
	// Names visible to subgraphs: everything in this graph plus outer scopes.
	visible := map[string]bool{}
	for k := range outer {
		visible[k] = true
	}
	for k := range defined {
		visible[k] = true
	}
	for _, np := range gp.Node {
		for _, o := range np.Output {
			if o != "" {
				visible[o] = true
			}
		}
	}
	producers := map[string]int{}
	for i, np := range gp.Node {
		n, err := ld.node(np, i, visible, depth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for _, o := range n.outputs {
			if o == "" {
				continue
			}
			if defined[o] {
				return nil, fmt.Errorf("%w: %s: node %s: output %q is already defined", ErrInvalid, where, n, o)
			}
			if _, dup := producers[o]; dup {
				return nil, fmt.Errorf("%w: %s: node %s: output %q is produced twice", ErrInvalid, where, n, o)
			}
			producers[o] = i
		}
		g.nodes = append(g.nodes, n)
	}
	if err := g.sortAndCheck(defined, outer, producers); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return g, nil
}

func quote(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return fmt.Sprintf("%q", s)
}

func (ld *loader) node(np *onnxpb.NodeProto, idx int, visible map[string]bool, depth int) (*node, error) {
	n := &node{wc: &winCache{}, name: np.GetName(), op: np.GetOpType(), domain: np.GetDomain(), index: idx,
		inputs: np.Input, outputs: np.Output, attrs: map[string]*attr{}}
	if n.domain == "ai.onnx" {
		n.domain = ""
	}
	if n.op == "" {
		return nil, fmt.Errorf("%w: node %s has no op_type", ErrInvalid, n)
	}
	v, ok := ld.domains[n.domain]
	if !ok {
		return nil, fmt.Errorf("%w: node %s: domain %q is not in opset_import", ErrInvalid, n, n.domain)
	}
	n.opset = v
	for _, ap := range np.Attribute {
		a, err := ld.attr(ap, visible, depth)
		if err != nil {
			return nil, fmt.Errorf("node %s: attribute %q: %w", n, ap.GetName(), err)
		}
		if _, dup := n.attrs[ap.GetName()]; dup {
			return nil, fmt.Errorf("%w: node %s: attribute %q given twice", ErrInvalid, n, ap.GetName())
		}
		n.attrs[ap.GetName()] = a
	}
	return n, nil
}

func (ld *loader) attr(ap *onnxpb.AttributeProto, visible map[string]bool, depth int) (*attr, error) {
	if ap.GetRefAttrName() != "" {
		return nil, fmt.Errorf("%w: attribute references (functions)", ErrUnsupported)
	}
	a := &attr{kind: ap.GetType()}
	switch ap.GetType() {
	case onnxpb.AttributeProto_FLOAT:
		a.f = ap.GetF()
	case onnxpb.AttributeProto_INT:
		a.i = ap.GetI()
	case onnxpb.AttributeProto_STRING:
		a.s = string(ap.GetS())
	case onnxpb.AttributeProto_FLOATS:
		a.floats = ap.Floats
	case onnxpb.AttributeProto_INTS:
		a.ints = ap.Ints
	case onnxpb.AttributeProto_STRINGS:
		for _, s := range ap.Strings {
			a.strs = append(a.strs, string(s))
		}
	case onnxpb.AttributeProto_TENSOR:
		if ap.T == nil {
			return nil, fmt.Errorf("%w: tensor attribute without a tensor", ErrInvalid)
		}
		t, err := ld.tensor(ap.T)
		if err != nil {
			return nil, err
		}
		a.t = t
	case onnxpb.AttributeProto_GRAPH:
		if ap.G == nil {
			return nil, fmt.Errorf("%w: graph attribute without a graph", ErrInvalid)
		}
		g, err := ld.graph(ap.G, visible, depth+1)
		if err != nil {
			return nil, err
		}
		a.g = g
	default:
		return nil, fmt.Errorf("%w: attribute type %v", ErrUnsupported, ap.GetType())
	}
	return a, nil
}

// ValueInfo describes a graph input or output: its name, element type and
// shape, whose dimensions may be symbolic.
type ValueInfo struct {
	Name     string   `json:"name"`
	DType    nn.DType `json:"-"`
	Shape    []Dim    `json:"shape"`
	HasShape bool     `json:"has_shape"` // false when the model gives no shape (any rank)
	// NonTensor names a type this engine cannot hold ("sequence",
	// "optional", "map", ...); "" for tensors and untyped values.
	NonTensor string `json:"-"`
}

// MarshalJSON writes the dtype by name and dims as numbers or names.
func (v ValueInfo) MarshalJSON() ([]byte, error) {
	dims := make([]any, len(v.Shape))
	for i, d := range v.Shape {
		switch {
		case d.Param != "":
			dims[i] = d.Param
		case d.Value < 0:
			dims[i] = nil
		default:
			dims[i] = d.Value
		}
	}
	return json.Marshal(struct {
		Name     string `json:"name"`
		DType    string `json:"dtype"`
		Shape    []any  `json:"shape"`
		HasShape bool   `json:"has_shape"`
	}{v.Name, v.DType.String(), dims, v.HasShape})
}

// ShapeString writes the shape as [batch,3,48,192], or "?" without one.
func (v ValueInfo) ShapeString() string {
	if !v.HasShape {
		return "?"
	}
	parts := make([]string, len(v.Shape))
	for i, d := range v.Shape {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Dim is one dimension: a fixed size (Value >= 0), a named symbolic size
// (Param, such as "batch"), or unknown (Value < 0, Param "").
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Value < 0:
		return "?"
	}
	return fmt.Sprint(d.Value)
}

func valueInfo(vi *onnxpb.ValueInfoProto) (ValueInfo, error) {
	info := ValueInfo{Name: vi.GetName()}
	if info.Name == "" {
		return info, fmt.Errorf("%w: value without a name", ErrInvalid)
	}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		switch vi.GetType().GetValue().(type) {
		case nil:
			return info, nil // untyped (allowed for subgraph values)
		case *onnxpb.TypeProto_SequenceType:
			info.NonTensor = "sequence"
		case *onnxpb.TypeProto_OptionalType:
			info.NonTensor = "optional"
		case *onnxpb.TypeProto_MapType:
			info.NonTensor = "map"
		default:
			info.NonTensor = "non-tensor"
		}
		return info, nil // refused by NewSession (Model.Unsupported)
	}
	info.DType = nn.DType(tt.GetElemType())
	if tt.Shape != nil {
		if len(tt.Shape.Dim) > nn.MaxRank {
			return info, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, len(tt.Shape.Dim), nn.MaxRank)
		}
		info.HasShape = true
		for _, d := range tt.Shape.Dim {
			switch {
			case d.GetDimParam() != "":
				info.Shape = append(info.Shape, Dim{Value: -1, Param: d.GetDimParam()})
			case d.Value != nil && d.GetDimValue() >= 0:
				if _, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
					info.Shape = append(info.Shape, Dim{Value: d.GetDimValue()})
					break
				}
				info.Shape = append(info.Shape, Dim{Value: -1})
			case d.Value != nil:
				return info, fmt.Errorf("%w: negative dimension %d", ErrInvalid, d.GetDimValue())
			default:
				info.Shape = append(info.Shape, Dim{Value: -1})
			}
		}
	}
	return info, nil
}

// tensor converts a TensorProto, checking its claimed size against the bytes
// that are really there before allocating.
func (ld *loader) tensor(tp *onnxpb.TensorProto) (*nn.Tensor, error) {
	dt := nn.DType(tp.GetDataType())
	if dt.Size() == 0 {
		return nil, fmt.Errorf("%w: dtype %v (%d)", ErrUnsupported, onnxpb.TensorProto_DataType(tp.GetDataType()), tp.GetDataType())
	}
	if tp.Segment != nil {
		return nil, fmt.Errorf("%w: segmented tensors", ErrUnsupported)
	}
	if len(tp.Dims) > nn.MaxRank {
		return nil, fmt.Errorf("%w: rank %d exceeds %d", ErrInvalid, len(tp.Dims), nn.MaxRank)
	}
	shape := make([]int, len(tp.Dims))
	for i, d := range tp.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dimension %d is %d", ErrInvalid, i, d)
		}
		shape[i] = int(d)
	}
	n, err := nn.Elements(shape, ld.opts.MaxTensorElements)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	size := n * dt.Size()
	raw := tp.RawData
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		raw, err = ld.external(tp, int64(size))
		if err != nil {
			return nil, err
		}
	}
	// Every source is checked to hold exactly n elements before New.
	var have int
	switch {
	case raw != nil:
		have = len(raw) / dt.Size()
		if len(raw) != size {
			return nil, fmt.Errorf("%w: %v%v needs %d bytes of raw data, has %d", ErrInvalid, dt, shape, size, len(raw))
		}
	case dt == nn.Float32:
		have = len(tp.FloatData)
	case dt == nn.Int64:
		have = len(tp.Int64Data)
	default:
		have = len(tp.Int32Data)
	}
	if have != n {
		return nil, fmt.Errorf("%w: %v%v needs %d elements, has %d", ErrInvalid, dt, shape, n, have)
	}
	t, err := nn.New(dt, shape, ld.opts.MaxTensorElements)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if raw != nil {
		switch dt {
		case nn.Float32:
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case nn.Int64:
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case nn.Int32:
			for i := range t.I32 {
				t.I32[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		default:
			copy(t.U8, raw)
		}
		return t, nil
	}
	switch dt {
	case nn.Float32:
		copy(t.F32, tp.FloatData)
	case nn.Int64:
		copy(t.I64, tp.Int64Data)
	case nn.Int32:
		copy(t.I32, tp.Int32Data)
	default:
		for i, v := range tp.Int32Data {
			t.U8[i] = uint8(v)
		}
	}
	return t, nil
}

// external reads a tensor's external data, refusing paths that leave the
// model's directory and ranges beyond the file's end.
func (ld *loader) external(tp *onnxpb.TensorProto, size int64) ([]byte, error) {
	var loc string
	var off, length int64 = 0, -1
	for _, kv := range tp.ExternalData {
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset", "length":
			var v int64
			if _, err := fmt.Sscan(kv.GetValue(), &v); err != nil || v < 0 {
				return nil, fmt.Errorf("%w: external data %s %q", ErrInvalid, kv.GetKey(), kv.GetValue())
			}
			if kv.GetKey() == "offset" {
				off = v
			} else {
				length = v
			}
		}
	}
	if ld.dir == "" {
		return nil, fmt.Errorf("%w: external data %q but the model was not loaded from a directory", ErrInvalid, loc)
	}
	if loc == "" || !filepath.IsLocal(loc) || strings.ContainsRune(loc, 0) {
		return nil, fmt.Errorf("%w: external data location %q is not a path inside the model's directory", ErrInvalid, loc)
	}
	dir, err := filepath.EvalSymlinks(ld.dir)
	if err != nil {
		return nil, err
	}
	p, err := filepath.EvalSymlinks(filepath.Join(dir, loc))
	if err != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	if rel, err := filepath.Rel(dir, p); err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%w: external data %q resolves outside the model's directory", ErrInvalid, loc)
	}
	if length < 0 {
		length = size
	}
	if length != size {
		return nil, fmt.Errorf("%w: external data %q: length %d, tensor needs %d bytes", ErrInvalid, loc, length, size)
	}
	ef := ld.ext[loc]
	if ef == nil {
		for l, e := range ld.ext {
			if e.path == p {
				return nil, fmt.Errorf("%w: external data %q and %q name the same file", ErrInvalid, l, loc)
			}
		}
		if len(ld.ext) >= maxExternalFiles {
			return nil, fmt.Errorf("%w: external data %q: more than %d external data files", ErrInvalid, loc, maxExternalFiles)
		}
		data, err := readBounded(p, ld.opts.MaxFileBytes-ld.extBytes)
		if err != nil {
			return nil, fmt.Errorf("external data %q (the limit on a model's external data files together): %w", loc, err)
		}
		sum := sha256.Sum256(data)
		ef = &extFile{path: p, data: data, sha: hex.EncodeToString(sum[:])}
		if ld.ext == nil {
			ld.ext = map[string]*extFile{}
		}
		ld.ext[loc] = ef
		ld.extBytes += int64(len(data))
	}
	if n := int64(len(ef.data)); off > n || length > n-off {
		return nil, fmt.Errorf("%w: external data %q: bytes %d..%d lie beyond its end (%d bytes)", ErrInvalid, loc, off, off+length, n)
	}
	return bytes.Clone(ef.data[off : off+length]), nil
}

// maxExternalFiles bounds how many external data files one model may
// read (exporters write one, or one per large tensor).
const maxExternalFiles = 1024

// readBounded reads the file at path whole, refusing one of more than max
// bytes: one buffer of the file's size (io.ReadAll alone doubles its way
// up: twice the file allocated); a file that grew since Stat is read on to
// its end, within the limit.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%w: file of %d bytes exceeds the limit of %d", ErrInvalid, st.Size(), max)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%w (file shorter than its %d bytes)", err, st.Size())
	}
	rest, err := io.ReadAll(io.LimitReader(f, max+1-st.Size()))
	if err != nil {
		return nil, err
	}
	if data = append(data, rest...); int64(len(data)) > max {
		return nil, fmt.Errorf("%w: file grew past the limit of %d bytes", ErrInvalid, max)
	}
	return data, nil
}
