package nn

import (
	"bytes"
	"strings"
	"testing"
)

func TestNPYRoundTrip(t *testing.T) {
	for _, tc := range []*Tensor{
		{DType: Float32, Shape: []int{2, 3}, F32: []float32{1, -2, 3.5, 0, 1e-7, -1e30}},
		{DType: Int64, Shape: []int{3}, I64: []int64{-1, 1 << 40, 7}},
		{DType: Int32, Shape: []int{1, 1, 2}, I32: []int32{-5, 9}},
		{DType: Bool, Shape: []int{}, U8: []uint8{1}},
		{DType: Float32, Shape: []int{0, 4}, F32: []float32{}},
	} {
		var buf bytes.Buffer
		if err := WriteNPY(&buf, tc); err != nil {
			t.Fatalf("%v: %v", tc, err)
		}
		if buf.Len()%64 != (tc.Len()*tc.DType.Size())%64 {
			t.Errorf("%v: header not padded to 64 bytes", tc)
		}
		got, err := ReadNPY(&buf)
		if err != nil {
			t.Fatalf("%v: %v", tc, err)
		}
		if got.String() != tc.String() || got.Check() != nil {
			t.Fatalf("got %v, want %v", got, tc)
		}
		for i := 0; i < tc.Len(); i++ {
			switch tc.DType {
			case Float32:
				if got.F32[i] != tc.F32[i] {
					t.Fatalf("%v: element %d: %v", tc, i, got.F32[i])
				}
			case Int64:
				if got.I64[i] != tc.I64[i] {
					t.Fatalf("%v: element %d: %v", tc, i, got.I64[i])
				}
			case Int32:
				if got.I32[i] != tc.I32[i] {
					t.Fatalf("%v: element %d: %v", tc, i, got.I32[i])
				}
			default:
				if got.U8[i] != tc.U8[i] {
					t.Fatalf("%v: element %d: %v", tc, i, got.U8[i])
				}
			}
		}
	}
}

func npyFile(header string, data int) []byte {
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
	return append(append(b, header...), make([]byte, data)...)
}

func TestNPYRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header"},
		{"magic", []byte("PK\x03\x04zipfile!"), "bad magic"},
		{"dtype", npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16), "unsupported dtype"},
		{"fortran", npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8), "Fortran"},
		{"huge shape", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", 8), "exceeds the limit"},
		{"truncated data", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8), "data of f32[4]"},
		{"bad dim", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", 8), "bad dimension"},
	} {
		_, err := ReadNPY(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
