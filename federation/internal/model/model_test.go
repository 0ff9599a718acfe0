package model

import (
	"slices"
	"testing"
)

func sample() Model {
	return Model{Name: "m", Version: 3, Tensors: []Tensor{
		F32Tensor("w", []uint64{2, 2}, []float32{1, 2, 3, 4}),
		I32Tensor("steps", []uint64{1}, []int32{7}),
		F32Tensor("b", []uint64{2}, []float32{5, 6}),
	}}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	v := got.Flatten()
	if !slices.Equal(v, []float32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("flatten = %v", v)
	}
	for i := range v {
		v[i] *= 2
	}
	m2, err := got.WithVector(v, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SameLayout(&m2); err != nil {
		t.Fatal(err)
	}
	if x := m2.Flatten(); x[5] != 12 || m2.Version != 4 || m2.Tensors[1].Data[0] != 7 {
		t.Fatalf("WithVector: %v", m2)
	}
	if _, err := got.WithVector(v[:3], 1); err == nil {
		t.Fatal("short vector accepted")
	}
}

func TestValidate(t *testing.T) {
	bad := []Model{
		{Tensors: []Tensor{{Name: "x", Dtype: 9, Shape: []uint64{1}, Data: make([]byte, 4)}}},
		{Tensors: []Tensor{{Name: "x", Dtype: F32, Shape: []uint64{2}, Data: make([]byte, 4)}}},
		{Tensors: []Tensor{{Name: "x", Dtype: F32, Shape: []uint64{1 << 20, 1 << 20}}}},
		{Tensors: []Tensor{{Name: "x", Dtype: F32, Shape: make([]uint64, 9)}}},
	}
	for i, m := range bad {
		if err := m.Validate(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	s := sample()
	o := sample()
	o.Tensors[0].Shape = []uint64{4}
	if err := s.SameLayout(&o); err == nil {
		t.Error("layout mismatch accepted")
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Marshal(sample())
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		v := m.Flatten()
		if len(v) != m.Params() {
			t.Fatalf("flatten %d != params %d", len(v), m.Params())
		}
		if _, err := m.WithVector(v, 1); err != nil {
			t.Fatal(err)
		}
	})
}
