package sdk

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	fx "github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/sdk/cbor"
)

// The reference encoder and decoder: fxamacker/cbor as the federation layer
// uses it (core deterministic encoding).
var (
	fxEnc, _ = fx.CoreDetEncOptions().EncMode()
	fxDec, _ = fx.DecOptions{MaxNestedLevels: 32, MaxArrayElements: 1 << 24, MaxMapPairs: 1 << 24}.DecMode()
)

func randTensor(rng *rand.Rand) TensorData {
	td := TensorData{Name: []string{"0.weight", "0.bias", "x", "", strings.Repeat("long", 10)}[rng.IntN(5)],
		DType: []DType{F32, I8, I32, 0, -3, 1 << 20}[rng.IntN(6)]}
	if rng.IntN(5) > 0 {
		td.Shape = make([]uint64, rng.IntN(4))
		for i := range td.Shape {
			td.Shape[i] = rng.Uint64() >> rng.IntN(64)
		}
	}
	if rng.IntN(5) > 0 {
		td.Data = make([]byte, rng.IntN(300))
		for i := range td.Data {
			td.Data[i] = byte(rng.Uint32())
		}
	}
	return td
}

func randModel(rng *rand.Rand) Model {
	m := Model{Name: []string{"", "risk-mlp", "ü"}[rng.IntN(3)], Version: rng.Uint64() >> rng.IntN(64)}
	if rng.IntN(4) > 0 {
		m.Tensors = make([]TensorData, rng.IntN(5))
		for i := range m.Tensors {
			m.Tensors[i] = randTensor(rng)
		}
	}
	return m
}

func randF(rng *rand.Rand) float64 {
	switch rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return float64(rng.IntN(100)) / 4
	case 2:
		return math.Inf(1 - 2*rng.IntN(2))
	case 3:
		return float64(float32(rng.NormFloat64()))
	}
	return rng.NormFloat64() * 1e-3
}

func randMetrics(rng *rand.Rand) map[string]float64 {
	if rng.IntN(4) == 0 {
		return nil
	}
	m := map[string]float64{}
	for _, k := range []string{"loss", "accuracy", "steps", "a", "zz"}[:rng.IntN(6)] {
		m[k] = randF(rng)
	}
	return m
}

func randValueOf(rng *rand.Rand, kind int) any {
	switch kind {
	case 0:
		m := randModel(rng)
		return &m
	case 1:
		return &TrainInput{Model: randModel(rng), Round: rng.Uint64() >> rng.IntN(64),
			Settings: Settings{LR: randF(rng), Epochs: uint64(rng.IntN(5)), BatchSize: uint64(rng.IntN(100)), Mu: randF(rng),
				Seed: rng.Uint64(), Mode: []string{"", "weights", "gradient"}[rng.IntN(3)]},
			Data: Dataset{X: randTensor(rng), Y: randTensor(rng)}}
	case 2:
		return &TrainOutput{Model: randModel(rng), NumExamples: rng.Uint64() >> rng.IntN(64), Metrics: randMetrics(rng)}
	case 3:
		return &EvalInput{Model: randModel(rng), Data: Dataset{X: randTensor(rng), Y: randTensor(rng)}}
	default:
		return &EvalOutput{NumExamples: uint64(rng.IntN(1000)), Metrics: randMetrics(rng)}
	}
}

// TestSharedStructuresAgainstFxamacker: for random values of every shared
// structure, the hand-written encoder gives fxamacker's bytes, and each
// decoder reads the other encoder's output back to the original value.
func TestSharedStructuresAgainstFxamacker(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 2000 {
		v := randValueOf(rng, i%5)
		if _, ok := v.(cbor.Marshaler); !ok {
			t.Fatalf("%T is not a cbor.Marshaler", v)
		}
		ours, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := fxEnc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("%T %d:\nours   %x\ntheirs %x", v, i, ours, theirs)
		}
		a := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Unmarshal(theirs, a); err != nil {
			t.Fatalf("%T %d: our decoder: %v", v, i, err)
		}
		b := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := fxDec.Unmarshal(ours, b); err != nil {
			t.Fatalf("%T %d: fxamacker: %v", v, i, err)
		}
		if !reflect.DeepEqual(a, v) || !reflect.DeepEqual(b, v) {
			t.Fatalf("%T %d: round trip\nin   %+v\nours %+v\nfx   %+v", v, i, v, a, b)
		}
	}
}

// TestSharedStructuresTolerance: what other encoders may send is accepted
// (unknown keys, null fields, indefinite lengths, integers for floats), and
// a wrong type names its field.
func TestSharedStructuresTolerance(t *testing.T) {
	in := map[string]any{
		"settings": map[string]any{"lr": 1, "epochs": 2, "mode": nil, "extra": []any{1, 2}},
		"model":    map[string]any{"name": "m", "tensors": []any{map[string]any{"name": "w", "dtype": 1, "shape": []any{1}, "data": []byte{0, 0, 128, 63}, "note": "x"}}},
		"future":   map[string]any{"k": 1.5},
	}
	b, err := fxEnc.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var ti TrainInput
	if err := Unmarshal(b, &ti); err != nil {
		t.Fatal(err)
	}
	if ti.Settings.LR != 1 || ti.Settings.Epochs != 2 || ti.Model.Tensors[0].Name != "w" {
		t.Fatalf("%+v", ti)
	}
	if v, err := ti.Model.Tensors[0].F32(); err != nil || v[0] != 1 {
		t.Fatalf("%v %v", v, err)
	}
	// indefinite-length map and array
	indef := []byte{0xbf, 0x64, 'n', 'a', 'm', 'e', 0x61, 'q', 0x67, 't', 'e', 'n', 's', 'o', 'r', 's', 0x9f, 0xff, 0xff}
	var m Model
	if err := Unmarshal(indef, &m); err != nil || m.Name != "q" || m.Tensors == nil {
		t.Fatalf("%+v %v", m, err)
	}
	bad, _ := fxEnc.Marshal(map[string]any{"model": map[string]any{"tensors": []any{map[string]any{}, map[string]any{"dtype": "f32"}}}})
	err = Unmarshal(bad, &ti)
	if err == nil || !strings.Contains(err.Error(), "model.tensors[1].dtype: offset") {
		t.Fatalf("bad dtype: %v", err)
	}
	huge, _ := fxEnc.Marshal(map[string]any{"dtype": uint64(1) << 40})
	var td TensorData
	if err := Unmarshal(huge, &td); err == nil || !strings.Contains(err.Error(), "dtype") {
		t.Fatalf("dtype overflow: %v", err)
	}
}

// BenchmarkDecodeTrainInput compares the hand-written decoder with
// fxamacker's reflection on a train input of 2000 examples (native code;
// the gap is larger inside wasm).
func BenchmarkDecodeTrainInput(b *testing.B) {
	x := make([]float32, 2000*7)
	y := make([]float32, 2000)
	in := TrainInput{Settings: Settings{LR: 0.01, Epochs: 1, BatchSize: 32},
		Data: Dataset{X: F32Data("x", []int{2000, 7}, x), Y: F32Data("y", []int{2000}, y)}}
	enc, _ := Marshal(&in)
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			var v TrainInput
			if err := Unmarshal(enc, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fxamacker", func(b *testing.B) {
		for b.Loop() {
			var v TrainInput
			if err := fxDec.Unmarshal(enc, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
