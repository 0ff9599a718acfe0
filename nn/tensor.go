// Package nn holds what fennec's neural-network engines share: a host tensor
// type with the element types ONNX models use, and NumPy .npy files for
// moving tensors in and out of the command line and tests. The ONNX engine
// itself is nn/onnx. Like package gpu, nn knows nothing of WebAssembly.
package nn

import (
	"fmt"
	"math/bits"
	"slices"
)

// DType is an element type. The values are ONNX's TensorProto.DataType codes.
type DType int32

const (
	Float32 DType = 1
	Uint8   DType = 2
	Int8    DType = 3
	Int32   DType = 6
	Int64   DType = 7
	Bool    DType = 9
)

// Size is the number of bytes of one element, or 0 for an unsupported dtype.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	case Bool, Uint8, Int8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "f32"
	case Int32:
		return "i32"
	case Int64:
		return "i64"
	case Bool:
		return "bool"
	case Uint8:
		return "u8"
	case Int8:
		return "i8"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// MaxRank bounds the rank of any tensor nn builds.
const MaxRank = 16

// Tensor is a dense row-major host tensor. Exactly one of the data slices
// matching DType is set (Bool, Uint8 and Int8 share U8) and its length is the
// product of Shape.
type Tensor struct {
	DType DType
	Shape []int
	F32   []float32
	I64   []int64
	I32   []int32
	U8    []uint8
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Elements returns the product of shape, refusing negative dims, ranks above
// MaxRank and products above limit (checked without overflow).
func Elements(shape []int, limit int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), MaxRank)
	}
	n := uint64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d is negative (%d)", i, d)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > uint64(limit) {
			return 0, fmt.Errorf("shape %v exceeds the limit of %d elements", slices.Clone(shape), limit) // a copy: shape stays the caller's
		}
		n = lo
	}
	return int(n), nil
}

// New allocates a zeroed tensor after checking shape against limit elements.
func New(dt DType, shape []int, limit int) (*Tensor, error) {
	n, err := Elements(shape, limit)
	if err != nil {
		return nil, err
	}
	t := &Tensor{DType: dt, Shape: append([]int(nil), shape...)}
	switch dt {
	case Float32:
		t.F32 = make([]float32, n)
	case Int64:
		t.I64 = make([]int64, n)
	case Int32:
		t.I32 = make([]int32, n)
	case Bool, Uint8, Int8:
		t.U8 = make([]uint8, n)
	default:
		return nil, fmt.Errorf("unsupported dtype %v", dt)
	}
	return t, nil
}

// Check reports whether the data slice matches DType and Shape.
func (t *Tensor) Check() error {
	n, err := Elements(t.Shape, 1<<62)
	if err != nil {
		return err
	}
	var got int
	switch t.DType {
	case Float32:
		got = len(t.F32)
	case Int64:
		got = len(t.I64)
	case Int32:
		got = len(t.I32)
	case Bool, Uint8, Int8:
		got = len(t.U8)
	default:
		return fmt.Errorf("unsupported dtype %v", t.DType)
	}
	if got != n {
		return fmt.Errorf("%v%v tensor holds %d elements, want %d", t.DType, t.Shape, got, n)
	}
	return nil
}

func (t *Tensor) String() string { return fmt.Sprintf("%v%v", t.DType, t.Shape) }
