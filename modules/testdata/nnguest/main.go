// Command nnguest is a test guest for sdk/nn: one train entrypoint whose
// input also chooses the hidden activation, the loss and the optimizer, so
// that host tests can check every layer, loss and optimizer of sdk/nn
// against a plain-Go reference (modules/nn_test.go). Its request type has
// no hand-written codec on purpose: it decodes through sdk/cbor's
// reflection fallback, which is thereby exercised inside wasm too.
package main

import (
	"fmt"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/nn"
)

type request struct {
	Train    sdk.TrainInput `cbor:"train"`
	Act      string         `cbor:"act"`  // "relu", "sigmoid" or "tanh"
	Loss     string         `cbor:"loss"` // "mse", "softmax" or "bce"
	Opt      string         `cbor:"opt"`  // "sgd" or "adam"
	Momentum float64        `cbor:"momentum"`
}

//go:wasmexport train
func train(n int32) int32 { return sdk.ServeCBOR(n, handle) }

func handle(req request) (sdk.TrainOutput, error) {
	act := map[string]func() *nn.Activation{"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[req.Act]
	loss, ok := map[string]nn.Loss{"mse": nn.MeanSquaredError, "softmax": nn.SoftmaxCrossEntropy, "bce": nn.BinaryCrossEntropy}[req.Loss]
	if act == nil || !ok {
		return sdk.TrainOutput{}, fmt.Errorf("act %q / loss %q unknown", req.Act, req.Loss)
	}
	net, err := nn.FromModel(&req.Train.Model, act)
	if err != nil {
		return sdk.TrainOutput{}, err
	}
	defer net.Free()
	tr := nn.Trainer{Net: net, Loss: loss, Optimizer: func(s sdk.Settings) nn.Optimizer {
		if req.Opt == "adam" {
			return &nn.Adam{LR: float32(s.LR)}
		}
		return &nn.SGD{LR: float32(s.LR), Momentum: float32(req.Momentum)}
	}}
	return tr.Train(&req.Train)
}

func main() {}
