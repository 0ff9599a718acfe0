package dp_test

import (
	"fmt"

	"github.com/fennec-edge/fennec/privacy/dp"
)

// Client-level DP-FedAvg: 100 rounds, 10% of clients sampled per round,
// noise multiplier 1.1; the accountant reports the running epsilon.
func ExampleAccountant() {
	acc, _ := dp.NewAccountant(nil)
	for round := 1; round <= 100; round++ {
		_ = acc.ComposeSubsampledGaussian(0.1, 1.1, 1)
		if round%50 == 0 {
			eps, order, _ := acc.Epsilon(1e-5)
			fmt.Printf("round %d: epsilon %.4f (order %g)\n", round, eps, order)
		}
	}
	// Output:
	// round 50: epsilon 4.8991 (order 4.2)
	// round 100: epsilon 6.6137 (order 3.6)
}

func ExampleGaussianSigma() {
	s, _ := dp.GaussianSigma(1, 1e-5, 1)
	c, _ := dp.GaussianSigmaClassic(0.9, 1e-5, 1)
	fmt.Printf("analytic (1, 1e-5): %.4f; classic (0.9, 1e-5): %.4f\n", s, c)
	// Output:
	// analytic (1, 1e-5): 3.7306; classic (0.9, 1e-5): 5.3831
}
