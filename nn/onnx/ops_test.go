package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
)

// TestOps runs each single-operator case of testdata/ops (gen_ops.py) and
// compares with onnxruntime's outputs within atol 1e-4 + rtol 1e-3.
func TestOps(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "ops", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/ops (run testdata/gen_ops.py): %v", err)
	}
	inferred := 0
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := Load(filepath.Join(dir, "model.onnx"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, gpu.NewCPU())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			in := map[string]*nn.Tensor{}
			for i, vi := range m.Inputs() {
				in[vi.Name] = readNPY(t, filepath.Join(dir, fmt.Sprintf("input_%d.npy", i)))
			}
			out, err := s.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			for i, vi := range m.Outputs() {
				p := filepath.Join(dir, fmt.Sprintf("output_%d.npy", i))
				if _, err := os.Stat(p); err != nil {
					t.Fatal(err)
				}
				want := readNPY(t, p)
				got := out[vi.Name]
				// Static inference must agree with the real shape wherever
				// it claims to know every dim.
				if inf := m.InferShapes()[vi.Name]; inf.HasShape && allKnown(inf.Shape) {
					inferred++
					if inf.DType != want.DType || len(inf.Shape) != len(want.Shape) {
						t.Fatalf("inferred %v, real %v", inf, want)
					}
					for i, d := range inf.Shape {
						if d.Value != int64(want.Shape[i]) {
							t.Fatalf("inferred %v, real %v", inf, want)
						}
					}
				}
				if want.DType != nn.Float32 {
					if err := equalTensor(got, want); err != nil {
						t.Fatalf("output %q: %v", vi.Name, err)
					}
					continue
				}
				if _, err := compare(got, want, 1e-4, 1e-3); err != nil {
					t.Fatalf("output %q: %v", vi.Name, err)
				}
			}
		})
	}
	if inferred < 40 {
		t.Errorf("shape inference knew only %d of %d case outputs", inferred, len(dirs))
	}
}

func allKnown(ds []Dim) bool {
	for _, d := range ds {
		if !known(d) {
			return false
		}
	}
	return true
}

func equalTensor(got, want *nn.Tensor) error {
	if got.DType != want.DType || !equalInts(got.Shape, want.Shape) {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	for i := 0; i < want.Len(); i++ {
		var g, w any
		switch want.DType {
		case nn.Int64:
			g, w = got.I64[i], want.I64[i]
		case nn.Int32:
			g, w = got.I32[i], want.I32[i]
		default:
			g, w = got.U8[i], want.U8[i]
		}
		if g != w {
			return fmt.Errorf("element %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}
