// Command privacyguest is the test guest of hostfuncs/privacy_e2e_test.go:
// it uses sdk/privacy through the runtime. Entrypoints take and return raw
// little-endian bytes:
//
//	release:   in  f64 noise multiplier, f32 values...
//	           out 'K' f64 norm-before-clip, f64 remaining epsilon, f64 remaining delta, f32 noisy values...
//	           or  'B' message (the guest saw sdk.ErrBudget)
//	encrypt:   in  f32 values...            out the ciphertext message
//	aggregate: in  u32 n, then (u32 length, message)...
//	           out f32 sum of n values, or 'D' message when the hub refused (sdk.ErrDenied)
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/privacy"
)

func main() {}

func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func putF64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

//go:wasmexport release
func release(n int32) int32 { return sdk.Serve(n, doRelease) }

func doRelease(in []byte) ([]byte, error) {
	if len(in) < 8 {
		return nil, errors.New("short input")
	}
	z := math.Float64frombits(binary.LittleEndian.Uint64(in))
	vals := f32s(in[8:])
	t, err := sdk.FromF32([]int{len(vals)}, vals)
	if err != nil {
		return nil, err
	}
	defer t.Free()
	norm, err := privacy.Clip(t, 1)
	if err != nil {
		return nil, err
	}
	noisy, err := privacy.Gaussian(t, 1, z, 1, nil)
	if errors.Is(err, sdk.ErrBudget) {
		return append([]byte{'B'}, err.Error()...), nil
	}
	if err != nil {
		return nil, err
	}
	defer noisy.Free()
	eps, delta, err := privacy.Remaining()
	if err != nil {
		return nil, err
	}
	got, err := noisy.Read(nil)
	if err != nil {
		return nil, err
	}
	out := putF64(putF64(putF64([]byte{'K'}, norm), eps), delta)
	for _, v := range got {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out, nil
}

//go:wasmexport encrypt
func encrypt(n int32) int32 {
	return sdk.Serve(n, func(in []byte) ([]byte, error) {
		vals := f32s(in)
		t, err := sdk.FromF32([]int{len(vals)}, vals)
		if err != nil {
			return nil, err
		}
		defer t.Free()
		return privacy.Encrypt(t, nil)
	})
}

//go:wasmexport aggregate
func aggregate(n int32) int32 { return sdk.Serve(n, doAggregate) }

func doAggregate(in []byte) ([]byte, error) {
	if len(in) < 4 {
		return nil, errors.New("short input")
	}
	n := int(binary.LittleEndian.Uint32(in))
	in = in[4:]
	for len(in) >= 4 {
		l := int(binary.LittleEndian.Uint32(in))
		if l > len(in)-4 {
			return nil, fmt.Errorf("message of %d bytes, %d left", l, len(in)-4)
		}
		if _, err := privacy.AddEncrypted(in[4 : 4+l]); err != nil {
			return nil, err
		}
		in = in[4+l:]
	}
	sum, err := sdk.Zeros(n)
	if err != nil {
		return nil, err
	}
	defer sum.Free()
	if err := privacy.DecryptAggregate(sum); errors.Is(err, sdk.ErrDenied) {
		return append([]byte{'D'}, err.Error()...), nil
	} else if err != nil {
		return nil, err
	}
	got, err := sum.Read(nil)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, v := range got {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out, nil
}
