package modes

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

// Client is a mode's device side: a hook.ClientTransform for the agent, and the
// hook.Handler of the device's step link (Handle). Its secrets (secagg keys
// and seeds, the HE secret key and threshold share) never leave it except
// as the protocols' encrypted shares.
type Client struct {
	mode string
	k    kind
	cfg  Config
	id   string

	mu    sync.Mutex
	sa    map[uint64]*saRound
	party *he.Party
	// heParties is the party count of party's setup.
	heParties int
	cts       map[uint64][]byte
	acc       *dp.Accountant // ldp, dpsgd: this device's own releases
	eps       float64
	// DP-SGD modes: this device's delta, last plan, calibrations, and
	// whether cfg.NoiseMultiplier is the device's own (not a placeholder).
	delta   float64
	sgd     sgdRun
	zCache  map[[4]float64]float64
	sgdOwnZ bool
	// secagg+dpsgd: each round's noise-share grant (TrainSettings) and the
	// round's learning rate, which turns the sealed gradient into the
	// update delta.
	shares map[uint64]*dpsgd.Share
	sgdLR  map[uint64]float64
}

type saRound struct {
	c        *secagg.Client
	cfg      secagg.Config
	received bool // the delivery arrived (and was answered)
}

// NewClient validates cfg for mode and returns device id's side. A device
// enforces its own policy from cfg: MinAggregate (refuses smaller secure
// aggregates), AllowInsecure, and in ldp its own Clip, NoiseMultiplier,
// TargetEpsilon and Ledger.
func NewClient(mode, id string, cfg Config) (*Client, error) {
	k, err := parse(mode)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("modes: client needs the device id")
	}
	ownZ := cfg.NoiseMultiplier > 0
	if k.noise != "local" {
		// the hub decides the central parameters; do not require them here
		cfg.NoiseMultiplier = max(cfg.NoiseMultiplier, 1)
	}
	cfg.AdaptiveClip, cfg.DistributedNoise = false, false
	if err := cfg.fill(k); err != nil {
		return nil, err
	}
	c := &Client{mode: mode, k: k, cfg: cfg, id: id, sa: map[uint64]*saRound{}, cts: map[uint64][]byte{}, sgdOwnZ: ownZ,
		shares: map[uint64]*dpsgd.Share{}, sgdLR: map[uint64]float64{}}
	if k.noise == "local" || k.noise == "sgd" {
		if c.acc, err = dp.NewAccountant(nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Epsilon is this device's own spent epsilon at Delta (ldp).
func (c *Client) Epsilon() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps
}

// prune drops per-round state older than the last few rounds.
func (c *Client) prune(round uint64) {
	for r := range c.sa {
		if r+4 < round {
			delete(c.sa, r)
		}
	}
	for r := range c.cts {
		if r+4 < round {
			delete(c.cts, r)
		}
	}
	for r := range c.shares {
		if r+4 < round {
			delete(c.shares, r)
			delete(c.sgdLR, r)
		}
	}
}

// Handle answers the hub's protocol steps (a hook.Handler).
func (c *Client) Handle(_ context.Context, round uint64, step string, data []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(round)
	switch step {
	case stepSAKeys, stepSAShare, stepSADeliver, stepSAUnmask:
		if c.k.sum != "secagg" {
			return nil, fmt.Errorf("modes: step %s in mode %s", step, c.mode)
		}
		return c.handleSA(round, step, data)
	case stepHEKeygen, stepHEPK, stepHETShares, stepHETDel, stepHECollect, stepHEDecrypt:
		if c.k.sum != "he" {
			return nil, fmt.Errorf("modes: step %s in mode %s", step, c.mode)
		}
		return c.handleHE(round, step, data)
	}
	return nil, fmt.Errorf("modes: unknown step %q", step)
}

func (c *Client) handleSA(round uint64, step string, data []byte) ([]byte, error) {
	if step == stepSAKeys {
		if c.sa[round] != nil {
			return nil, fmt.Errorf("modes: secagg round %d already set up", round)
		}
		var s saSetup
		if err := model.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("modes: secagg setup: %w", err)
		}
		if s.NumClients < c.cfg.MinAggregate {
			return nil, fmt.Errorf("modes: refusing a secure aggregate of %d devices (minimum %d)", s.NumClients, c.cfg.MinAggregate)
		}
		sc := s.config()
		cl, err := secagg.NewClient(sc, s.ID)
		if err != nil {
			return nil, err
		}
		out, err := cl.AdvertiseKeys()
		if err != nil {
			return nil, err
		}
		c.sa[round] = &saRound{c: cl, cfg: sc}
		return out, nil
	}
	s := c.sa[round]
	if s == nil {
		return nil, fmt.Errorf("modes: no secagg state for round %d", round)
	}
	switch step {
	case stepSAShare:
		return s.c.ShareKeys(data)
	case stepSADeliver:
		if s.received {
			return nil, errors.New("modes: secagg delivery twice")
		}
		// Open the boxes now and answer with the senders of those that
		// failed, so the hub can exclude them before anyone masks.
		s.received = true
		return s.c.ReceiveShares(data)
	default: // unmask
		out, err := s.c.Unmask(data)
		delete(c.sa, round)
		return out, err
	}
}

func (c *Client) handleHE(round uint64, step string, data []byte) ([]byte, error) {
	if step == stepHEKeygen {
		var k heKeygen
		if err := model.Unmarshal(data, &k); err != nil {
			return nil, fmt.Errorf("modes: he setup: %w", err)
		}
		if k.Setup.Parties < c.cfg.MinAggregate {
			return nil, fmt.Errorf("modes: refusing an he federation of %d parties (minimum %d)", k.Setup.Parties, c.cfg.MinAggregate)
		}
		k.Setup.MinAggregate = max(k.Setup.MinAggregate, c.cfg.MinAggregate)
		k.Setup.AllowInsecure = c.cfg.AllowInsecure
		p, err := he.NewParty(k.Setup, k.ID)
		if err != nil {
			return nil, err
		}
		out, err := p.KeyGenShare()
		if err != nil {
			return nil, err
		}
		c.party, c.heParties = p, k.Setup.Parties // a new setup replaces the old keys
		return out, nil
	}
	if c.party == nil {
		return nil, errNoHEParty
	}
	switch step {
	case stepHEPK:
		return nil, c.party.SetPublicKey(data)
	case stepHETShares:
		return c.party.ThresholdShares()
	case stepHETDel:
		return nil, c.party.ReceiveThresholdShares(data)
	case stepHECollect:
		ct, ok := c.cts[round]
		if !ok {
			return nil, fmt.Errorf("modes: no encrypted update for round %d", round)
		}
		delete(c.cts, round)
		return ct, nil
	default: // decrypt
		return c.party.DecryptShare(data)
	}
}

// Transform implements hook.ClientTransform: it clips, noises, masks or encrypts the
// device's update delta. What leaves in *update: dp: global + clipped
// delta; ldp: global + clipped, noised delta; secagg: the masked quantised
// vector in the f32 tensors' bytes; he: the global model unchanged (the
// ciphertexts wait for the hub's he.collect step).
func (c *Client) Transform(ctx context.Context, info hook.RoundInfo, extra map[string][]byte, global model.Model,
	update *model.Model, _ uint64) (map[string][]byte, error) {
	p, err := decodeParams(extra)
	if err != nil {
		return nil, err
	}
	if p.Mode != c.mode {
		return nil, fmt.Errorf("modes: round is %q, this device runs %q", p.Mode, c.mode)
	}
	d, err := deltaOf(&global, update)
	if err != nil {
		return nil, err
	}
	if p.Len != len(d) {
		return nil, fmt.Errorf("modes: round expects %d values, the model has %d", p.Len, len(d))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.k.noise == "sgd" && c.k.sum == "secagg" {
		// The update is the host's sealed step, never the guest's model.
		if d, err = c.sharedStep(info.Round, p, &global); err != nil {
			return nil, err
		}
	}
	if c.k.noise == "local" {
		if err := c.localNoise(info.Round, d); err != nil {
			return nil, err
		}
	}
	switch c.k.sum {
	case "":
		if c.k.noise == "central" {
			if err := c.bound(p, d, 0); err != nil {
				return nil, err
			}
		}
		m, err := applyMean(&global, f64(d), 1)
		if err != nil {
			return nil, err
		}
		*update = m
	case "secagg":
		s := c.sa[info.Round]
		if s == nil || !s.received {
			return nil, fmt.Errorf("modes: device missed round %d's secagg setup", info.Round)
		}
		if s.cfg.VectorLen != len(d) {
			return nil, fmt.Errorf("modes: secagg round has %d values, the model %d", s.cfg.VectorLen, len(d))
		}
		if p.Bound != s.cfg.Clip {
			return nil, fmt.Errorf("modes: task bound %v differs from the secagg round's clip %v", p.Bound, s.cfg.Clip)
		}
		if err := c.bound(p, d, s.cfg.Clip); err != nil {
			return nil, err
		}
		b, err := s.c.MaskInput(d, p.Excluded)
		if err != nil {
			return nil, err
		}
		var mm secagg.MaskedMsg
		if err := model.UnmarshalLoose(b, &mm); err != nil {
			return nil, err
		}
		m, err := withF32Bytes(&global, mm.Data)
		if err != nil {
			return nil, err
		}
		*update = m
	case "he":
		if c.party == nil {
			return nil, errNoHEParty
		}
		if err := c.bound(p, d, p.Bound); err != nil {
			return nil, err
		}
		ct, err := c.party.Encrypt(d)
		if err != nil {
			return nil, err
		}
		c.cts[info.Round] = ct
		m, err := global.WithVector(global.Flatten(), global.Version)
		if err != nil {
			return nil, err
		}
		*update = m
	}
	return nil, nil
}

// bound is the one place an honest device bounds its delta before it
// leaves (the local DP mode aside, which clips to the device's own C): to
// the round's L2 norm p.Clip (the DP modes' C, or NormBound; required in
// the central DP modes), then the distributed noise, then each value to
// the secure sum's per-value range limit (secagg's clip, he's bound; 0 =
// none), which secagg's quantiser would otherwise apply on its own.
func (c *Client) bound(p roundParams, d []float32, limit float64) error {
	if c.k.noise == "central" && !(p.Clip > 0) {
		return errors.New("modes: round has no clip norm")
	}
	if p.Clip > 0 {
		if _, err := dp.ClipL2(d, p.Clip); err != nil {
			return err
		}
	}
	if p.DevSigma > 0 {
		if c.k.noise != "central" || c.k.sum == "" {
			return fmt.Errorf("modes: distributed noise in mode %s", c.mode)
		}
		if err := c.cfg.Source.AddGaussian32(d, p.DevSigma); err != nil {
			return err
		}
	}
	if limit > 0 {
		clamp(d, limit)
	}
	return nil
}

// localNoise clips d to this device's own C and adds N(0, (zC)^2), after
// accounting the release against the device's own cap and ledger.
func (c *Client) localNoise(round uint64, d []float32) error {
	z, C := c.cfg.NoiseMultiplier, c.cfg.Clip
	next := c.acc.Clone()
	if err := next.ComposeSubsampledGaussian(1, z, 1); err != nil {
		return err
	}
	eps, _, err := next.Epsilon(c.cfg.Delta)
	if err != nil {
		return err
	}
	if t := c.cfg.TargetEpsilon; t > 0 && eps > t*(1+1e-9) {
		return fmt.Errorf("modes: device privacy budget: round %d would bring epsilon to %.4g, above %g; not sending", round, eps, t)
	}
	if c.cfg.Ledger != nil {
		if _, err := c.cfg.Ledger.Charge(budget.Charge{Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: 1, Steps: 1},
			Note: fmt.Sprintf("federation ldp round %d", round)}, c.cfg.Accounts...); err != nil {
			return fmt.Errorf("modes: %w", err)
		}
	}
	if _, err := dp.ClipL2(d, C); err != nil {
		return err
	}
	if err := c.cfg.Source.AddGaussian32(d, z*C); err != nil {
		return err
	}
	c.acc, c.eps = next, eps
	return nil
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// errNoHEParty is the error of the HE methods below while the device has
// no key setup of an he mode; callers match he.ErrPhase, which the
// fennec_privacy host functions answer with ESTATE.
var errNoHEParty = fmt.Errorf("%w: this device has no homomorphic-encryption party yet (the he key setup of an he or he+dp federation has not run)", he.ErrPhase)

// The methods below make the Client this device's HE party for the
// fennec_privacy host functions (hostfuncs.HEParty): a guest's he_encrypt
// encrypts under the federation's collective key, which only the device's
// mode client holds. They share the client's lock with the protocol steps
// (a new key setup replaces the party between calls, never during one).

// MaxAbs is the largest absolute value EncryptTo accepts: he.MaxAbsSum /
// parties (0 before a key setup).
func (c *Client) MaxAbs() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.party == nil {
		return 0
	}
	return float64(he.MaxAbsSum) / float64(c.heParties)
}

// EncryptedLen is he.Party.EncryptedLen of the current party.
func (c *Client) EncryptedLen(n int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.party == nil {
		return 0, errNoHEParty
	}
	return c.party.EncryptedLen(n)
}

// EncryptScratch is he.Party.EncryptScratch of the current party (0 before
// a key setup).
func (c *Client) EncryptScratch() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.party == nil {
		return 0
	}
	return c.party.EncryptScratch()
}

// EncryptTo is he.Party.EncryptTo of the current party.
func (c *Client) EncryptTo(dst []byte, update []float32) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.party == nil {
		return 0, errNoHEParty
	}
	return c.party.EncryptTo(dst, update)
}
