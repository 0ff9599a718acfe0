package sdk

import (
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// DType is a tensor element type (ABI dtype code).
type DType int32

// ABI v1 dtypes.
const (
	F32 DType = 1
	I8  DType = 2
	I32 DType = 3
)

// Size is the byte size of one element (0 for an unknown dtype).
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case I8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case I8:
		return "i8"
	case I32:
		return "i32"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// MaxRank is the largest rank the ABI accepts.
const MaxRank = 8

// UnaryOp is an op code of fennec_tensor.unary / unary_grad.
type UnaryOp int32

// Unary ops.
const (
	OpScale     UnaryOp = 1
	OpAddScalar UnaryOp = 2
	OpNeg       UnaryOp = 3
	OpExp       UnaryOp = 4
	OpLog       UnaryOp = 5
	OpSqrt      UnaryOp = 6
	OpSquare    UnaryOp = 7
	OpAbs       UnaryOp = 8
	OpReLU      UnaryOp = 9
	OpSigmoid   UnaryOp = 10
	OpTanh      UnaryOp = 11
	OpPow       UnaryOp = 12
	OpClamp     UnaryOp = 13
	OpCopy      UnaryOp = 14
)

// BinaryOp is an op code of fennec_tensor.binary.
type BinaryOp int32

// Binary ops (NumPy broadcasting).
const (
	OpAdd BinaryOp = 1
	OpSub BinaryOp = 2
	OpMul BinaryOp = 3
	OpDiv BinaryOp = 4
	OpMax BinaryOp = 5
	OpMin BinaryOp = 6
)

// ReduceOp is an op code of fennec_tensor.reduce.
type ReduceOp int32

// Reductions.
const (
	ReduceSum  ReduceOp = 1
	ReduceMean ReduceOp = 2
	ReduceMax  ReduceOp = 3
	ReduceMin  ReduceOp = 4
)

// LossOp is an op code of fennec_tensor.loss.
type LossOp int32

// Losses (batch means).
const (
	LossSoftmaxCE LossOp = 1 // logits [batch, classes]; target one-hot/probabilities f32 or i32 class indices [batch]
	LossBCE       LossOp = 2 // binary cross-entropy on logits
	LossMSE       LossOp = 3 // mean squared error
)

// Tensor is a handle to a host-side tensor. Handles belong to the instance
// that created them and survive across calls on it; Free releases one.
// A nil *Tensor passed as an "out" argument asks the host to allocate.
type Tensor struct {
	h int32
}

// Handle returns the raw ABI handle (0 after Free).
func (t *Tensor) Handle() int32 {
	if t == nil {
		return 0
	}
	return t.h
}

func (t *Tensor) String() string { return fmt.Sprintf("Tensor(%d)", t.Handle()) }

func shapeDims(op string, shape []int) ([MaxRank]int32, error) {
	var d [MaxRank]int32
	if len(shape) > MaxRank {
		return d, &Error{Op: op, Code: ESHAPE, Msg: fmt.Sprintf("rank %d exceeds %d", len(shape), MaxRank)}
	}
	for i, s := range shape {
		if s < 0 || s > math.MaxInt32 {
			return d, &Error{Op: op, Code: ESHAPE, Msg: fmt.Sprintf("dimension %d is %d", i, s)}
		}
		d[i] = int32(s)
	}
	return d, nil
}

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// New creates a tensor of dtype and shape. data nil zero-fills; otherwise
// len(data) must be the tensor's byte size.
func New(dtype DType, shape []int, data []byte) (*Tensor, error) {
	d, err := shapeDims("tensor.new", shape)
	if err != nil {
		return nil, err
	}
	r, err := check("tensor.new", tNew(int32(dtype), unsafe.Pointer(&d[0]), int32(len(shape)),
		unsafe.Pointer(unsafe.SliceData(data)), int32(len(data))))
	if err != nil {
		return nil, err
	}
	return &Tensor{h: r}, nil
}

// Zeros creates a zero-filled f32 tensor.
func Zeros(shape ...int) (*Tensor, error) { return New(F32, shape, nil) }

// FromF32 creates an f32 tensor holding data (len(data) == product(shape)).
func FromF32(shape []int, data []float32) (*Tensor, error) {
	if len(data) != numel(shape) {
		return nil, &Error{Op: "tensor.new", Code: ESHAPE, Msg: fmt.Sprintf("%d values for shape %v", len(data), shape)}
	}
	if len(data) == 0 {
		return New(F32, shape, nil)
	}
	return New(F32, shape, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data)))
}

// FromI32 creates an i32 tensor holding data.
func FromI32(shape []int, data []int32) (*Tensor, error) {
	if len(data) != numel(shape) {
		return nil, &Error{Op: "tensor.new", Code: ESHAPE, Msg: fmt.Sprintf("%d values for shape %v", len(data), shape)}
	}
	if len(data) == 0 {
		return New(I32, shape, nil)
	}
	return New(I32, shape, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data)))
}

// Scalar creates a rank-0 f32 tensor.
func Scalar(v float32) (*Tensor, error) { return FromF32(nil, []float32{v}) }

// Free releases the tensor; t is unusable afterwards. Freeing nil or a
// freed tensor is a no-op.
func (t *Tensor) Free() error {
	if t == nil || t.h == 0 {
		return nil
	}
	_, err := check("tensor.free", tFree(t.h))
	t.h = 0
	return err
}

// DType returns the tensor's dtype.
func (t *Tensor) DType() (DType, error) {
	r, err := check("tensor.dtype", tDType(t.Handle()))
	return DType(r), err
}

// Shape returns the tensor's dimensions.
func (t *Tensor) Shape() ([]int, error) {
	var d [MaxRank]int32
	r, err := check("tensor.shape", tShape(t.Handle(), unsafe.Pointer(&d[0]), MaxRank))
	if err != nil {
		return nil, err
	}
	if r > MaxRank {
		return nil, &Error{Op: "tensor.shape", Code: EINTERNAL, Msg: fmt.Sprintf("host reported rank %d", r)}
	}
	s := make([]int, r)
	for i := range s {
		s[i] = int(d[i])
	}
	return s, nil
}

// Bytes copies the tensor's raw little-endian bytes into dst (grown if
// needed) and returns it.
func (t *Tensor) Bytes(dst []byte) ([]byte, error) {
	// Ask with a zero-length buffer first would be an error; size from shape.
	shape, err := t.Shape()
	if err != nil {
		return nil, err
	}
	dt, err := t.DType()
	if err != nil {
		return nil, err
	}
	n := numel(shape) * dt.Size()
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := check("tensor.read", tRead(t.h, unsafe.Pointer(unsafe.SliceData(dst)), int32(n))); err != nil {
		return nil, err
	}
	return dst, nil
}

// Read copies an f32 tensor's elements into dst (reused when large enough)
// and returns it.
func (t *Tensor) Read(dst []float32) ([]float32, error) {
	shape, err := t.Shape()
	if err != nil {
		return nil, err
	}
	n := numel(shape)
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if _, err := check("tensor.read", tRead(t.h, unsafe.Pointer(unsafe.SliceData(dst)), int32(4*n))); err != nil {
		return nil, err
	}
	return dst, nil
}

// ReadI32 copies an i32 tensor's elements into dst and returns it.
func (t *Tensor) ReadI32(dst []int32) ([]int32, error) {
	shape, err := t.Shape()
	if err != nil {
		return nil, err
	}
	n := numel(shape)
	if cap(dst) < n {
		dst = make([]int32, n)
	}
	dst = dst[:n]
	if _, err := check("tensor.read", tRead(t.h, unsafe.Pointer(unsafe.SliceData(dst)), int32(4*n))); err != nil {
		return nil, err
	}
	return dst, nil
}

// Write overwrites an f32 tensor with data (exactly its element count).
func (t *Tensor) Write(data []float32) error {
	_, err := check("tensor.write", tWrite(t.Handle(), unsafe.Pointer(unsafe.SliceData(data)), int32(4*len(data))))
	return err
}

// WriteBytes overwrites the tensor with raw bytes (exactly its byte size).
func (t *Tensor) WriteBytes(data []byte) error {
	_, err := check("tensor.write", tWrite(t.Handle(), unsafe.Pointer(unsafe.SliceData(data)), int32(len(data))))
	return err
}

// Reshape changes the shape in place (same element count).
func (t *Tensor) Reshape(shape ...int) error {
	d, err := shapeDims("tensor.reshape", shape)
	if err != nil {
		return err
	}
	_, err = check("tensor.reshape", tReshape(t.Handle(), unsafe.Pointer(&d[0]), int32(len(shape))))
	return err
}

// result wraps a handle returned by an op that took out.
func result(op string, r int32, out *Tensor) (*Tensor, error) {
	h, err := check(op, r)
	if err != nil {
		return nil, err
	}
	if out != nil && out.h == h {
		return out, nil
	}
	return &Tensor{h: h}, nil
}

// MatMul returns op(a) x op(b) for rank-2 f32 tensors, transposing a and/or
// b first. out nil allocates; otherwise out is overwritten and returned.
func MatMul(a, b *Tensor, transA, transB bool, out *Tensor) (*Tensor, error) {
	var flags int32
	if transA {
		flags |= 1
	}
	if transB {
		flags |= 2
	}
	return result("tensor.matmul", tMatMul(a.Handle(), b.Handle(), flags, out.Handle()), out)
}

// Binary applies an elementwise op with broadcasting.
func Binary(op BinaryOp, a, b, out *Tensor) (*Tensor, error) {
	return result("tensor.binary", tBinary(int32(op), a.Handle(), b.Handle(), out.Handle()), out)
}

// Add returns a + b (broadcasting).
func Add(a, b, out *Tensor) (*Tensor, error) { return Binary(OpAdd, a, b, out) }

// Sub returns a - b.
func Sub(a, b, out *Tensor) (*Tensor, error) { return Binary(OpSub, a, b, out) }

// Mul returns a * b elementwise.
func Mul(a, b, out *Tensor) (*Tensor, error) { return Binary(OpMul, a, b, out) }

// Div returns a / b elementwise.
func Div(a, b, out *Tensor) (*Tensor, error) { return Binary(OpDiv, a, b, out) }

// Maximum returns max(a, b) elementwise.
func Maximum(a, b, out *Tensor) (*Tensor, error) { return Binary(OpMax, a, b, out) }

// Minimum returns min(a, b) elementwise.
func Minimum(a, b, out *Tensor) (*Tensor, error) { return Binary(OpMin, a, b, out) }

// Unary applies op with parameter alpha; out may be a (in place).
func Unary(op UnaryOp, a *Tensor, alpha float32, out *Tensor) (*Tensor, error) {
	return result("tensor.unary", tUnary(int32(op), a.Handle(), alpha, out.Handle()), out)
}

// Scale returns alpha * a.
func Scale(a *Tensor, alpha float32, out *Tensor) (*Tensor, error) {
	return Unary(OpScale, a, alpha, out)
}

// AddScalar returns a + alpha.
func AddScalar(a *Tensor, alpha float32, out *Tensor) (*Tensor, error) {
	return Unary(OpAddScalar, a, alpha, out)
}

// ReLU returns max(a, 0).
func ReLU(a, out *Tensor) (*Tensor, error) { return Unary(OpReLU, a, 0, out) }

// Sigmoid returns 1/(1+exp(-a)).
func Sigmoid(a, out *Tensor) (*Tensor, error) { return Unary(OpSigmoid, a, 0, out) }

// Tanh returns tanh(a).
func Tanh(a, out *Tensor) (*Tensor, error) { return Unary(OpTanh, a, 0, out) }

// Copy returns a copy of a.
func Copy(a, out *Tensor) (*Tensor, error) { return Unary(OpCopy, a, 0, out) }

// UnaryGrad returns g * op'(x), the backward pass of Unary(op, x, alpha).
func UnaryGrad(op UnaryOp, x, g *Tensor, alpha float32, out *Tensor) (*Tensor, error) {
	return result("tensor.unary_grad", tUnaryGrad(int32(op), x.Handle(), g.Handle(), alpha, out.Handle()), out)
}

// Axpy computes y += alpha * x in place.
func Axpy(y, x *Tensor, alpha float32) error {
	_, err := check("tensor.axpy", tAxpy(y.Handle(), x.Handle(), alpha))
	return err
}

// AdamStep is one fused Adam step on the host (fennec_tensor.adam,
// docs/ABI.md): it updates the moments m and v and the parameter p in place
// from the gradient g (four different f32 tensors of one shape; m and v zero
// before step 1, step counting from 1). A backend without the fused step
// answers EINVAL, "not supported by backend".
func AdamStep(p, g, m, v *Tensor, lr, beta1, beta2, eps float32, step int) error {
	if step < 1 || step > math.MaxInt32 {
		return &Error{Op: "tensor.adam", Code: EINVAL, Msg: "step " + strconv.Itoa(step) + " is outside 1..2^31-1"}
	}
	_, err := check("tensor.adam", tAdam(p.Handle(), g.Handle(), m.Handle(), v.Handle(), lr, beta1, beta2, eps, int32(step)))
	return err
}

// Softmax along axis (negative counts from the end).
func Softmax(a *Tensor, axis int, out *Tensor) (*Tensor, error) {
	return result("tensor.softmax", tSoftmax(a.Handle(), int32(axis), 0, out.Handle()), out)
}

// LogSoftmax along axis.
func LogSoftmax(a *Tensor, axis int, out *Tensor) (*Tensor, error) {
	return result("tensor.softmax", tSoftmax(a.Handle(), int32(axis), 1, out.Handle()), out)
}

// Reduce applies a reduction along axis.
func Reduce(op ReduceOp, a *Tensor, axis int, keepDims bool, out *Tensor) (*Tensor, error) {
	k := int32(0)
	if keepDims {
		k = 1
	}
	return result("tensor.reduce", tReduce(int32(op), a.Handle(), int32(axis), k, out.Handle()), out)
}

// Sum along axis.
func Sum(a *Tensor, axis int, keepDims bool, out *Tensor) (*Tensor, error) {
	return Reduce(ReduceSum, a, axis, keepDims, out)
}

// Mean along axis.
func Mean(a *Tensor, axis int, keepDims bool, out *Tensor) (*Tensor, error) {
	return Reduce(ReduceMean, a, axis, keepDims, out)
}

// Max along axis.
func Max(a *Tensor, axis int, keepDims bool, out *Tensor) (*Tensor, error) {
	return Reduce(ReduceMax, a, axis, keepDims, out)
}

// Min along axis.
func Min(a *Tensor, axis int, keepDims bool, out *Tensor) (*Tensor, error) {
	return Reduce(ReduceMin, a, axis, keepDims, out)
}

// ArgMax returns i32 indices of the maximum along axis (axis removed).
func ArgMax(a *Tensor, axis int, out *Tensor) (*Tensor, error) {
	return result("tensor.argmax", tArgMax(a.Handle(), int32(axis), out.Handle()), out)
}

// Loss computes the batch-mean loss of pred against target. If wantGrad,
// it also returns dLoss/dpred, written into grad when grad is non-nil
// (reuse) or into a new tensor.
func Loss(op LossOp, pred, target *Tensor, wantGrad bool, grad *Tensor) (float32, *Tensor, error) {
	var loss float32
	g := int32(-1)
	if wantGrad {
		g = grad.Handle()
	}
	r := tLoss(int32(op), pred.Handle(), target.Handle(), unsafe.Pointer(&loss), g)
	if !wantGrad {
		_, err := check("tensor.loss", r)
		return loss, nil, err
	}
	t, err := result("tensor.loss", r, grad)
	return loss, t, err
}

// SoftmaxCrossEntropy is Loss(LossSoftmaxCE, ...) with gradient.
func SoftmaxCrossEntropy(logits, target, grad *Tensor) (float32, *Tensor, error) {
	return Loss(LossSoftmaxCE, logits, target, true, grad)
}

// BinaryCrossEntropy is Loss(LossBCE, ...) on logits with gradient.
func BinaryCrossEntropy(logits, target, grad *Tensor) (float32, *Tensor, error) {
	return Loss(LossBCE, logits, target, true, grad)
}

// MeanSquaredError is Loss(LossMSE, ...) with gradient.
func MeanSquaredError(pred, target, grad *Tensor) (float32, *Tensor, error) {
	return Loss(LossMSE, pred, target, true, grad)
}

// Adopt wraps a tensor handle that a host function of another group
// returned (fennec_nn's graph_run, through sdk/graph): the Tensor owns it
// and Free releases it.
func Adopt(h int32) *Tensor { return &Tensor{h: h} }
