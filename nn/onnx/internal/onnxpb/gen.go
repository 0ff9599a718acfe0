// Package onnxpb holds the Go types generated from the official onnx.proto
// (copied unchanged from the onnx 1.23.2 Python package, IR version 12). Only
// the nn/onnx loader uses them; nothing else should.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb onnx.proto
