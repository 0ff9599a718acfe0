// Package benchsuite holds the benchmark harnesses behind `fennec bench`
// (groups abi, fed, int8, gemm, elementwise, privacy, sdk): each file
// registers its cases with internal/bench at init, and the command only
// lists, selects and prints them. They compare fennec side by side with
// the reference each issue names, in one run (BENCHMARKS.md).
package benchsuite

import (
	"context"
	"log/slog"

	"github.com/fennec-edge/fennec/runtime"
)

// NewEngine makes the engines the harnesses measure. The command sets it
// to its own constructor, so benchmarks run on the tensor backend the
// binary selects (CUDA when built with it and a device is present); the
// default is runtime.New with cfg as given (the CPU backend).
var NewEngine = func(ctx context.Context, _ *slog.Logger, cfg runtime.Config) (*runtime.Engine, error) {
	return runtime.New(ctx, cfg)
}
