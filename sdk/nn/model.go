package nn

import (
	"fmt"
	"slices"

	"github.com/fennec-edge/fennec/sdk"
)

// ToModel downloads the parameters into a shared Model.
func (s *Sequential) ToModel(name string, version uint64) (sdk.Model, error) {
	m := sdk.Model{Name: name, Version: version}
	for _, p := range s.params {
		td, err := sdk.Download(p.Name, p.Value)
		if err != nil {
			return m, fmt.Errorf("nn: download %s: %w", p.Name, err)
		}
		m.Tensors = append(m.Tensors, td)
	}
	return m, nil
}

// GradModel downloads the gradients of the last Backward into a Model whose
// tensors carry the parameters' names.
func (s *Sequential) GradModel(name string, version uint64) (sdk.Model, error) {
	m := sdk.Model{Name: name, Version: version}
	for _, p := range s.params {
		if p.Grad() == nil {
			return m, fmt.Errorf("nn: %s has no gradient (no backward pass yet)", p.Name)
		}
		td, err := sdk.Download(p.Name, p.Grad())
		if err != nil {
			return m, fmt.Errorf("nn: download grad %s: %w", p.Name, err)
		}
		m.Tensors = append(m.Tensors, td)
	}
	return m, nil
}

// Load overwrites the parameters with the model's tensors, which must match
// them one to one by name, dtype (f32) and shape.
func (s *Sequential) Load(m *sdk.Model) error {
	if len(m.Tensors) != len(s.params) {
		return fmt.Errorf("nn: model %q has %d tensors, network has %d parameters", m.Name, len(m.Tensors), len(s.params))
	}
	for _, p := range s.params {
		td := m.Tensor(p.Name)
		if td == nil {
			return fmt.Errorf("nn: model %q lacks tensor %q", m.Name, p.Name)
		}
		dims, err := td.Dims()
		if err != nil {
			return fmt.Errorf("nn: %w", err)
		}
		if td.DType != sdk.F32 || !slices.Equal(dims, p.Shape) {
			return fmt.Errorf("nn: tensor %q is %s %v, network wants f32 %v", p.Name, td.DType, dims, p.Shape)
		}
	}
	for _, p := range s.params {
		if err := p.Value.WriteBytes(m.Tensor(p.Name).Data); err != nil {
			return fmt.Errorf("nn: write %s: %w", p.Name, err)
		}
	}
	return nil
}

// FromModel builds an MLP from a Model whose tensors are consecutive
// (weight [in, out], bias [out]) pairs, in order, with hidden() between
// layers and no activation after the last. Names are assigned as MLP does,
// so ToModel round-trips.
func FromModel(m *sdk.Model, hidden func() *Activation) (*Sequential, error) {
	if len(m.Tensors) == 0 || len(m.Tensors)%2 != 0 {
		return nil, fmt.Errorf("nn: model %q: %d tensors, want (weight, bias) pairs", m.Name, len(m.Tensors))
	}
	var layers []Layer
	fail := func(err error) (*Sequential, error) {
		for _, l := range layers {
			l.Free()
		}
		return nil, err
	}
	prevOut := -1
	for i := 0; i < len(m.Tensors); i += 2 {
		w, b := &m.Tensors[i], &m.Tensors[i+1]
		wd, err := w.Dims()
		if err != nil {
			return fail(err)
		}
		bd, err := b.Dims()
		if err != nil {
			return fail(err)
		}
		if w.DType != sdk.F32 || b.DType != sdk.F32 || len(wd) != 2 || len(bd) != 1 || bd[0] != wd[1] {
			return fail(fmt.Errorf("nn: model %q: tensors %q %v and %q %v are not an f32 weight [in, out] and bias [out]", m.Name, w.Name, wd, b.Name, bd))
		}
		if prevOut >= 0 && wd[0] != prevOut {
			return fail(fmt.Errorf("nn: model %q: %q takes %d inputs, previous layer gives %d", m.Name, w.Name, wd[0], prevOut))
		}
		prevOut = wd[1]
		wv, err := w.F32()
		if err != nil {
			return fail(err)
		}
		bv, err := b.F32()
		if err != nil {
			return fail(err)
		}
		l, err := NewLinearFrom(wd[0], wd[1], wv, bv)
		if err != nil {
			return fail(err)
		}
		layers = append(layers, l)
		if i+2 < len(m.Tensors) {
			layers = append(layers, hidden())
		}
	}
	return NewSequential(layers...), nil
}
