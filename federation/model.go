package federation

import (
	"github.com/fennec-edge/fennec/federation/internal/model"
)

// Tensor dtypes (docs/ABI.md "Tensor").
const (
	DtypeF32 = 1
	DtypeI8  = 2
	DtypeI32 = 3
)

// Tensor is one named tensor of a Model, as the ABI's CBOR Tensor map
// carries it: a dtype (DtypeF32, DtypeI8, DtypeI32), a shape and the
// elements' little-endian bytes in row-major order.
type Tensor struct {
	Name  string   `cbor:"name"`
	Dtype uint64   `cbor:"dtype"`
	Shape []uint64 `cbor:"shape"`
	Data  []byte   `cbor:"data"`
}

// F32Tensor returns an f32 tensor holding vals with the given shape.
func F32Tensor(name string, shape []uint64, vals []float32) Tensor {
	return Tensor(model.F32Tensor(name, shape, vals))
}

// Float32s decodes an f32 tensor's elements; other dtypes are an error
// naming the tensor.
func (t Tensor) Float32s() ([]float32, error) {
	m := model.Tensor(t)
	return m.Float32s()
}

// Model is a named, versioned list of tensors, the ABI's CBOR Model map
// (docs/ABI.md "Model"): the global model a hub publishes (its Version is
// the number of completed rounds) and every device's update. Only f32
// tensors are aggregated; other tensors keep the global model's values.
type Model struct {
	Name    string   `cbor:"name"`
	Version uint64   `cbor:"version"`
	Tensors []Tensor `cbor:"tensors"`
}

// DecodeModel decodes a CBOR Model from untrusted bytes and validates it
// (names, dtypes, ranks, element counts and data lengths within the ABI's
// limits); errors name the tensor at fault.
func DecodeModel(b []byte) (Model, error) {
	m, err := model.Decode(b)
	if err != nil {
		return Model{}, err
	}
	return fromModel(m), nil
}

// Encode returns m as deterministic CBOR (the encoding DecodeModel reads).
func (m Model) Encode() ([]byte, error) { return model.Marshal(m.internal()) }

// Params is the number of f32 elements in m: the length of Flatten's
// vector.
func (m Model) Params() int {
	im := m.internal()
	return im.Params()
}

// Flatten returns m's f32 tensors' elements concatenated in order, the
// vector a strategy aggregates.
func (m Model) Flatten() []float32 {
	im := m.internal()
	return im.Flatten()
}

// WithVector returns a copy of m at version whose f32 tensors hold v, laid
// out as Flatten lays them out; v must have Params elements.
func (m Model) WithVector(v []float32, version uint64) (Model, error) {
	im := m.internal()
	out, err := im.WithVector(v, version)
	if err != nil {
		return Model{}, err
	}
	return fromModel(out), nil
}

// internal converts m at the package boundary; the tensors' shapes and
// data are shared, not copied.
func (m Model) internal() model.Model {
	out := model.Model{Name: m.Name, Version: m.Version}
	if m.Tensors != nil {
		out.Tensors = make([]model.Tensor, len(m.Tensors))
		for i, t := range m.Tensors {
			out.Tensors[i] = model.Tensor(t)
		}
	}
	return out
}

func fromModel(m model.Model) Model {
	out := Model{Name: m.Name, Version: m.Version}
	if m.Tensors != nil {
		out.Tensors = make([]Tensor, len(m.Tensors))
		for i, t := range m.Tensors {
			out.Tensors[i] = Tensor(t)
		}
	}
	return out
}

func modelPtr(m *Model) *model.Model {
	if m == nil {
		return nil
	}
	im := m.internal()
	return &im
}
