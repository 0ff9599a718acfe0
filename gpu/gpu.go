// Package gpu holds fennec's tensor backends: the Backend interface that the
// host ABI calls, shape and dtype rules shared by every backend, and the CPU
// backend (NewCPU). The CUDA backend lives in gpu/cuda behind the "cuda" build
// tag and implements the same interface.
//
// The package is a plain library: it knows nothing of WebAssembly, guests or
// handles. Callers (the hostfuncs package) validate guest input, compute the
// result shape with the helpers here (MatMulShape, BroadcastShape,
// ReduceShape), allocate the result tensor through the backend, and then ask
// the backend to compute into it. Backends therefore receive only tensors
// whose shapes and dtypes have already been checked, but they must still
// return an error (never panic) when handed something they cannot do.
package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// DType is the element type of a tensor. Its numeric values are part of the
// guest ABI (docs/ABI.md) and never change.
type DType uint8

const (
	F32 DType = 1 // IEEE-754 binary32, little endian
	I8  DType = 2 // signed 8-bit integer
	I32 DType = 3 // signed 32-bit integer, little endian
)

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case I8:
		return 1
	}
	return 0
}

// Valid reports whether d is a dtype this package knows.
func (d DType) Valid() bool { return d.Size() != 0 }

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case I8:
		return "i8"
	case I32:
		return "i32"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Limits on shapes. They bound what any guest can ask for, whatever its
// quota: a rank above MaxRank or an element count above MaxElements is
// refused before any arithmetic can overflow.
const (
	MaxRank     = 8
	MaxElements = 1 << 31 // elements; 8 GiB of f32
)

// Errors returned by shape checks and backends. Callers map them to ABI
// error codes with errors.Is.
var (
	ErrShape       = errors.New("bad shape")
	ErrDType       = errors.New("bad dtype")
	ErrOutOfMemory = errors.New("backend out of memory")
	ErrUnsupported = errors.New("operation not supported by backend")
)

// NumElements returns the product of shape's dimensions, checking each
// dimension is positive (zero-sized dims are allowed and give 0), the rank is
// at most MaxRank and the product neither overflows nor exceeds MaxElements.
func NumElements(shape []int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("%w: rank %d exceeds %d", ErrShape, len(shape), MaxRank)
	}
	n := uint64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: dimension %d is negative (%d)", ErrShape, i, d)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > MaxElements {
			return 0, fmt.Errorf("%w: element count overflows the limit of %d", ErrShape, MaxElements)
		}
		n = lo
	}
	return int(n), nil
}

// ByteSize returns the number of bytes a tensor of dtype and shape occupies.
func ByteSize(dt DType, shape []int) (int64, error) {
	if !dt.Valid() {
		return 0, fmt.Errorf("%w: %d", ErrDType, uint8(dt))
	}
	n, err := NumElements(shape)
	if err != nil {
		return 0, err
	}
	return int64(n) * int64(dt.Size()), nil
}

// Tensor is a backend-owned array. Its shape may change through Reshape on
// the owning backend but its dtype and element count never do.
type Tensor interface {
	DType() DType
	Shape() []int // callers must not modify the returned slice
	Len() int     // number of elements
	Bytes() int64 // storage in bytes, as counted against quotas
}

// BinaryOp is an elementwise operation on two tensors with NumPy
// broadcasting. Values are part of the ABI.
type BinaryOp uint8

const (
	Add BinaryOp = 1
	Sub BinaryOp = 2
	Mul BinaryOp = 3
	Div BinaryOp = 4
	// Max and Min are elementwise maximum and minimum.
	Max BinaryOp = 5
	Min BinaryOp = 6
)

// UnaryOp is an elementwise operation on one tensor; some take a scalar
// argument alpha. Values are part of the ABI.
type UnaryOp uint8

const (
	Scale     UnaryOp = 1  // alpha * x
	AddScalar UnaryOp = 2  // x + alpha
	Neg       UnaryOp = 3  // -x
	Exp       UnaryOp = 4  // e^x
	Log       UnaryOp = 5  // ln x
	Sqrt      UnaryOp = 6  // sqrt x
	Square    UnaryOp = 7  // x*x
	Abs       UnaryOp = 8  // |x|
	ReLU      UnaryOp = 9  // max(x, 0)
	Sigmoid   UnaryOp = 10 // 1/(1+e^-x)
	Tanh      UnaryOp = 11 // tanh x
	Pow       UnaryOp = 12 // x^alpha
	Clamp     UnaryOp = 13 // clamp(x, -alpha, alpha)
	Copy      UnaryOp = 14 // x (a plain copy)
)

// ReduceOp reduces along one axis. Values are part of the ABI.
type ReduceOp uint8

const (
	Sum  ReduceOp = 1
	Mean ReduceOp = 2
	RMax ReduceOp = 3 // maximum
	RMin ReduceOp = 4 // minimum
)

// LossOp is a loss function with its gradient. Values are part of the ABI.
type LossOp uint8

const (
	// SoftmaxCrossEntropy takes logits [batch, classes] and targets that are
	// either f32 [batch, classes] probabilities (one-hot or soft) or i32
	// [batch] class indices. Loss is the batch mean; grad is
	// (softmax(logits) - target) / batch.
	SoftmaxCrossEntropy LossOp = 1
	// BinaryCrossEntropy takes logits (not probabilities, for numerical
	// stability) and f32 targets in [0,1] of the same shape. Loss is the mean
	// over all elements; grad is (sigmoid(logits) - target) / n.
	BinaryCrossEntropy LossOp = 2
	// MSE takes predictions and f32 targets of the same shape; loss is
	// mean((p-t)^2), grad is 2(p-t)/n.
	MSE LossOp = 3
)

// Backend computes on tensors it owns. Every method that produces a result
// writes into out, which the caller allocated with New using the shape that
// the matching *Shape helper returned. Out may not alias an input unless the
// method says so. Methods are safe for concurrent use on distinct tensors.
type Backend interface {
	// Name identifies the backend in logs and `fennec info` ("cpu", "cuda").
	Name() string

	// New allocates a zeroed tensor. It returns ErrOutOfMemory when the
	// backend cannot hold it.
	New(dt DType, shape []int) (Tensor, error)
	// Free releases t. Using t afterwards is a caller bug; Free of an
	// already-freed tensor is a no-op.
	Free(t Tensor)
	// Write copies little-endian element bytes into t; len(src) must equal
	// t.Bytes().
	Write(t Tensor, src []byte) error
	// Read copies t's elements as little-endian bytes into dst; len(dst)
	// must equal t.Bytes().
	Read(t Tensor, dst []byte) error
	// Reshape changes t's shape in place; the element count must not change.
	Reshape(t Tensor, shape []int) error

	// MatMul computes out = op(a) x op(b) for f32 rank-2 tensors, where op
	// transposes when the flag is set.
	MatMul(out, a, b Tensor, transA, transB bool) error
	// Binary computes out = a op b elementwise with broadcasting (f32).
	Binary(op BinaryOp, out, a, b Tensor) error
	// Unary computes out = op(a) elementwise (f32). Out may alias a.
	Unary(op UnaryOp, out, a Tensor, alpha float32) error
	// UnaryGrad computes out = g * op'(x) for ReLU, Sigmoid, Tanh, Square,
	// Abs, Exp, Log, Sqrt and Scale: the backward pass of Unary, given the
	// forward input x and the upstream gradient g (same shape).
	UnaryGrad(op UnaryOp, out, x, g Tensor, alpha float32) error
	// Axpy computes y += alpha * x in place (f32, same shape).
	Axpy(y, x Tensor, alpha float32) error
	// Softmax computes softmax (or log-softmax) along axis (f32).
	Softmax(out, a Tensor, axis int, log bool) error
	// Reduce reduces a along axis into out (f32); out has the shape from
	// ReduceShape.
	Reduce(op ReduceOp, out, a Tensor, axis int) error
	// ArgMax writes the index of the maximum along axis into out (i32).
	ArgMax(out, a Tensor, axis int) error
	// Loss computes the loss (returned) and, when grad is not nil, its
	// gradient with respect to pred into grad (shape of pred).
	Loss(op LossOp, grad, pred, target Tensor) (float32, error)
}

// MatMulShape returns the result shape of op(a) x op(b) and checks that both
// are rank 2 with matching inner dimensions.
func MatMulShape(a, b []int, transA, transB bool) ([]int, error) {
	if len(a) != 2 || len(b) != 2 {
		return nil, fmt.Errorf("%w: matmul needs rank-2 operands, got %v and %v", ErrShape, a, b)
	}
	m, ka := a[0], a[1]
	if transA {
		m, ka = ka, m
	}
	kb, n := b[0], b[1]
	if transB {
		kb, n = n, kb
	}
	if ka != kb {
		return nil, fmt.Errorf("%w: matmul inner dimensions differ: %v x %v (transA=%v transB=%v)", ErrShape, a, b, transA, transB)
	}
	out := []int{m, n}
	if _, err := NumElements(out); err != nil {
		return nil, err
	}
	return out, nil
}

// BroadcastShape returns the NumPy broadcast of a and b: shapes are aligned
// at their last dimension, and each pair of dimensions must be equal or one
// of them 1.
func BroadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 1; i <= n; i++ {
		da, db := 1, 1
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db:
			out[n-i] = da
		case da == 1:
			out[n-i] = db
		case db == 1:
			out[n-i] = da
		default:
			return nil, fmt.Errorf("%w: cannot broadcast %v with %v", ErrShape, a, b)
		}
	}
	if _, err := NumElements(out); err != nil {
		return nil, err
	}
	return out, nil
}

// NormAxis resolves a possibly negative axis (-1 is the last) against rank.
func NormAxis(axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return 0, fmt.Errorf("%w: axis out of range for rank %d", ErrShape, rank)
	}
	return axis, nil
}

// ReduceShape returns the shape of a reduction of shape along axis (already
// normalised): the axis is removed, or kept as 1 when keepDims is set.
func ReduceShape(shape []int, axis int, keepDims bool) []int {
	out := make([]int, 0, len(shape))
	for i, d := range shape {
		if i == axis {
			if keepDims {
				out = append(out, 1)
			}
			continue
		}
		out = append(out, d)
	}
	return out
}

// EqualShape reports whether two shapes are identical.
func EqualShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// f32 helpers shared by backends and tests.
func f32bits(b []byte, i int) float32 {
	return math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
}
