package dp

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/fennec-edge/fennec/privacy/internal/discrete"
)

// Source is a cryptographically secure source of randomness for noise:
// ChaCha8 keyed from crypto/rand. It is safe for concurrent use.
type Source struct {
	mu sync.Mutex
	r  *rand.Rand
}

// NewSource returns a Source keyed from crypto/rand.
func NewSource() *Source {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go >= 1.24
		// crashes the program instead); keep the check for clarity.
		panic("dp: crypto/rand failed: " + err.Error())
	}
	return NewSourceFromSeed(seed)
}

// NewSourceFromSeed returns a deterministic Source. It exists for tests and
// reproducible benchmarks only: noise drawn from a known seed gives no
// privacy.
func NewSourceFromSeed(seed [32]byte) *Source {
	return &Source{r: rand.New(rand.NewChaCha8(seed))}
}

// Errors returned by mechanisms and calibration.
var (
	ErrParam = errors.New("dp: invalid parameter")
)

const (
	gaussianResolution = discrete.MaxGaussianSigma >> 1 // sigma/g in (2^14, 2^15]
	laplaceResolution  = 1 << 40                        // b/g in (2^39, 2^40]
)

// granularity returns the power of two g with scale/g in (res/2, res] and
// the integer scale ceil(scale/g) in units of g.
func granularity(scale float64, res float64) (g float64, units uint64) {
	_, e := math.Frexp(scale / res) // scale/res = f*2^e, f in [0.5,1)
	g = math.Ldexp(1, e)            // g >= scale/res
	units = uint64(math.Ceil(scale / g))
	return g, max(units, 1)
}

// Granularity reports the lattice spacing that the Gaussian (gaussian=true)
// or Laplace mechanism uses for noise scale scale: outputs are exact
// multiples of it.
func Granularity(scale float64, gaussian bool) float64 {
	if gaussian {
		g, _ := granularity(scale, gaussianResolution)
		return g
	}
	g, _ := granularity(scale, laplaceResolution)
	return g
}

func checkScale(name string, s float64) error {
	if !(s > 0) || math.IsInf(s, 0) || s > 1e300 {
		return fmt.Errorf("%w: %s must be positive and finite, got %v", ErrParam, name, s)
	}
	return nil
}

// roundTo rounds x to the nearest multiple of g (ties to even) and returns
// it in units of g. Values beyond +-2^52 units are clamped: the caller's data
// is then far outside any meaningful sensitivity.
func roundTo(x, g float64) float64 {
	const lim = 1 << 52
	u := math.RoundToEven(x / g)
	switch {
	case math.IsNaN(u):
		return 0
	case u > lim:
		return lim
	case u < -lim:
		return -lim
	}
	return u
}

// AddGaussian adds to every element of x independent Gaussian noise of
// standard deviation at least sigma (at most sigma*(1+2^-14)), on the lattice
// described in the package documentation. NaN inputs become 0.
func (s *Source) AddGaussian(x []float64, sigma float64) error {
	if err := checkScale("sigma", sigma); err != nil {
		return err
	}
	g, units := granularity(sigma, gaussianResolution)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range x {
		x[i] = (roundTo(v, g) + float64(discrete.Gaussian(s.r, units))) * g
	}
	return nil
}

// AddGaussian32 is AddGaussian for float32 data; the sum is computed on the
// float64 lattice and then rounded to float32 (post-processing).
func (s *Source) AddGaussian32(x []float32, sigma float64) error {
	if err := checkScale("sigma", sigma); err != nil {
		return err
	}
	g, units := granularity(sigma, gaussianResolution)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range x {
		x[i] = float32((roundTo(float64(v), g) + float64(discrete.Gaussian(s.r, units))) * g)
	}
	return nil
}

// AddLaplace adds to every element of x independent Laplace noise of scale
// at least b (density proportional to exp(-|z|/b)), on the lattice described
// in the package documentation.
func (s *Source) AddLaplace(x []float64, b float64) error {
	if err := checkScale("laplace scale", b); err != nil {
		return err
	}
	g, units := granularity(b, laplaceResolution)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range x {
		x[i] = (roundTo(v, g) + float64(discrete.Laplace(s.r, units))) * g
	}
	return nil
}

// AddLaplace32 is AddLaplace for float32 data.
func (s *Source) AddLaplace32(x []float32, b float64) error {
	if err := checkScale("laplace scale", b); err != nil {
		return err
	}
	g, units := granularity(b, laplaceResolution)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range x {
		x[i] = float32((roundTo(float64(v), g) + float64(discrete.Laplace(s.r, units))) * g)
	}
	return nil
}

// Float64 returns a uniform float64 in [0,1); for non-privacy uses such as
// Poisson sampling decisions.
func (s *Source) Float64() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Float64()
}
