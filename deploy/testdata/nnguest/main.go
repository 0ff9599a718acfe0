// Command nnguest is the model-carrying test module of package deploy: it
// runs the model "m" its bundle ships (fennec_nn) on a = [1..8] (f32
// [2,1,4]) and b = [10, 20, 30] (f32 [3,1]), the inputs of hostfuncs'
// testdata add.onnx and mul.onnx, and answers the first output element, so
// a test sees which model answered (add: 11, mul: 10).
//
//	health    runs the model once: a model without those inputs fails it
//	run       loads the graph, sleeps SLEEP_MS (to observe a call in flight
//	          across a swap), runs it and answers out[0] (CBOR float)
package main

import (
	"os"
	"strconv"
	"time"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/graph"
)

var g *graph.Graph // loaded once per instance

func answer() (float32, error) {
	if g == nil {
		var err error
		if g, err = graph.Load("m"); err != nil {
			return 0, err
		}
	}
	if ms, err := strconv.Atoi(os.Getenv("SLEEP_MS")); err == nil && ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	a, err := sdk.FromF32([]int{2, 1, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		return 0, err
	}
	defer a.Free()
	b, err := sdk.FromF32([]int{3, 1}, []float32{10, 20, 30})
	if err != nil {
		return 0, err
	}
	defer b.Free()
	outs, err := g.Run(a, b)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, o := range outs {
			o.Free()
		}
	}()
	v, err := outs[0].Read(nil)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

//go:wasmexport health
func health(n int32) int32 {
	return sdk.ServeCBOR(n, func(struct{}) (string, error) {
		if _, err := answer(); err != nil {
			return "", err
		}
		return "ok", nil
	})
}

//go:wasmexport run
func run(n int32) int32 {
	return sdk.ServeCBOR(n, func(struct{}) (float32, error) { return answer() })
}

func main() {}
