// Package dp implements differential privacy for fennec: noise mechanisms
// (Gaussian and Laplace) whose output cannot leak through floating-point
// artefacts, L2 clipping with adaptive clip-norm tracking, noise calibration
// (the analytic Gaussian mechanism and the classic bound) and a Renyi-DP
// accountant for the Gaussian mechanism on Poisson samples or on fixed-size
// samples drawn without replacement, which reproduces TF Privacy /
// dp_accounting and Opacus.
//
// # Secure noise
//
// Adding a float64 sample of continuous noise to a value leaks: the set of
// floating-point numbers the sum can take depends on the value (Mironov, "On
// significance of the least significant bits for differential privacy", CCS
// 2012). Following the approach of Google's differential-privacy library, the
// mechanisms here work on a lattice: for noise scale s they choose a
// granularity g, a power of two close to s/2^15 (Gaussian) or s/2^40
// (Laplace), round the value to the nearest multiple of g, and add g times an
// integer drawn from the discrete Gaussian or discrete Laplace of scale s/g,
// rounded up so the noise is never smaller than asked for. The integer
// samplers (privacy/internal/discrete) are the exact rejection samplers of
// Canonne, Kamath and Steinke (2020), using only integer arithmetic on random
// words from ChaCha8 seeded by crypto/rand. The output is then an exact
// multiple of g, whose distribution depends on the input only through its
// rounded value, and converting it to float32 afterwards is post-processing.
package dp
