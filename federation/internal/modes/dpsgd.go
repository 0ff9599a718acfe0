package modes

import (
	"context"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
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
	if c.k.sum == "secagg" {
		// Distributed noise: one step a round, its sum revealed only in
		// the round's secure aggregate.
		if r.steps > 1 {
			return r, 0, fmt.Errorf("modes: %s runs one DP-SGD step a round (each step's sum is one secure aggregate), the task asks for %d", c.mode, r.steps)
		}
		r.steps = 1
	}
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
	var share *dpsgd.Share
	if c.k.sum == "secagg" {
		if share, err = c.grant(info.Round); err != nil {
			return err
		}
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
	if share != nil {
		lr := s.LR
		if !(lr > 0) || math.IsInf(lr, 0) {
			lr = defaultLR
		}
		c.shares[info.Round], c.sgdLR[info.Round] = share, lr
	}
	return nil
}

// defaultLR is the ABI's learning rate when a task's is zero (docs/ABI.md,
// "train").
const defaultLR = 0.01

// grant makes the noise-share grant of a secagg+dpsgd round from what
// this device verified itself: the round's secure aggregation, set up and
// delivered through its own secagg client, whose unmasking refuses to
// reveal a sum of fewer than Threshold survivors (this device among them).
// The variance divisor is that threshold less the Colluders the device
// assumes among the other survivors (at least 1: the full noise). Nothing
// the hub or the guest says sets it. Called with c.mu held.
func (c *Client) grant(round uint64) (*dpsgd.Share, error) {
	sa := c.sa[round]
	if sa == nil || !sa.received {
		return nil, fmt.Errorf("modes: %s round %d has no secure aggregation set up on this device; not training with a noise share", c.mode, round)
	}
	if c.shares[round] != nil {
		return nil, fmt.Errorf("modes: %s round %d already trained (one noise share a round)", c.mode, round)
	}
	return dpsgd.NewShare(ShareDivisor(sa.cfg.Threshold, c.cfg.Colluders))
}

// ShareDivisor is the noise variance divisor of a device in a secure
// aggregate that reveals sums of at least t contributions (the device's
// own among them) when up to colluders of the others add no noise or
// reveal theirs to the hub: t - colluders honest shares, each of variance
// (zC)^2 / (t - colluders), still sum to the full (zC)^2; at least 1.
func ShareDivisor(t, colluders int) int {
	return max(1, t-max(0, colluders))
}

// DPSGDShare implements hook.ShareClient: the round's grant (nil outside
// secagg+dpsgd, or before TrainSettings granted one).
func (c *Client) DPSGDShare(round uint64) *dpsgd.Share {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shares[round]
}

// sharedStep is a secagg+dpsgd device's update delta: -LR times the
// gradient the host sealed in the round's grant (the guest's own model is
// ignored: it never saw that gradient). The sealed step must be the one
// this device planned (noise multiplier, rate, clip, its units) over the
// global model's layers. Called with c.mu held.
func (c *Client) sharedStep(round uint64, p roundParams, global *model.Model) ([]float32, error) {
	sh := c.shares[round]
	if sh == nil {
		return nil, fmt.Errorf("modes: %s round %d has no noise-share grant (TrainSettings did not run)", c.mode, round)
	}
	v, ok := sh.Sealed()
	if !ok {
		return nil, fmt.Errorf("modes: %s round %d: the module took no DP-SGD step under the round's noise share; nothing to send", c.mode, round)
	}
	switch {
	case p.SGD == nil:
		return nil, fmt.Errorf("modes: %s round %d without DP-SGD parameters", c.mode, round)
	case v.Z != c.sgd.z || v.Q != c.sgd.q || v.Clip != p.SGD.Clip:
		return nil, fmt.Errorf("modes: the module's DP-SGD step (z %g, q %g, clip %g) is not the device's plan (z %g, q %g, clip %g)", v.Z, v.Q, v.Clip, c.sgd.z, c.sgd.q, p.SGD.Clip)
	case len(v.Sum) != p.Len || len(v.Sum) != global.Params():
		return nil, fmt.Errorf("modes: the sealed step has %d values, the model %d", len(v.Sum), global.Params())
	}
	if err := sameLayers(global, v.Layers); err != nil {
		return nil, err
	}
	lr := float32(c.sgdLR[round])
	d := make([]float32, len(v.Sum))
	for i, g := range v.Sum {
		d[i] = -lr * g
		if math.IsNaN(float64(d[i])) || math.IsInf(float64(d[i]), 0) {
			return nil, fmt.Errorf("modes: sealed gradient value %d is not finite", i)
		}
	}
	return d, nil
}

// sameLayers checks that m's f32 tensors are the (weight [in, out], bias
// [out]) pairs of the layer sizes layers (in0, out0 = in1, ..., out),
// in the order the host laid out the sealed gradient.
func sameLayers(m *model.Model, layers []int) error {
	var f32 []model.Tensor
	for _, t := range m.Tensors {
		if t.Dtype == model.F32 {
			f32 = append(f32, t)
		}
	}
	if len(layers) < 2 || len(f32) != 2*(len(layers)-1) {
		return fmt.Errorf("modes: the sealed step's layers %v do not match the model's %d f32 tensors", layers, len(f32))
	}
	for i := 0; i+1 < len(layers); i++ {
		w, b := f32[2*i].Shape, f32[2*i+1].Shape
		if len(w) != 2 || w[0] != uint64(layers[i]) || w[1] != uint64(layers[i+1]) || len(b) != 1 || b[0] != uint64(layers[i+1]) {
			return fmt.Errorf("modes: model tensors %d, %d have shapes %v, %v, the sealed step's layer %d is %dx%d", 2*i, 2*i+1, w, b, i, layers[i], layers[i+1])
		}
	}
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
