package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/internal/modelbench"
)

func newModelBenchCmd() *cobra.Command {
	var (
		cfg    modelbench.Config
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "bench MODEL.onnx [--input NAME=DTYPE:SHAPE:SOURCE ...] [--dim NAME=N ...] [--runs N] [--warmup N] [--threads N] [--ort] [--json]",
		Short: "Time a model on the CPU backend (median, p10, p90), optionally side by side with onnxruntime",
		Long: `Time a model on the CPU backend: --warmup runs, then --runs timed runs.

Inputs the command line does not give are random (uniform in [-1, 1) for
f32, 0 or 1 for integers and bool) of the model's declared shapes; a
symbolic dim takes its value from --dim NAME=N. --input NAME=DTYPE:SHAPE:SOURCE
gives one: DTYPE f32, i64, i32, u8, i8 or bool; SHAPE like 1x3x48x192 (empty
for a scalar); SOURCE "random", "zeros", a number (every element), or a
.npy file (whose dtype and shape must match). --input NAME=FILE.npy is short
for the file's own dtype and shape.

--ort also runs the same inputs through Python's onnxruntime (CPU provider,
intra-op threads --threads, inter-op 1) in a subprocess, alternating one
fennec run and one onnxruntime run so machine load affects both, and prints
the ratio of the medians; without python or onnxruntime it says so and
times fennec alone.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if cfg.Runs == 0 { // the library's zero is its default
				return &exitError{exitUsage, fmt.Errorf("--runs 0: want 1 to %d", modelbench.MaxRuns)}
			}
			cfg.Model, cfg.Log = args[0], c.ErrOrStderr()
			rep, err := modelbench.Run(cfg)
			var be *modelbench.Error
			if errors.As(err, &be) {
				code := exitFailure
				switch be.Kind {
				case modelbench.Usage:
					code = exitUsage
				case modelbench.BadInput:
					code = exitBadInput
				}
				return &exitError{code, err}
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.WriteText(c.OutOrStdout())
			return nil
		},
	}
	c.Flags().StringArrayVar(&cfg.Inputs, "input", nil, "an input as NAME=DTYPE:SHAPE:SOURCE or NAME=FILE.npy (repeat for each)")
	c.Flags().StringArrayVar(&cfg.Dims, "dim", nil, "a symbolic dimension's value as NAME=N (repeat for each)")
	c.Flags().IntVar(&cfg.Runs, "runs", 50, "timed runs")
	c.Flags().IntVar(&cfg.Warmup, "warmup", 5, "untimed runs first")
	c.Flags().IntVar(&cfg.Threads, "threads", 1, "threads for fennec's kernels and onnxruntime's intra-op pool (0: all cores)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&cfg.ORT, "ort", false, "also time onnxruntime (python3 -m onnxruntime), interleaved, and print the ratio")
	c.Flags().StringVar(&cfg.Python, "python", "python3", "the Python interpreter --ort runs")
	return c
}
