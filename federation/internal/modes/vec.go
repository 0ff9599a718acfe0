package modes

import (
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

// f32Bytes returns the concatenated data of m's f32 tensors (the bytes of
// Flatten's vector, bit for bit).
func f32Bytes(m *model.Model) []byte {
	var out []byte
	for i := range m.Tensors {
		if m.Tensors[i].Dtype == model.F32 {
			out = append(out, m.Tensors[i].Data...)
		}
	}
	return out
}

// withF32Bytes returns a copy of m whose f32 tensors hold b (laid out as
// f32Bytes lays them out); the other tensors are copied.
func withF32Bytes(m *model.Model, b []byte) (model.Model, error) {
	if len(b) != 4*m.Params() {
		return model.Model{}, fmt.Errorf("modes: %d bytes for %d f32 parameters", len(b), m.Params())
	}
	out := model.Model{Name: m.Name, Version: m.Version, Tensors: make([]model.Tensor, len(m.Tensors))}
	off := 0
	for i, t := range m.Tensors {
		nt := model.Tensor{Name: t.Name, Dtype: t.Dtype, Shape: append([]uint64(nil), t.Shape...)}
		if t.Dtype == model.F32 {
			nt.Data = append([]byte(nil), b[off:off+len(t.Data)]...)
			off += len(t.Data)
		} else {
			nt.Data = append([]byte(nil), t.Data...)
		}
		out.Tensors[i] = nt
	}
	return out, nil
}

// deltaOf returns update - global as float32, refusing non-finite values.
func deltaOf(global, update *model.Model) ([]float32, error) {
	if err := global.SameLayout(update); err != nil {
		return nil, err
	}
	g, u := global.Flatten(), update.Flatten()
	if len(g) != len(u) {
		return nil, fmt.Errorf("modes: update has %d parameters, global %d", len(u), len(g))
	}
	d := make([]float32, len(g))
	for i := range g {
		d[i] = u[i] - g[i]
		if math.IsNaN(float64(d[i])) || math.IsInf(float64(d[i]), 0) {
			return nil, fmt.Errorf("modes: update value %d is not finite", i)
		}
	}
	return d, nil
}

// applyMean returns global + sum/den as a model of global's layout.
func applyMean(global *model.Model, sum []float64, den float64) (model.Model, error) {
	g := global.Flatten()
	if len(sum) < len(g) {
		return model.Model{}, fmt.Errorf("modes: aggregate of %d values for %d parameters", len(sum), len(g))
	}
	out := make([]float32, len(g))
	for i := range g {
		v := float64(g[i]) + sum[i]/den
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
			return model.Model{}, fmt.Errorf("modes: aggregate value %d is not finite", i)
		}
		out[i] = float32(v)
	}
	return global.WithVector(out, global.Version)
}

// clamp bounds every value to [-b, b] (NaN -> 0).
func clamp(x []float32, b float64) {
	for i, v := range x {
		f := float64(v)
		switch {
		case math.IsNaN(f):
			x[i] = 0
		case f > b:
			x[i] = float32(b)
		case f < -b:
			x[i] = float32(-b)
		}
	}
}
