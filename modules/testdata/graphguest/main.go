// Command graphguest is a test guest for sdk/graph (fennec_nn): it runs
// the operator's model "vad" (Silero VAD v5) on a chunk of audio with a
// zero state and returns the speech probability and the new state's
// shape; the model's outputs stay host tensors until it reads them.
package main

import (
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/graph"
)

type request struct {
	Audio []float32 `cbor:"audio"`
}

type response struct {
	Prob       float32  `cbor:"prob"`
	StateShape []int    `cbor:"state_shape"`
	Inputs     []string `cbor:"inputs"`
}

var vad *graph.Graph // loaded once per instance: the weights stay shared on the host

//go:wasmexport run
func run(n int32) int32 { return sdk.ServeCBOR(n, handle) }

func handle(req request) (response, error) {
	if vad == nil {
		g, err := graph.Load("vad")
		if err != nil {
			return response{}, err
		}
		vad = g
	}
	audio, err := sdk.FromF32([]int{1, len(req.Audio)}, req.Audio)
	if err != nil {
		return response{}, err
	}
	defer audio.Free()
	state, err := sdk.Zeros(2, 1, 128)
	if err != nil {
		return response{}, err
	}
	defer state.Free()
	sr, err := sdk.FromI32(nil, []int32{16000}) // int64 in the model
	if err != nil {
		return response{}, err
	}
	defer sr.Free()
	outs, err := vad.Run(audio, state, sr)
	if err != nil {
		return response{}, err
	}
	defer func() {
		for _, o := range outs {
			o.Free()
		}
	}()
	p, err := outs[0].Read(nil)
	if err != nil {
		return response{}, err
	}
	shape, err := outs[1].Shape()
	if err != nil {
		return response{}, err
	}
	var names []string
	for _, v := range vad.Inputs {
		names = append(names, v.Name)
	}
	return response{Prob: p[0], StateShape: shape, Inputs: names}, nil
}

func main() {}
