package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/spf13/cobra"
)

func newModelQuantizeCmd() *cobra.Command {
	var (
		mode  string
		calib []string
	)
	c := &cobra.Command{
		Use:   "quantize IN.onnx OUT.onnx [--mode dynamic|static] [--calibrate NAME=FILE.npy ...]",
		Short: "Rewrite an f32 ONNX model to int8 (MatMul, Gemm and Conv with constant weights); the output also runs on onnxruntime",
		Long: `Rewrite an f32 ONNX model to int8.

--mode dynamic (default): weights int8 per output channel, activations
quantized at run time (DynamicQuantizeLinear + MatMulInteger/ConvInteger).
--mode static: activation ranges from calibration inputs, written as
QuantizeLinear/DequantizeLinear pairs (QDQ). Each --calibrate NAME=FILE.npy
adds an input to the current feed; naming an input again starts a new feed.

Activations are u8 and weights 7-bit (within +-63), so onnxruntime's int8
kernels cannot saturate. Nodes left in f32 are listed on stderr with why.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			in, out := args[0], args[1]
			if mode != onnx.QuantizeDynamic && mode != onnx.QuantizeStatic {
				return &exitError{exitUsage, fmt.Errorf("--mode %q: want dynamic or static", mode)}
			}
			if mode == onnx.QuantizeStatic && len(calib) == 0 {
				return &exitError{exitUsage, errors.New("--mode static needs --calibrate NAME=FILE.npy")}
			}
			if mode == onnx.QuantizeDynamic && len(calib) > 0 {
				return &exitError{exitUsage, errors.New("--calibrate is for --mode static")}
			}
			var feeds []map[string]*nn.Tensor
			for _, spec := range calib {
				name, file, ok := strings.Cut(spec, "=")
				if !ok || name == "" || file == "" {
					return &exitError{exitUsage, fmt.Errorf("--calibrate %q: want NAME=FILE.npy", spec)}
				}
				t, err := nn.ReadNPYFile(file)
				if err != nil {
					if errors.Is(err, os.ErrNotExist) {
						return &exitError{exitUsage, err}
					}
					return &exitError{exitBadInput, err}
				}
				if len(feeds) == 0 || feeds[len(feeds)-1][name] != nil {
					feeds = append(feeds, map[string]*nn.Tensor{})
				}
				feeds[len(feeds)-1][name] = t
			}
			data, err := os.ReadFile(in)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return &exitError{exitUsage, err}
				}
				return err
			}
			stderr := c.ErrOrStderr()
			fmt.Fprintf(stderr, "quantizing %s (%d bytes, %s", in, len(data), mode)
			if len(feeds) > 0 {
				fmt.Fprintf(stderr, ", %d calibration feed(s)", len(feeds))
			}
			fmt.Fprintln(stderr, ")")
			q, rep, err := onnx.Quantize(data, in, onnx.QuantizeOptions{Mode: mode, Calibration: feeds})
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			if rep.OpsetTo != rep.OpsetFrom {
				fmt.Fprintf(stderr, "opset %d -> %d (the quantized operators need it)\n", rep.OpsetFrom, rep.OpsetTo)
			}
			for _, s := range rep.Skipped {
				fmt.Fprintln(stderr, s.String())
			}
			if err := atomicfile.WriteFile(out, q, 0o644); err != nil {
				return err
			}
			counts := map[string]int{}
			for _, n := range rep.Quantized {
				counts[n.OpType]++
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\t%d bytes -> %d bytes (%.2fx)\tquantized %d node(s) (Conv %d, MatMul %d, Gemm %d), %d left in f32\n",
				out, len(data), len(q), float64(len(data))/float64(max(1, len(q))), len(rep.Quantized), counts["Conv"], counts["MatMul"], counts["Gemm"], len(rep.Skipped))
			return nil
		},
	}
	c.Flags().StringVar(&mode, "mode", onnx.QuantizeDynamic, "dynamic (activations quantized at run time) or static (calibrated ranges, QDQ)")
	c.Flags().StringArrayVar(&calib, "calibrate", nil, "static mode: a calibration input as NAME=FILE.npy (repeat; a repeated NAME starts a new feed)")
	return c
}
