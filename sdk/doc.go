// Package sdk is the Go guest SDK of fennec: it wraps host ABI v1
// (docs/ABI.md) for modules built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o m.wasm .
//
// It provides host tensors (Tensor, with MatMul, elementwise ops,
// activations, softmax, reductions and losses, all with optional output
// reuse), typed errors carrying the ABI code and the host's last_error
// message (*Error, matched with errors.Is against ErrQuota and friends),
// CBOR entrypoint I/O (Input, Output, Serve, ServeCBOR, Handle/Dispatch),
// logging and the shared Model/Dataset structures. Package sdk/nn builds
// small trainable networks on top.
//
// Go requires //go:wasmexport functions to live in package main, so every
// entrypoint is two lines of boilerplate:
//
//	//go:wasmexport process
//	func process(n int32) int32 { return sdk.ServeCBOR(n, handle) }
//
//	func handle(in Request) (Response, error) { ... }
//
//	func main() {}
//
// The package also builds on other platforms, where every host call returns
// ErrNotWasm, so that `go vet ./...` and pure-logic tests work on the host.
package sdk
