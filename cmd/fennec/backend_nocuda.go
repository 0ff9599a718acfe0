//go:build !cuda

package main

import (
	"log/slog"

	"github.com/fennec-edge/fennec/gpu"
)

// cudaBuild reports whether this binary was built with -tags cuda.
const cudaBuild = false

// noCUDA is the reason a binary without the cuda tag serves tensors on the
// CPU.
const noCUDA = "built without -tags cuda"

// selectBackend returns the tensor backend: this binary was built without
// -tags cuda, so it is always the CPU.
func selectBackend(log *slog.Logger) (gpu.Backend, string) {
	return gpu.NewCPU(), noCUDA
}

// probeCUDA describes the CUDA side for `fennec info`.
func probeCUDA() cudaReport {
	return cudaReport{Built: false, Error: "none: " + noCUDA, Devices: []cudaDevice{}}
}
