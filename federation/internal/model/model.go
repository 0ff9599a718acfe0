// Package model holds the shared CBOR Model and Tensor structures of
// docs/ABI.md ("Shared CBOR structures") and the conversions the hub needs:
// a model's f32 tensors flattened to one vector, and back.
package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Dtype codes, as in the ABI.
const (
	F32 = 1
	I8  = 2
	I32 = 3
)

// Limits bound what a decoder accepts from the network.
const (
	MaxTensors   = 4096
	MaxRank      = 8
	MaxElements  = 1 << 28 // per model, 1 GiB of f32
	MaxNameBytes = 256
)

// Tensor is the ABI's Tensor map.
type Tensor struct {
	Name  string   `cbor:"name"`
	Dtype uint64   `cbor:"dtype"`
	Shape []uint64 `cbor:"shape"`
	Data  []byte   `cbor:"data"`
}

// Model is the ABI's Model map.
type Model struct {
	Name    string   `cbor:"name"`
	Version uint64   `cbor:"version"`
	Tensors []Tensor `cbor:"tensors"`
}

func dtypeSize(d uint64) int {
	switch d {
	case F32, I32:
		return 4
	case I8:
		return 1
	}
	return 0
}

// Elements returns the element count of t's shape, or an error when the
// shape is malformed or too large.
func (t *Tensor) Elements() (int, error) {
	if len(t.Shape) > MaxRank {
		return 0, fmt.Errorf("tensor %q: rank %d > %d", t.Name, len(t.Shape), MaxRank)
	}
	n := uint64(1)
	for i, d := range t.Shape {
		if d > MaxElements {
			return 0, fmt.Errorf("tensor %q: shape[%d] = %d too large", t.Name, i, d)
		}
		n *= d
		if n > MaxElements {
			return 0, fmt.Errorf("tensor %q: %d+ elements exceed %d", t.Name, n, MaxElements)
		}
	}
	return int(n), nil
}

// Validate checks every tensor's name, dtype, shape and data length.
func (m *Model) Validate() error {
	if len(m.Name) > MaxNameBytes {
		return fmt.Errorf("model: name longer than %d bytes", MaxNameBytes)
	}
	if len(m.Tensors) > MaxTensors {
		return fmt.Errorf("model %q: %d tensors > %d", m.Name, len(m.Tensors), MaxTensors)
	}
	total := 0
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if len(t.Name) > MaxNameBytes {
			return fmt.Errorf("model %q: tensors[%d].name longer than %d bytes", m.Name, i, MaxNameBytes)
		}
		sz := dtypeSize(t.Dtype)
		if sz == 0 {
			return fmt.Errorf("model %q: tensors[%d] (%q): unknown dtype %d", m.Name, i, t.Name, t.Dtype)
		}
		n, err := t.Elements()
		if err != nil {
			return fmt.Errorf("model %q: tensors[%d]: %w", m.Name, i, err)
		}
		if len(t.Data) != n*sz {
			return fmt.Errorf("model %q: tensors[%d] (%q): data is %d bytes, shape %v needs %d",
				m.Name, i, t.Name, len(t.Data), t.Shape, n*sz)
		}
		total += n
		if total > MaxElements {
			return fmt.Errorf("model %q: more than %d elements", m.Name, MaxElements)
		}
	}
	return nil
}

// Params returns the number of f32 elements in m (the length of Flatten's
// vector). m must be valid.
func (m *Model) Params() int {
	n := 0
	for i := range m.Tensors {
		if m.Tensors[i].Dtype == F32 {
			n += len(m.Tensors[i].Data) / 4
		}
	}
	return n
}

// Flatten returns m's f32 tensors concatenated in order. Non-f32 tensors
// are skipped (they are not aggregated).
func (m *Model) Flatten() []float32 {
	v := make([]float32, 0, m.Params())
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Dtype != F32 {
			continue
		}
		for j := 0; j+4 <= len(t.Data); j += 4 {
			v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(t.Data[j:])))
		}
	}
	return v
}

// WithVector returns a copy of m whose f32 tensors hold v (laid out as
// Flatten lays them out) and whose version is version.
func (m *Model) WithVector(v []float32, version uint64) (Model, error) {
	if len(v) != m.Params() {
		return Model{}, fmt.Errorf("model %q: vector has %d elements, model has %d f32 parameters", m.Name, len(v), m.Params())
	}
	out := Model{Name: m.Name, Version: version, Tensors: make([]Tensor, len(m.Tensors))}
	off := 0
	for i := range m.Tensors {
		t := m.Tensors[i]
		nt := Tensor{Name: t.Name, Dtype: t.Dtype, Shape: slices.Clone(t.Shape)}
		if t.Dtype != F32 {
			nt.Data = slices.Clone(t.Data)
		} else {
			n := len(t.Data) / 4
			nt.Data = make([]byte, len(t.Data))
			for j := 0; j < n; j++ {
				binary.LittleEndian.PutUint32(nt.Data[4*j:], math.Float32bits(v[off+j]))
			}
			off += n
		}
		out.Tensors[i] = nt
	}
	return out, nil
}

// SameLayout reports an error unless o has m's tensor names, dtypes and shapes.
func (m *Model) SameLayout(o *Model) error {
	if len(m.Tensors) != len(o.Tensors) {
		return fmt.Errorf("model: %d tensors, expected %d", len(o.Tensors), len(m.Tensors))
	}
	for i := range m.Tensors {
		a, b := &m.Tensors[i], &o.Tensors[i]
		if a.Name != b.Name || a.Dtype != b.Dtype || !slices.Equal(a.Shape, b.Shape) {
			return fmt.Errorf("model: tensors[%d] is %q dtype %d shape %v, expected %q dtype %d shape %v",
				i, b.Name, b.Dtype, b.Shape, a.Name, a.Dtype, a.Shape)
		}
	}
	return nil
}

// F32 builds an f32 tensor from values.
func F32Tensor(name string, shape []uint64, vals []float32) Tensor {
	d := make([]byte, 4*len(vals))
	for i, x := range vals {
		binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, Dtype: F32, Shape: shape, Data: d}
}

// I32Tensor builds an i32 tensor.
func I32Tensor(name string, shape []uint64, vals []int32) Tensor {
	d := make([]byte, 4*len(vals))
	for i, x := range vals {
		binary.LittleEndian.PutUint32(d[4*i:], uint32(x))
	}
	return Tensor{Name: name, Dtype: I32, Shape: shape, Data: d}
}

// Float32s decodes an f32 tensor's data.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.Dtype != F32 || len(t.Data)%4 != 0 {
		return nil, fmt.Errorf("tensor %q: not f32 data", t.Name)
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		MaxNestedLevels:   16,
		MaxArrayElements:  MaxTensors * 2,
		MaxMapPairs:       64,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v (a Model or any protocol structure) as deterministic CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes CBOR from untrusted bytes with bounded nesting and
// collection sizes; unknown fields and duplicate keys are errors.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }

// UnmarshalLoose is Unmarshal that ignores unknown fields (for outputs of
// guest modules, which may add their own).
func UnmarshalLoose(b []byte, v any) error { return looseMode.Unmarshal(b, v) }

var looseMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:  16,
		MaxArrayElements: MaxTensors * 2,
		MaxMapPairs:      1024,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// Decode decodes and validates a Model from untrusted bytes.
func Decode(b []byte) (Model, error) {
	var m Model
	if err := Unmarshal(b, &m); err != nil {
		return Model{}, fmt.Errorf("model: decode: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Model{}, err
	}
	return m, nil
}

// ErrLayout is returned when updates do not share the global model's layout.
var ErrLayout = errors.New("model: layout mismatch")
