//go:build !cuda

package main

import (
	"log/slog"

	"github.com/fennec-edge/fennec/gpu"
)

// selectBackend returns the tensor backend: this binary was built without
// -tags cuda, so it is always the CPU.
func selectBackend(log *slog.Logger) (gpu.Backend, string) {
	return gpu.NewCPU(), "built without -tags cuda"
}

// cudaBuild reports whether this binary was built with -tags cuda.
const cudaBuild = false
