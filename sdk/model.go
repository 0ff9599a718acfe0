package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
)

// TensorData is the shared CBOR "Tensor" structure of docs/ABI.md: a named
// tensor's dtype, shape and little-endian element bytes.
type TensorData struct {
	Name  string   `cbor:"name"`
	DType DType    `cbor:"dtype"`
	Shape []uint64 `cbor:"shape"`
	Data  []byte   `cbor:"data"`
}

// Model is the shared CBOR "Model" structure: named tensors in an order the
// defining module fixes.
type Model struct {
	Name    string       `cbor:"name"`
	Version uint64       `cbor:"version"`
	Tensors []TensorData `cbor:"tensors"`
}

// Settings are the training settings of the train entrypoint.
type Settings struct {
	LR        float64 `cbor:"lr"`
	Epochs    uint64  `cbor:"epochs"`
	BatchSize uint64  `cbor:"batch_size"`
	Mu        float64 `cbor:"mu"` // FedProx proximal weight, 0 = off
	Seed      uint64  `cbor:"seed"`
	Mode      string  `cbor:"mode"` // "weights" (default) or "gradient"
	// DP, when set, asks for patient-level DP-SGD (docs/ABI.md,
	// "Settings"): the host samples, clips and noises every step.
	DP *DPSettings `cbor:"dp,omitempty"`
}

// DPSettings are the DP-SGD parameters of a train call: Steps steps, each
// on a Poisson sample of units (Dataset.Groups) at SamplingRate, every
// unit's gradient clipped to L2 norm Clip, Gaussian noise of standard
// deviation NoiseMultiplier*Clip on their sum.
type DPSettings struct {
	Clip            float64 `cbor:"clip"`
	NoiseMultiplier float64 `cbor:"noise_multiplier"`
	SamplingRate    float64 `cbor:"sampling_rate"`
	Steps           uint64  `cbor:"steps"`
}

// Dataset is a training or evaluation set: x f32 [n, features]; y f32 [n]
// or [n, k], or i32 [n] class indices.
type Dataset struct {
	X TensorData `cbor:"x"`
	Y TensorData `cbor:"y"`
	// Groups (optional) is i32 [n]: the unit of privacy of each row
	// (dense ids 0..units-1; all of one patient's readings share one).
	// Absent, every row is its own unit.
	Groups *TensorData `cbor:"groups,omitempty"`
}

// TrainInput is the input of the train entrypoint.
type TrainInput struct {
	Model    Model    `cbor:"model"`
	Round    uint64   `cbor:"round"`
	Settings Settings `cbor:"settings"`
	Data     Dataset  `cbor:"data"`
}

// TrainOutput is the output of the train entrypoint.
type TrainOutput struct {
	Model       Model              `cbor:"model"`
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// EvalInput is the input of the evaluate entrypoint.
type EvalInput struct {
	Model Model   `cbor:"model"`
	Data  Dataset `cbor:"data"`
}

// EvalOutput is the output of the evaluate entrypoint.
type EvalOutput struct {
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
}

// Dims returns the shape as ints, checking rank, dimension sizes, element
// count against 2^31 and len(Data) against the dtype size.
func (t *TensorData) Dims() ([]int, error) {
	if len(t.Shape) > MaxRank {
		return nil, fmt.Errorf("tensor %q: rank %d exceeds %d", t.Name, len(t.Shape), MaxRank)
	}
	if t.DType.Size() == 0 {
		return nil, fmt.Errorf("tensor %q: unknown dtype %d", t.Name, int32(t.DType))
	}
	dims := make([]int, len(t.Shape))
	n := uint64(1)
	for i, s := range t.Shape {
		if s > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %q: dimension %d is %d", t.Name, i, s)
		}
		n *= s
		if n > 1<<31 {
			return nil, fmt.Errorf("tensor %q: more than 2^31 elements", t.Name)
		}
		dims[i] = int(s)
	}
	if want := n * uint64(t.DType.Size()); uint64(len(t.Data)) != want {
		return nil, fmt.Errorf("tensor %q: %d data bytes, shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, want)
	}
	return dims, nil
}

// F32 returns the elements of an f32 TensorData.
func (t *TensorData) F32() ([]float32, error) {
	if _, err := t.Dims(); err != nil {
		return nil, err
	}
	if t.DType != F32 {
		return nil, fmt.Errorf("tensor %q: dtype %s, want f32", t.Name, t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// I32 returns the elements of an i32 TensorData.
func (t *TensorData) I32() ([]int32, error) {
	if _, err := t.Dims(); err != nil {
		return nil, err
	}
	if t.DType != I32 {
		return nil, fmt.Errorf("tensor %q: dtype %s, want i32", t.Name, t.DType)
	}
	out := make([]int32, len(t.Data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// F32Data builds an f32 TensorData.
func F32Data(name string, shape []int, data []float32) TensorData {
	t := TensorData{Name: name, DType: F32, Shape: make([]uint64, len(shape)), Data: make([]byte, 4*len(data))}
	for i, s := range shape {
		t.Shape[i] = uint64(s)
	}
	for i, v := range data {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
	}
	return t
}

// I32Data builds an i32 TensorData.
func I32Data(name string, shape []int, data []int32) TensorData {
	t := TensorData{Name: name, DType: I32, Shape: make([]uint64, len(shape)), Data: make([]byte, 4*len(data))}
	for i, s := range shape {
		t.Shape[i] = uint64(s)
	}
	for i, v := range data {
		binary.LittleEndian.PutUint32(t.Data[4*i:], uint32(v))
	}
	return t
}

// Upload creates a host tensor holding t.
func (t *TensorData) Upload() (*Tensor, error) {
	dims, err := t.Dims()
	if err != nil {
		return nil, err
	}
	return New(t.DType, dims, t.Data)
}

// Download reads a host tensor into a TensorData named name.
func Download(name string, x *Tensor) (TensorData, error) {
	shape, err := x.Shape()
	if err != nil {
		return TensorData{}, err
	}
	dt, err := x.DType()
	if err != nil {
		return TensorData{}, err
	}
	b, err := x.Bytes(nil)
	if err != nil {
		return TensorData{}, err
	}
	td := TensorData{Name: name, DType: dt, Shape: make([]uint64, len(shape)), Data: b}
	for i, s := range shape {
		td.Shape[i] = uint64(s)
	}
	return td, nil
}

// Tensor returns the model tensor named name, or nil.
func (m *Model) Tensor(name string) *TensorData {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}
