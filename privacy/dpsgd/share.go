package dpsgd

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// MaxShareDivisor bounds a Share's divisor (secure aggregation's largest
// round, privacy/secagg.MaxClients, is far below it).
const MaxShareDivisor = 1 << 16

// Share is a device's grant for one DP-SGD step noised with only a share
// of the Gaussian noise: N(0, (zC)^2 / Divisor) instead of N(0, (zC)^2),
// because the step's noisy sum leaves the device only inside a secure
// aggregate that the device itself verified holds at least Divisor honest
// contributions, each with its own share, so the revealed sum carries at
// least the full noise (docs/PRIVACY.md, "Distributed DP-SGD noise").
//
// Only the device's trusted side makes one (its federation mode client,
// from the secure aggregation round it set up); the host's dp_sgd_begin
// and dp_sgd_step use it when the call carries it, and never give the
// under-noised sum to the guest: they Seal it here, where only the grant's
// maker reads it (Sealed). A grant covers one run of one step and is
// sealed once.
type Share struct {
	divisor int

	mu     sync.Mutex
	begun  bool
	sealed *Sealed
}

// Sealed is a sealed step: the noisy sum scaled by 1/(Q*Units) (what
// dp_sgd_step writes for a guest without a share), the parameters it was
// made with, and the network's layer sizes.
type Sealed struct {
	Sum           []float32
	Z, Clip, Q    float64
	Units, Sample int
	// Noise is the std per value the host added to the unscaled sum:
	// Z*Clip/sqrt(Divisor).
	Noise  float64
	Layers []int
}

// NewShare grants one step at noise variance 1/divisor of the full
// noise's. divisor 1 is the full noise.
func NewShare(divisor int) (*Share, error) {
	if divisor < 1 || divisor > MaxShareDivisor {
		return nil, fmt.Errorf("dpsgd: share divisor %d outside 1..%d", divisor, MaxShareDivisor)
	}
	return &Share{divisor: divisor}, nil
}

// Divisor is the grant's variance divisor.
func (s *Share) Divisor() int { return s.divisor }

// ErrShareUsed is the error of a second Begin or Seal on one grant.
var ErrShareUsed = errors.New("dpsgd: the noise share grant covers one run of one step, and it is used")

// Begin marks the grant's one run as started (the host's dp_sgd_begin);
// a second run is refused.
func (s *Share) Begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.begun {
		return ErrShareUsed
	}
	s.begun = true
	return nil
}

// Seal stores the step's result (a copy of v.Sum); a second is refused.
func (s *Share) Seal(v Sealed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begun || s.sealed != nil {
		return ErrShareUsed
	}
	v.Sum, v.Layers = slices.Clone(v.Sum), slices.Clone(v.Layers)
	s.sealed = &v
	return nil
}

// Sealed returns the sealed step (a copy), ok false before one.
func (s *Share) Sealed() (Sealed, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed == nil {
		return Sealed{}, false
	}
	v := *s.sealed
	v.Sum, v.Layers = slices.Clone(v.Sum), slices.Clone(v.Layers)
	return v, true
}
