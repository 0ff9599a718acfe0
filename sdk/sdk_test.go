package sdk

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestErrorIsMatchesCode(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &Error{Op: "tensor.new", Code: EQUOTA, Msg: "tensor bytes 70000000 > 67108864"})
	if !errors.Is(err, ErrQuota) {
		t.Fatal("errors.Is(err, ErrQuota) = false")
	}
	if errors.Is(err, ErrHandle) {
		t.Fatal("quota error matched ErrHandle")
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != EQUOTA {
		t.Fatalf("errors.As: %v", e)
	}
	want := "fennec: tensor.new: EQUOTA: tensor bytes 70000000 > 67108864"
	if e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
	if got := Code(-99).String(); got != "code(-99)" {
		t.Fatalf("unknown code string %q", got)
	}
}

func TestHostBuildReturnsErrNotWasm(t *testing.T) {
	if _, err := Zeros(2, 3); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("Zeros on the host: %v, want ErrNotWasm", err)
	}
	if _, err := ABIVersion(); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("ABIVersion on the host: %v", err)
	}
	if _, err := InputBytes(); err == nil {
		t.Fatal("InputBytes outside a call succeeded")
	}
}

func TestTensorDataRoundTrip(t *testing.T) {
	td := F32Data("w", []int{2, 3}, []float32{1, -2, 3.5, 0, 1e-3, 7})
	b, err := Marshal(Model{Name: "m", Version: 3, Tensors: []TensorData{td, I32Data("y", []int{2}, []int32{-1, 4})}})
	if err != nil {
		t.Fatal(err)
	}
	var m Model
	if err := Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	got, err := m.Tensor("w").F32()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []float32{1, -2, 3.5, 0, 1e-3, 7}) {
		t.Fatalf("f32 round trip: %v", got)
	}
	yi, err := m.Tensor("y").I32()
	if err != nil || !reflect.DeepEqual(yi, []int32{-1, 4}) {
		t.Fatalf("i32 round trip: %v %v", yi, err)
	}
	if m.Tensor("nope") != nil {
		t.Fatal("missing tensor found")
	}
}

func TestTensorDataDimsRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		td   TensorData
	}{
		{"short data", TensorData{Name: "a", DType: F32, Shape: []uint64{2}, Data: make([]byte, 7)}},
		{"long data", TensorData{Name: "a", DType: F32, Shape: []uint64{2}, Data: make([]byte, 9)}},
		{"bad dtype", TensorData{Name: "a", DType: 9, Shape: []uint64{1}, Data: make([]byte, 4)}},
		{"rank 9", TensorData{Name: "a", DType: I8, Shape: make([]uint64, 9)}},
		{"huge dim", TensorData{Name: "a", DType: I8, Shape: []uint64{1 << 40}}},
		{"overflow", TensorData{Name: "a", DType: I8, Shape: []uint64{1 << 30, 1 << 30, 1 << 30}}},
	} {
		if _, err := tc.td.Dims(); err == nil {
			t.Errorf("%s: Dims accepted %+v", tc.name, tc.td.Shape)
		}
	}
	wrong := I32Data("y", []int{1}, []int32{1})
	if _, err := wrong.F32(); err == nil {
		t.Error("F32 of an i32 tensor succeeded")
	}
}

// FuzzDecodeTrainInput feeds arbitrary bytes through the decoder a train
// entrypoint uses and checks that validation never panics and that an
// accepted tensor's data length matches its shape.
func FuzzDecodeTrainInput(f *testing.F) {
	seed, _ := Marshal(TrainInput{Model: Model{Name: "m", Tensors: []TensorData{F32Data("w", []int{1, 2}, []float32{1, 2})}},
		Settings: Settings{LR: 0.1, Epochs: 1, BatchSize: 2},
		Data:     Dataset{X: F32Data("x", []int{1, 2}, []float32{3, 4}), Y: F32Data("y", []int{1}, []float32{1})}})
	f.Add(seed)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in TrainInput
		if err := Unmarshal(b, &in); err != nil {
			return
		}
		for _, td := range append(in.Model.Tensors, in.Data.X, in.Data.Y) {
			dims, err := td.Dims()
			if err != nil {
				continue
			}
			n := td.DType.Size()
			for _, d := range dims {
				n *= d
			}
			if n != len(td.Data) {
				t.Fatalf("accepted %v with %d bytes", dims, len(td.Data))
			}
			if td.DType == F32 {
				if _, err := td.F32(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
