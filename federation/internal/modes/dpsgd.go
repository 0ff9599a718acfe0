package modes

import (
	"context"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// Bounds on the DP-SGD parameters a task may carry.
const (
	maxLocalSteps = 1 << 20
	maxRounds     = 1 << 20
)

// sgdParams are the DP-SGD modes' task parameters: the hub's plan, which
// each device turns into its own settings (TrainSettings).
type sgdParams struct {
	Clip            float64 `cbor:"clip"`              // per-patient C
	PatientsPerStep float64 `cbor:"patients_per_step"` // expected sample size
	Steps           int     `cbor:"steps"`             // per round; 0 = ceil(1/q)
	Epsilon         float64 `cbor:"epsilon"`           // per-device target after Rounds
	Delta           float64 `cbor:"delta"`
	Rounds          int     `cbor:"rounds"`
	NoiseMultiplier float64 `cbor:"noise_multiplier,omitempty"` // fixed z (0: calibrate)
}

func (s *sgdParams) check() error {
	pos := func(x float64) bool { return x > 0 && !math.IsInf(x, 0) }
	switch {
	case !pos(s.Clip) || !pos(s.PatientsPerStep) || !(s.Delta > 0 && s.Delta < 1):
		return fmt.Errorf("modes: DP-SGD parameters out of range (clip %v, patients per step %v, delta %v)", s.Clip, s.PatientsPerStep, s.Delta)
	case s.Steps < 0 || s.Steps > maxLocalSteps || s.Rounds < 0 || s.Rounds > maxRounds:
		return fmt.Errorf("modes: DP-SGD steps %d or rounds %d out of range", s.Steps, s.Rounds)
	case !(s.Epsilon >= 0) || math.IsInf(s.Epsilon, 0) || !(s.NoiseMultiplier >= 0) || math.IsInf(s.NoiseMultiplier, 0):
		return fmt.Errorf("modes: DP-SGD epsilon %v or noise multiplier %v out of range", s.Epsilon, s.NoiseMultiplier)
	case s.NoiseMultiplier == 0 && (s.Epsilon == 0 || s.Rounds == 0):
		return fmt.Errorf("modes: DP-SGD task has neither a noise multiplier nor an epsilon and rounds to calibrate one")
	}
	return nil
}

func (h *Hub) sgdParams() *sgdParams {
	return &sgdParams{Clip: h.cfg.Clip, PatientsPerStep: h.cfg.PatientsPerStep, Steps: h.cfg.LocalSteps,
		Epsilon: h.cfg.TargetEpsilon, Delta: h.cfg.Delta, Rounds: h.cfg.Rounds, NoiseMultiplier: h.cfg.NoiseMultiplier}
}

// Metrics a DP-SGD device sends beside its update: its own privacy spend,
// which depends on its parameters and patient count only, not on the data.
const (
	MetricEpsilon = "dp_epsilon"
	MetricDelta   = "dp_delta"
)

// deviceSpend records the epsilon each device reports; Epsilon and Delta
// become the largest.
func (h *Hub) deviceSpend(ups []strategy.ModelUpdate) {
	for _, u := range ups {
		eps, okE := u.Metrics[MetricEpsilon]
		delta, okD := u.Metrics[MetricDelta]
		if !okE || !okD || !(eps >= 0) || math.IsInf(eps, 0) || !(delta > 0 && delta < 1) {
			continue
		}
		if h.st.DeviceEpsilon == nil {
			h.st.DeviceEpsilon, h.st.DeviceDelta = map[string]float64{}, map[string]float64{}
		}
		h.st.DeviceEpsilon[u.Device], h.st.DeviceDelta[u.Device] = eps, delta
		h.st.Epsilon, h.st.Delta = max(h.st.Epsilon, eps), max(h.st.Delta, delta)
	}
}

// sgdRun is a device's DP-SGD plan for one round.
type sgdRun struct {
	q     float64
	z     float64
	steps int
	delta float64
}

// plan turns the hub's parameters into this device's: q from its patient
// count, its own delta <= 1/patients, z calibrated (or the task's, or the
// device's own when set) for Rounds rounds of Steps steps, and its own cap
// (the smaller of the device's TargetEpsilon and the task's).
func (c *Client) plan(s *sgdParams, units int) (sgdRun, float64, error) {
	if units < 1 {
		return sgdRun{}, 0, fmt.Errorf("modes: DP-SGD needs at least one patient on the device")
	}
	r := sgdRun{q: min(1, s.PatientsPerStep/float64(units)), steps: s.Steps}
	if r.steps == 0 {
		r.steps = int(math.Ceil(1 / r.q))
	}
	r.delta = min(s.Delta, 1/float64(units))
	if c.cfg.Delta > 0 {
		r.delta = min(r.delta, c.cfg.Delta)
	}
	target := s.Epsilon
	if c.cfg.TargetEpsilon > 0 && (target == 0 || c.cfg.TargetEpsilon < target) {
		target = c.cfg.TargetEpsilon
	}
	switch {
	case c.cfg.NoiseMultiplier > 0 && c.sgdOwnZ:
		r.z = c.cfg.NoiseMultiplier
	case s.NoiseMultiplier > 0:
		r.z = s.NoiseMultiplier
	default:
		key := [4]float64{r.q, float64(r.steps * s.Rounds), target, r.delta}
		if z, ok := c.zCache[key]; ok {
			r.z = z
			break
		}
		z, err := dp.NoiseMultiplier(target, r.delta, r.q, r.steps*s.Rounds, nil)
		if err != nil {
			return r, 0, fmt.Errorf("modes: calibrating the DP-SGD noise (q %.4g, %d steps, epsilon %g, delta %g): %w", r.q, r.steps*s.Rounds, target, r.delta, err)
		}
		if c.zCache == nil {
			c.zCache = map[[4]float64]float64{}
		}
		c.zCache[key], r.z = z, z
	}
	return r, target, nil
}

// TrainSettings implements hook.TrainClient: in the DP-SGD modes it sets
// the round's DP-SGD settings from the task's plan and the device's
// patient count, after checking that the round fits the device's epsilon
// cap (the device's ledger, charged by the host when the module trains,
// is the enforcement; this is the device's own bookkeeping and refusal).
func (c *Client) TrainSettings(_ context.Context, info hook.RoundInfo, extra map[string][]byte, s *wire.Settings, units int) error {
	s.DP = nil
	if c.k.noise != "sgd" {
		return nil
	}
	p, err := decodeParams(extra)
	if err != nil {
		return err
	}
	if p.Mode != c.mode || p.SGD == nil {
		return fmt.Errorf("modes: round %q without DP-SGD parameters, this device runs %q", p.Mode, c.mode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, target, err := c.plan(p.SGD, units)
	if err != nil {
		return err
	}
	next := c.acc.Clone()
	if err := next.ComposeSubsampledGaussian(r.q, r.z, r.steps); err != nil {
		return err
	}
	eps, _, err := next.Epsilon(r.delta)
	if err != nil {
		return err
	}
	if target > 0 && eps > target*(1+1e-9) {
		return fmt.Errorf("modes: device privacy budget: round %d would bring this device's epsilon to %.4g, above %g at delta %.3g (%d patients); not training", info.Round, eps, target, r.delta, units)
	}
	s.DP = &wire.DPSettings{Clip: p.SGD.Clip, NoiseMultiplier: r.z, SamplingRate: r.q, Steps: uint64(r.steps)}
	c.acc, c.eps, c.delta, c.sgd = next, eps, r.delta, r
	return nil
}

// ReleaseMetrics implements hook.TrainClient: the DP-SGD modes report the
// device's spent epsilon and its delta with the update (nil otherwise).
func (c *Client) ReleaseMetrics() map[string]float64 {
	if c.k.noise != "sgd" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return map[string]float64{MetricEpsilon: c.eps, MetricDelta: c.delta}
}

// Delta is this device's delta (DP-SGD modes: min(Delta, 1/patients);
// ldp: Config.Delta).
func (c *Client) Delta() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.k.noise == "sgd" {
		return c.delta
	}
	return c.cfg.Delta
}

// Plan reports the DP-SGD settings of the device's last round: sampling
// rate, noise multiplier and steps (zero before one).
func (c *Client) Plan() (q, z float64, steps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sgd.q, c.sgd.z, c.sgd.steps
}
