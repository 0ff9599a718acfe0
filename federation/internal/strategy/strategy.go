// Package strategy implements the hub's aggregation strategies on flat
// float32 parameter vectors: FedAvg (example-weighted), FedSGD (synchronous
// gradient averaging with a server optimizer), FedProx (hub side = FedAvg),
// the adaptive server optimizers FedAdam, FedYogi and FedAdagrad (Reddi et
// al., "Adaptive Federated Optimization", ICLR 2021, as Flower implements
// them), and the Byzantine-robust rules coordinate-wise median, trimmed
// mean, Krum / MultiKrum and Bulyan (as Flower's aggregate.py implements
// them).
//
// Every function checks its inputs (lengths, counts, finiteness of the
// result) and returns errors; none panics on bad updates.
package strategy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Update is one device's contribution to a round.
type Update struct {
	Device      string
	Vec         []float32 // weights, or a gradient for gradient-mode strategies
	NumExamples uint64
}

// Aggregator turns a round's updates into the next global vector.
type Aggregator interface {
	Name() string
	// Aggregate returns the new global vector. global is the current one and
	// must not be modified; updates' vectors must not be modified either.
	Aggregate(round uint64, global []float32, updates []Update) ([]float32, error)
}

// Stateful aggregators carry server-optimizer state across rounds; the hub
// checkpoints it next to the model so a restarted hub resumes it.
type Stateful interface {
	State() []byte
	Restore(b []byte) error
}

// Robust is implemented by aggregators that tolerate some malicious
// updates only when a round has enough of them: MinUpdates is the smallest
// number of updates at which the rule does what it promises (trims at
// least one value per end, has n >= 2f+3 for Krum, n >= 4f+3 for Bulyan).
// Below it the rule still computes a result, as Flower's does, but one
// device can move it arbitrarily; the hub refuses such a configuration at
// start and such a round at aggregation.
type Robust interface {
	MinUpdates() int
	// Requirement explains MinUpdates in words ("trims int(0.2*n) >= 1
	// per end").
	Requirement() string
}

// GradientMode is implemented by aggregators whose devices must send a
// gradient ("gradient" train mode) instead of trained weights.
type GradientMode interface{ Gradient() bool }

// Errors.
var (
	ErrNoUpdates = errors.New("strategy: no updates")
	ErrLength    = errors.New("strategy: update length differs from the global model")
)

func check(global []float32, updates []Update) error {
	if len(updates) == 0 {
		return ErrNoUpdates
	}
	for i := range updates {
		if len(updates[i].Vec) != len(global) {
			return fmt.Errorf("%w: update %d (device %q) has %d elements, global has %d",
				ErrLength, i, updates[i].Device, len(updates[i].Vec), len(global))
		}
	}
	return nil
}

func finite(name string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("strategy %s: result element %d is %v", name, i, x)
		}
	}
	return nil
}

// parallel runs fn over [0, n) split into contiguous ranges, one per CPU,
// each a multiple of 16 elements except the last.
func parallel(n int, fn func(lo, hi int)) {
	w := runtime.GOMAXPROCS(0)
	if n < 1<<14 || w == 1 {
		fn(0, n)
		return
	}
	chunk := (n/w + 15) &^ 15
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// block is the number of elements one pass keeps in cache while it streams
// every update over it (32 KiB of f32: L1-resident accumulator).
const block = 8192

// WeightedMean returns sum_k w_k * vecs_k / sum_k w_k, computed as Flower's
// aggregate() does (scale, sum, then divide), blocked so the accumulator
// stays in L1 while updates stream from memory.
func WeightedMean(updates []Update, weights []float64) ([]float32, error) {
	if len(updates) == 0 {
		return nil, ErrNoUpdates
	}
	var total float64
	for _, w := range weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("strategy: invalid weight %v", w)
		}
		total += w
	}
	if total <= 0 {
		return nil, errors.New("strategy: weights sum to zero (no examples)")
	}
	n := len(updates[0].Vec)
	out := make([]float32, n)
	ws := make([]float32, len(weights))
	for i, w := range weights {
		ws[i] = float32(w)
	}
	inv := float32(total)
	parallel(n, func(lo, hi int) {
		for b := lo; b < hi; b += block {
			e := min(b+block, hi)
			acc := out[b:e]
			for k := range updates {
				axpy(acc, updates[k].Vec[b:e], ws[k])
			}
			for i := range acc {
				acc[i] /= inv
				if x := acc[i]; x-x != 0 {
					// Inf or NaN: the f32 scale-and-sum overflowed (finite
					// values near the f32 limit, or large weights), or an
					// input is not finite. The mean of finite values is
					// finite and no larger than the largest of them:
					// recompute this element in float64 with normalised
					// weights; a non-finite input stays non-finite.
					var s float64
					for k := range updates {
						s += weights[k] / total * float64(updates[k].Vec[b+i])
					}
					acc[i] = float32(s)
				}
			}
		}
	})
	return out, nil
}

// axpy computes y += a*x, unrolled by 8.
func axpy(y, x []float32, a float32) {
	x = x[:len(y)]
	i := 0
	for ; i+8 <= len(y); i += 8 {
		yy := y[i : i+8 : i+8]
		xx := x[i : i+8 : i+8]
		yy[0] += a * xx[0]
		yy[1] += a * xx[1]
		yy[2] += a * xx[2]
		yy[3] += a * xx[3]
		yy[4] += a * xx[4]
		yy[5] += a * xx[5]
		yy[6] += a * xx[6]
		yy[7] += a * xx[7]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

func exampleWeights(updates []Update) []float64 {
	w := make([]float64, len(updates))
	for i := range updates {
		w[i] = float64(updates[i].NumExamples)
	}
	return w
}

// FedAvg is McMahan et al.'s federated averaging: the example-weighted mean
// of the devices' trained weights.
type FedAvg struct{}

func (FedAvg) Name() string { return "fedavg" }
func (FedAvg) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	out, err := WeightedMean(updates, exampleWeights(updates))
	if err != nil {
		return nil, err
	}
	return out, finite("fedavg", out)
}

// FedProx (Li et al. 2020) adds a proximal term mu/2 ||w - w_global||^2 to
// each device's local objective; that term lives in the SDK's training loop
// (Settings.mu). On the hub it aggregates exactly as FedAvg.
type FedProx struct{ Mu float64 }

func (FedProx) Name() string { return "fedprox" }

// ProximalWeight is the mu the devices' training adds for a built-in
// strategy s: FedProx's Mu, 0 for every other one (they ignore Config.Mu,
// as all but fedsgd ignore LR). ok is false for a strategy that wraps no
// built-in aggregator (a module's, a caller's own), whose proximal weight
// is its caller's. The hub sends it in the round settings: it is the one
// place the devices' proximal weight comes from.
func ProximalWeight(s Strategy) (mu float64, ok bool) {
	v, ok := s.(interface{ Aggregator() Aggregator })
	if !ok {
		return 0, false
	}
	switch p := v.Aggregator().(type) {
	case FedProx:
		return p.Mu, true
	case *FedProx:
		return p.Mu, true
	}
	return 0, true
}

func (FedProx) Aggregate(r uint64, global []float32, updates []Update) ([]float32, error) {
	return FedAvg{}.Aggregate(r, global, updates)
}

// FedSGD is synchronous data-parallel SGD (the seed's MirroredSGD): every
// device computes a gradient on its data at the global weights, the hub
// averages them weighted by examples and takes one server optimizer step,
// w <- w - lr * v, v <- momentum*v + g.
type FedSGD struct {
	LR       float64
	Momentum float64
	vel      []float32
}

func (*FedSGD) Name() string   { return "fedsgd" }
func (*FedSGD) Gradient() bool { return true }
func (s *FedSGD) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	if s.LR <= 0 {
		return nil, errors.New("strategy fedsgd: lr must be > 0")
	}
	g, err := WeightedMean(updates, exampleWeights(updates))
	if err != nil {
		return nil, err
	}
	if len(s.vel) != len(global) {
		s.vel = make([]float32, len(global))
	}
	lr, mom := float32(s.LR), float32(s.Momentum)
	out := make([]float32, len(global))
	for i := range out {
		s.vel[i] = mom*s.vel[i] + g[i]
		out[i] = global[i] - lr*s.vel[i]
	}
	return out, finite("fedsgd", out)
}

func (s *FedSGD) State() []byte { return encodeVecs(s.vel) }
func (s *FedSGD) Restore(b []byte) error {
	v, err := decodeVecs(b, 1)
	if err != nil {
		return err
	}
	s.vel = v[0]
	return nil
}

// encodeVecs serialises optimizer state: count, then per vector its length
// and little-endian f32 elements.
func encodeVecs(vs ...[]float32) []byte {
	n := 4
	for _, v := range vs {
		n += 4 + 4*len(v)
	}
	b := make([]byte, 0, n)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vs)))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

func decodeVecs(b []byte, want int) ([][]float32, error) {
	if len(b) < 4 {
		return nil, errors.New("strategy: state truncated")
	}
	k := int(binary.LittleEndian.Uint32(b))
	if k != want {
		return nil, fmt.Errorf("strategy: state holds %d vectors, expected %d", k, want)
	}
	b = b[4:]
	out := make([][]float32, k)
	for i := range out {
		if len(b) < 4 {
			return nil, errors.New("strategy: state truncated")
		}
		n := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n < 0 || n > len(b)/4 {
			return nil, fmt.Errorf("strategy: state vector %d claims %d elements, %d bytes left", i, n, len(b))
		}
		v := make([]float32, n)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		b = b[4*n:]
		out[i] = v
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("strategy: %d trailing state bytes", len(b))
	}
	return out, nil
}

// parallelItems runs fn(i) for i in [0, n) on one goroutine per CPU.
func parallelItems(n int, fn func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
