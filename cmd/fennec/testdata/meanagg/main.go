// Command meanagg is a test strategy module for `fennec hub
// --strategy-module`: its `aggregate` entrypoint returns the
// example-weighted mean of the updates' f32 tensors (FedAvg), in the global
// model's layout.
package main

import (
	"fmt"

	"github.com/fennec-edge/fennec/sdk"
)

type item struct {
	Model       sdk.Model `cbor:"model"`
	NumExamples uint64    `cbor:"num_examples"`
}

type input struct {
	Updates []item    `cbor:"updates"`
	Global  sdk.Model `cbor:"global"`
	Round   uint64    `cbor:"round"`
}

type output struct {
	Model sdk.Model `cbor:"model"`
}

//go:wasmexport aggregate
func aggregate(n int32) int32 { return sdk.ServeCBOR(n, mean) }

func mean(in input) (output, error) {
	if len(in.Updates) == 0 {
		return output{}, fmt.Errorf("aggregate: no updates")
	}
	var total float64
	for _, u := range in.Updates {
		total += float64(max(u.NumExamples, 1))
	}
	out := sdk.Model{Name: in.Global.Name, Version: in.Global.Version}
	for i := range in.Global.Tensors {
		g := &in.Global.Tensors[i]
		dims, err := g.Dims()
		if err != nil {
			return output{}, fmt.Errorf("global tensor %q: %w", g.Name, err)
		}
		sum := make([]float64, len(g.Data)/4)
		for j, u := range in.Updates {
			if len(u.Model.Tensors) != len(in.Global.Tensors) {
				return output{}, fmt.Errorf("update %d has %d tensors, want %d", j, len(u.Model.Tensors), len(in.Global.Tensors))
			}
			v, err := u.Model.Tensors[i].F32()
			if err != nil {
				return output{}, fmt.Errorf("update %d tensor %q: %w", j, g.Name, err)
			}
			if len(v) != len(sum) {
				return output{}, fmt.Errorf("update %d tensor %q: %d values, want %d", j, g.Name, len(v), len(sum))
			}
			w := float64(max(u.NumExamples, 1)) / total
			for k, x := range v {
				sum[k] += w * float64(x)
			}
		}
		avg := make([]float32, len(sum))
		for k, x := range sum {
			avg[k] = float32(x)
		}
		out.Tensors = append(out.Tensors, sdk.F32Data(g.Name, dims, avg))
	}
	return output{Model: out}, nil
}

func main() {}
