// Command heencrypt is a test module for the privacy host functions in the
// shipped command: its `encrypt` entrypoint encrypts the input's values
// with he_encrypt and returns the ciphertext message's length.
package main

import (
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/privacy"
)

type input struct {
	Values []float32 `cbor:"values"`
}

type output struct {
	Len int `cbor:"len"`
}

//go:wasmexport encrypt
func encrypt(n int32) int32 { return sdk.ServeCBOR(n, run) }

func run(in input) (output, error) {
	t, err := sdk.FromF32([]int{len(in.Values)}, in.Values)
	if err != nil {
		return output{}, err
	}
	defer t.Free()
	msg, err := privacy.Encrypt(t, nil)
	if err != nil {
		return output{}, err
	}
	return output{Len: len(msg)}, nil
}

func main() {}
