package gpu_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

// TestInPlace checks that operations which the host functions allow to
// write over an input (unary, softmax: out == a; losses: the gradient over
// the logits) give bit-identical results in place and out of place, for
// shapes that exercise the vector kernels' bodies and tails and both softmax
// layouts.
func TestInPlace(t *testing.T) {
	be := gpu.NewCPU()
	mk := func(shape []int, d []float32) gpu.Tensor {
		x, err := be.New(gpu.F32, shape)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Write(x, gpu.F32ToBytes(d)); err != nil {
			t.Fatal(err)
		}
		return x
	}
	read := func(x gpu.Tensor) []float32 {
		b := make([]byte, x.Bytes())
		if err := be.Read(x, b); err != nil {
			t.Fatal(err)
		}
		return gpu.BytesToF32(b)
	}
	same := func(what string, a, b []float32) {
		t.Helper()
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s [%d]: in place %v, out of place %v", what, i, a[i], b[i])
			}
		}
	}
	for _, shape := range [][]int{{3, 7}, {5, 300}, {300, 5}, {2, 3, 17}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		d := randSlice(n, 11)
		for i := range d {
			d[i] *= 20
		}
		d[0] = float32(math.Inf(-1)) // a masked logit
		for axis := range shape {
			for _, log := range []bool{false, true} {
				name := fmt.Sprintf("softmax %v axis %d log %v", shape, axis, log)
				x, o := mk(shape, d), mk(shape, d)
				if err := be.Softmax(o, x, axis, log); err != nil {
					t.Fatal(err)
				}
				if err := be.Softmax(x, x, axis, log); err != nil {
					t.Fatal(err)
				}
				same(name, read(x), read(o))
			}
		}
		for _, op := range []gpu.UnaryOp{gpu.Exp, gpu.Sigmoid, gpu.Tanh} {
			x, o := mk(shape, d), mk(shape, d)
			if err := be.Unary(op, o, x, 0); err != nil {
				t.Fatal(err)
			}
			if err := be.Unary(op, x, x, 0); err != nil {
				t.Fatal(err)
			}
			same(fmt.Sprintf("unary %d %v", op, shape), read(x), read(o))
		}
		if len(shape) == 2 {
			targ := randSlice(n, 12)
			for i := range targ {
				targ[i] = float32(math.Abs(float64(targ[i])))
			}
			for _, op := range []gpu.LossOp{gpu.SoftmaxCrossEntropy, gpu.BinaryCrossEntropy} {
				d := append([]float32(nil), d...)
				d[0] = 3
				x, g, y := mk(shape, d), mk(shape, d), mk(shape, targ)
				l1, err := be.Loss(op, g, x, y)
				if err != nil {
					t.Fatal(err)
				}
				l2, err := be.Loss(op, x, x, y)
				if err != nil {
					t.Fatal(err)
				}
				if l1 != l2 {
					t.Fatalf("loss %d: in place %v, out of place %v", op, l2, l1)
				}
				same(fmt.Sprintf("loss %d gradient %v", op, shape), read(x), read(g))
			}
		}
	}
}
