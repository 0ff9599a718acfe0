// Command distillguest is the test guest of sdk/distill (distill_test.go):
// it runs the package's wrappers and trainer through the runtime.
//
//	distill: trains an MLP student from teacher logits and labels, then
//	         predicts with it in f32 and int8
//	quant:   quantizes weights, dequantizes them and multiplies in int8
//	kl:      the distillation loss and gradient of given logits
package main

import (
	"errors"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/distill"
	"github.com/fennec-edge/fennec/sdk/nn"
)

func main() {}

type DistillIn struct {
	X        []float32 `cbor:"x"`
	Features int       `cbor:"features"`
	Teacher  []float32 `cbor:"teacher"`
	Classes  int       `cbor:"classes"`
	Labels   []int32   `cbor:"labels"`
	Hidden   int       `cbor:"hidden"`
	T        float32   `cbor:"t"`
	Alpha    float32   `cbor:"alpha"`
	Epochs   int       `cbor:"epochs"`
	Batch    int       `cbor:"batch"`
	LR       float32   `cbor:"lr"`
	Seed     uint64    `cbor:"seed"`
}

type DistillOut struct {
	Loss    []float64 `cbor:"loss"`
	KL      []float64 `cbor:"kl"`
	CE      []float64 `cbor:"ce"`
	Steps   int       `cbor:"steps"`
	PredF32 []int32   `cbor:"pred_f32"`
	PredI8  []int32   `cbor:"pred_i8"`
	Teacher []float32 `cbor:"teacher_logits"` // the student's logits via TeacherLogits
	BytesI8 int       `cbor:"bytes_i8"`
}

//go:wasmexport distill
func distillEntry(n int32) int32 { return sdk.ServeCBOR(n, runDistill) }

func runDistill(in DistillIn) (DistillOut, error) {
	student, err := nn.MLP([]int{in.Features, in.Hidden, in.Classes}, nn.ReLU, in.Seed)
	if err != nil {
		return DistillOut{}, err
	}
	defer student.Free()
	st, err := distill.Train(student, distill.Data{X: in.X, Features: in.Features, Teacher: in.Teacher,
		Classes: in.Classes, Labels: in.Labels}, distill.Config{Temperature: in.T, Alpha: in.Alpha,
		Epochs: in.Epochs, BatchSize: in.Batch, LR: in.LR, Seed: in.Seed})
	if err != nil {
		return DistillOut{}, err
	}
	out := DistillOut{Steps: st.Steps}
	for _, e := range st.Epochs {
		out.Loss = append(out.Loss, e.Loss)
		out.KL = append(out.KL, e.KL)
		out.CE = append(out.CE, e.CE)
	}
	if out.PredF32, err = distill.Predict(student, in.X, in.Features, 64); err != nil {
		return out, err
	}
	if out.Teacher, err = distill.TeacherLogits(student, in.X, in.Features, 50); err != nil {
		return out, err
	}
	q, err := distill.QuantizeNet(student)
	if err != nil {
		return out, err
	}
	defer q.Free()
	out.BytesI8 = q.Bytes()
	out.PredI8, err = distill.Predict(q, in.X, in.Features, 64)
	return out, err
}

type QuantIn struct {
	W []float32 `cbor:"w"` // [k, n]
	K int       `cbor:"k"`
	N int       `cbor:"n"`
	X []float32 `cbor:"x"` // [m, k]
}

type QuantOut struct {
	Q        []byte    `cbor:"q"`
	Scales   []float32 `cbor:"scales"`
	Deq      []float32 `cbor:"deq"`
	Y        []float32 `cbor:"y"`
	PerTenQ  []byte    `cbor:"per_tensor_q"`
	PerTenS  []float32 `cbor:"per_tensor_scale"`
	ErrAxis  string    `cbor:"err_axis"`
	IsInval  bool      `cbor:"is_invalid"`
	ErrDType string    `cbor:"err_dtype"`
}

//go:wasmexport quant
func quantEntry(n int32) int32 { return sdk.ServeCBOR(n, runQuant) }

func runQuant(in QuantIn) (QuantOut, error) {
	var out QuantOut
	w, err := sdk.FromF32([]int{in.K, in.N}, in.W)
	if err != nil {
		return out, err
	}
	defer w.Free()
	q, s, err := distill.Quantize(w, -1)
	if err != nil {
		return out, err
	}
	defer q.Free()
	defer s.Free()
	if out.Q, err = q.Bytes(nil); err != nil {
		return out, err
	}
	if out.Scales, err = s.Read(nil); err != nil {
		return out, err
	}
	d, err := distill.Dequantize(q, s, 1, nil)
	if err != nil {
		return out, err
	}
	defer d.Free()
	if out.Deq, err = d.Read(nil); err != nil {
		return out, err
	}
	x, err := sdk.FromF32([]int{len(in.X) / in.K, in.K}, in.X)
	if err != nil {
		return out, err
	}
	defer x.Free()
	y, err := distill.MatMulI8(x, q, s, nil)
	if err != nil {
		return out, err
	}
	defer y.Free()
	if _, err := distill.MatMulI8(x, q, s, y); err != nil { // into out
		return out, err
	}
	if out.Y, err = y.Read(nil); err != nil {
		return out, err
	}
	// per tensor
	ps, err := distill.QuantScales(w, 0, false, nil)
	if err != nil {
		return out, err
	}
	defer ps.Free()
	pq, err := distill.QuantizeWith(w, ps, 0, nil)
	if err != nil {
		return out, err
	}
	defer pq.Free()
	if out.PerTenQ, err = pq.Bytes(nil); err != nil {
		return out, err
	}
	if out.PerTenS, err = ps.Read(nil); err != nil {
		return out, err
	}
	// errors come back typed
	if _, err := distill.QuantScales(w, 7, true, nil); err != nil {
		out.ErrAxis, out.IsInval = err.Error(), errors.Is(err, sdk.ErrInvalid)
	}
	if _, err := distill.QuantizeWith(q, s, 1, nil); err != nil && errors.Is(err, sdk.ErrDType) {
		out.ErrDType = err.Error()
	}
	return out, nil
}

type KLIn struct {
	Student []float32 `cbor:"student"`
	Teacher []float32 `cbor:"teacher"`
	Batch   int       `cbor:"batch"`
	Classes int       `cbor:"classes"`
	T       float32   `cbor:"t"`
}

type KLOut struct {
	Loss     float32   `cbor:"loss"`
	LossOnly float32   `cbor:"loss_only"`
	Grad     []float32 `cbor:"grad"`
	ErrT     string    `cbor:"err_t"`
}

//go:wasmexport kl
func klEntry(n int32) int32 { return sdk.ServeCBOR(n, runKL) }

func runKL(in KLIn) (KLOut, error) {
	var out KLOut
	s, err := sdk.FromF32([]int{in.Batch, in.Classes}, in.Student)
	if err != nil {
		return out, err
	}
	defer s.Free()
	t, err := sdk.FromF32([]int{in.Batch, in.Classes}, in.Teacher)
	if err != nil {
		return out, err
	}
	defer t.Free()
	loss, g, err := distill.KLDistill(s, t, in.T, true, nil)
	if err != nil {
		return out, err
	}
	defer g.Free()
	out.Loss = loss
	if out.Grad, err = g.Read(nil); err != nil {
		return out, err
	}
	if out.LossOnly, _, err = distill.KLDistill(s, t, in.T, false, nil); err != nil {
		return out, err
	}
	if _, _, err := distill.KLDistill(s, t, 0, true, nil); err != nil && errors.Is(err, sdk.ErrInvalid) {
		out.ErrT = err.Error()
	}
	return out, nil
}
