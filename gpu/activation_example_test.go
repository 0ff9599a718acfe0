package gpu_test

import (
	"fmt"

	"github.com/fennec-edge/fennec/gpu"
)

func ExampleSigmoidF32() {
	x := []float32{-2, 0, 2}
	s, t := make([]float32, 3), make([]float32, 3)
	gpu.SigmoidF32(s, x)
	gpu.TanhF32(t, x)
	fmt.Printf("%.4f\n%.4f\n", s, t)
	// Output:
	// [0.1192 0.5000 0.8808]
	// [-0.9640 0.0000 0.9640]
}
