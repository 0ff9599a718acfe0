package distill

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/fennec-edge/fennec/sdk"
)

// Guest wrappers of the compression functions of fennec_tensor
// (docs/ABI.md, "Model compression"). Like the sdk's ops they take an optional
// out tensor: nil allocates a new one (created here with sdk.New, so that
// it is an ordinary *sdk.Tensor the caller frees), otherwise out is
// overwritten and returned.

// codeNotWasm is what the non-wasm stubs return; it is not an ABI code.
const codeNotWasm = -1000

// check turns a raw ABI result into (value, error).
func check(op string, r int32) (int32, error) {
	if r >= 0 {
		return r, nil
	}
	if r == codeNotWasm {
		return 0, sdk.ErrNotWasm
	}
	return 0, &sdk.Error{Op: op, Code: sdk.Code(r), Msg: sdk.LastError()}
}

func invalid(op, format string, args ...any) error {
	return &sdk.Error{Op: op, Code: sdk.EINVAL, Msg: fmt.Sprintf(format, args...)}
}

func shapeErr(op, format string, args ...any) error {
	return &sdk.Error{Op: op, Code: sdk.ESHAPE, Msg: fmt.Sprintf(format, args...)}
}

// outTensor returns out, or a new tensor of dtype and shape (fresh).
func outTensor(out *sdk.Tensor, dt sdk.DType, shape []int) (*sdk.Tensor, bool, error) {
	if out != nil {
		return out, false, nil
	}
	t, err := sdk.New(dt, shape, nil)
	return t, err == nil, err
}

// finish checks a result; a tensor allocated for a failed call is freed.
func finish(op string, r int32, o *sdk.Tensor, fresh bool) (*sdk.Tensor, error) {
	if _, err := check(op, r); err != nil {
		if fresh {
			o.Free()
		}
		return nil, err
	}
	return o, nil
}

func axis32(op string, axis int) (int32, error) {
	if axis < math.MinInt32 || axis > math.MaxInt32 {
		return 0, invalid(op, "axis %d", axis)
	}
	return int32(axis), nil
}

// QuantScales returns symmetric int8 scales max|a|/127 of an f32 tensor:
// one per index along axis (f32 [shape[axis]]) when perChannel is set,
// otherwise one for the whole tensor (f32 [1]).
func QuantScales(a *sdk.Tensor, axis int, perChannel bool, out *sdk.Tensor) (*sdk.Tensor, error) {
	const op = "tensor.quant_scales"
	ax, err := axis32(op, axis)
	if err != nil {
		return nil, err
	}
	shape := []int{1}
	pc := int32(0)
	if perChannel {
		pc = 1
		if out == nil {
			s, err := a.Shape()
			if err != nil {
				return nil, err
			}
			i := axis
			if i < 0 {
				i += len(s)
			}
			if i < 0 || i >= len(s) {
				return nil, invalid(op, "axis %d out of range for rank %d", axis, len(s))
			}
			shape = []int{s[i]}
		}
	}
	o, fresh, err := outTensor(out, sdk.F32, shape)
	if err != nil {
		return nil, err
	}
	return finish(op, tQuantScales(a.Handle(), ax, pc, o.Handle()), o, fresh)
}

// QuantizeWith quantizes f32 a to an i8 tensor of the same shape with the
// given scales: one element scales the whole tensor, [shape[axis]] scales
// each channel along axis.
func QuantizeWith(a, scale *sdk.Tensor, axis int, out *sdk.Tensor) (*sdk.Tensor, error) {
	const op = "tensor.quantize"
	ax, err := axis32(op, axis)
	if err != nil {
		return nil, err
	}
	var shape []int
	if out == nil {
		if shape, err = a.Shape(); err != nil {
			return nil, err
		}
	}
	o, fresh, err := outTensor(out, sdk.I8, shape)
	if err != nil {
		return nil, err
	}
	return finish(op, tQuantize(a.Handle(), scale.Handle(), ax, o.Handle()), o, fresh)
}

// Quantize quantizes f32 weights per channel along axis (1 for the [in,
// out] weights of nn.Linear: one scale per output) and returns the i8
// tensor and its f32 scales. The caller frees both.
func Quantize(w *sdk.Tensor, axis int) (q, scale *sdk.Tensor, err error) {
	scale, err = QuantScales(w, axis, true, nil)
	if err != nil {
		return nil, nil, err
	}
	q, err = QuantizeWith(w, scale, axis, nil)
	if err != nil {
		scale.Free()
		return nil, nil, err
	}
	return q, scale, nil
}

// Dequantize returns the f32 tensor q*scale (q i8; scale as for
// QuantizeWith).
func Dequantize(q, scale *sdk.Tensor, axis int, out *sdk.Tensor) (*sdk.Tensor, error) {
	const op = "tensor.dequantize"
	ax, err := axis32(op, axis)
	if err != nil {
		return nil, err
	}
	var shape []int
	if out == nil {
		if shape, err = q.Shape(); err != nil {
			return nil, err
		}
	}
	o, fresh, err := outTensor(out, sdk.F32, shape)
	if err != nil {
		return nil, err
	}
	return finish(op, tDequantize(q.Handle(), scale.Handle(), ax, o.Handle()), o, fresh)
}

// MatMulI8 returns the f32 product x [m, k] · (w [k, n] * scale) of f32
// activations and i8 weights with per-column (or one) f32 scales. The host
// quantizes each row of x and accumulates exactly in int32.
func MatMulI8(x, w, scale, out *sdk.Tensor) (*sdk.Tensor, error) {
	const op = "tensor.matmul_i8"
	var shape []int
	if out == nil {
		xs, err := x.Shape()
		if err != nil {
			return nil, err
		}
		ws, err := w.Shape()
		if err != nil {
			return nil, err
		}
		if len(xs) != 2 || len(ws) != 2 {
			return nil, shapeErr(op, "x %v and w %v are not [m, k] and [k, n]", xs, ws)
		}
		shape = []int{xs[0], ws[1]}
	}
	o, fresh, err := outTensor(out, sdk.F32, shape)
	if err != nil {
		return nil, err
	}
	return finish(op, tMatMulI8(x.Handle(), w.Handle(), scale.Handle(), o.Handle()), o, fresh)
}

// KLDistill returns the distillation loss T²/batch · Σ KL(softmax(teacher/T)
// ‖ softmax(student/T)) of student against teacher logits ([batch,
// classes]) and, when wantGrad, its gradient with respect to the student
// logits, T/batch · (q − p), written into grad when it is not nil.
func KLDistill(student, teacher *sdk.Tensor, T float32, wantGrad bool, grad *sdk.Tensor) (float32, *sdk.Tensor, error) {
	const op = "tensor.kl_distill"
	var loss float32
	if !wantGrad {
		_, err := check(op, tKLDistill(student.Handle(), teacher.Handle(), T, unsafe.Pointer(&loss), -1))
		return loss, nil, err
	}
	var shape []int
	if grad == nil {
		var err error
		if shape, err = student.Shape(); err != nil {
			return 0, nil, err
		}
	}
	g, fresh, err := outTensor(grad, sdk.F32, shape)
	if err != nil {
		return 0, nil, err
	}
	g, err = finish(op, tKLDistill(student.Handle(), teacher.Handle(), T, unsafe.Pointer(&loss), g.Handle()), g, fresh)
	if err != nil {
		return 0, nil, err
	}
	return loss, g, nil
}
