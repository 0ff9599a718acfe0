package modes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

// Hub is a mode's hub side (a hook.HubTransform). Bind it to the federation's step
// link and global model before the hub's first round.
type Hub struct {
	mode string
	k    kind
	cfg  Config

	mu     sync.Mutex
	x      hook.Exchanger
	global func() model.Model

	acc     *dp.Accountant
	zDelta  float64 // noise multiplier of the delta sum
	clipper *dp.QuantileClipper
	st      Status
	cur     *hubRound

	heAgg *he.Aggregator
	heIDs map[string]uint32

	quarantine map[string]uint64 // device -> last round it sits out
}

type hubRound struct {
	id         uint64
	devices    []string
	global     model.Model
	p          roundParams
	sa         *secagg.Server
	saIDs      map[string]uint32
	minContrib int
	blamed     int     // secagg culprits already reported
	outOfRange bool    // reported this round
	res        float64 // secagg quantisation step
	q          float64 // sampling rate the accountant charges (rate)
	wor        bool    // the hub drew the sample without replacement (rate)
}

// NewHub validates cfg for mode and returns its hub side.
func NewHub(mode string, cfg Config) (*Hub, error) {
	k, err := parse(mode)
	if err != nil {
		return nil, err
	}
	if err := cfg.fill(k); err != nil {
		return nil, err
	}
	h := &Hub{mode: mode, k: k, cfg: cfg, zDelta: cfg.NoiseMultiplier, quarantine: map[string]uint64{}}
	h.st = Status{Mode: mode, Clip: cfg.Clip}
	if k.noise == "sgd" {
		h.st.Clip = cfg.Clip
	} else if k.dp() {
		if h.acc, err = dp.NewAccountant(nil); err != nil {
			return nil, err
		}
		h.st.Delta, h.st.NoiseMultiplier, h.st.SamplingRate = cfg.Delta, cfg.NoiseMultiplier, cfg.SamplingRate
		if k.noise == "local" {
			h.st.SamplingRate = 1
		}
	}
	if cfg.AdaptiveClip {
		if k.sum != "" {
			return nil, errors.New("modes config: AdaptiveClip is supported in dp mode only (the unclipped bit would leave the secure sum)")
		}
		cn := cfg.CountNoise
		if cn == 0 {
			// Andrew et al.'s expected-devices/20, but at least 1/z so
			// that the delta noise grows by at most 15%.
			cn = math.Max(1/cfg.NoiseMultiplier, float64(max(1, len(cfg.Population)))*cfg.SamplingRate/20)
		}
		if h.clipper, err = dp.NewQuantileClipper(cfg.Clip, cfg.Quantile, cfg.ClipLR, cn); err != nil {
			return nil, fmt.Errorf("modes config: %w", err)
		}
		if h.zDelta, err = dp.AdaptiveNoiseMultiplier(cfg.NoiseMultiplier, cn); err != nil {
			return nil, fmt.Errorf("modes config: CountNoise: %w", err)
		}
	}
	if k.sum == "he" && len(cfg.Population) < 2 {
		return nil, errors.New("modes config: he needs Population (every device id, at least 2)")
	}
	return h, nil
}

// Mode returns the mode's name.
func (h *Hub) Mode() string { return h.mode }

// Config returns the configuration the hub side runs with: the one NewHub
// was given, validated, with its defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// Bind gives the hub side the step link to the devices (needed by secagg
// and he) and a function returning the hub's current global model (the
// hub's Global method; its version must be the round's).
func (h *Hub) Bind(x hook.Exchanger, global func() model.Model) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.x, h.global = x, global
}

// Status returns the privacy state so far.
func (h *Hub) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.st
	st.Culprits = maps.Clone(h.st.Culprits)
	st.DeviceEpsilon, st.DeviceDelta = maps.Clone(h.st.DeviceEpsilon), maps.Clone(h.st.DeviceDelta)
	if l, ok := h.x.(interface{ Bytes() (uint64, uint64) }); ok {
		o, i := l.Bytes()
		st.StepBytes = o + i
	}
	return st
}

// Accounting is what a DP mode's hub side has spent, to persist with the
// hub's round state so that a restarted hub goes on from it: the RDP
// curve of the releases so far over the accountant's orders.
type Accounting struct {
	Mode     string    `cbor:"mode"`
	Orders   []float64 `cbor:"orders"`
	RDP      []float64 `cbor:"rdp"`
	Releases int       `cbor:"releases"`
	// SamplingRate is the rate the last release was charged at.
	SamplingRate float64 `cbor:"sampling_rate"`
}

// Accounting returns the accounting so far; nil in the modes without a
// hub-side accountant (plain sums, local DP-SGD).
func (h *Hub) Accounting() *Accounting {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.acc == nil {
		return nil
	}
	return &Accounting{Mode: h.mode, Orders: h.acc.Orders(), RDP: h.acc.RDP(), Releases: h.st.Releases, SamplingRate: h.st.SamplingRate}
}

// Restore makes the accountant go on from a, read back from the hub's
// store (untrusted bytes): it must be this mode's, over the same orders,
// with finite non-negative RDP values. Before any release only.
func (h *Hub) Restore(a Accounting) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.acc == nil:
		return fmt.Errorf("modes: mode %s keeps no accountant on the hub", h.mode)
	case a.Mode != h.mode:
		return fmt.Errorf("modes: the stored accounting is mode %s's, this hub runs %s", a.Mode, h.mode)
	case !slices.Equal(a.Orders, h.acc.Orders()):
		return errors.New("modes: the stored accounting is over other RDP orders")
	case a.Releases < 0 || !(a.SamplingRate >= 0 && a.SamplingRate <= 1):
		return fmt.Errorf("modes: stored accounting: %d releases at sampling rate %v", a.Releases, a.SamplingRate)
	case h.st.Releases != 0:
		return errors.New("modes: accounting restored after a release")
	}
	for _, r := range a.RDP {
		if math.IsInf(r, 0) {
			return errors.New("modes: stored accounting: an infinite RDP value")
		}
	}
	acc, err := dp.NewAccountant(a.Orders)
	if err != nil {
		return fmt.Errorf("modes: stored accounting: %w", err)
	}
	if err := acc.AddRDP(a.RDP); err != nil {
		return fmt.Errorf("modes: stored accounting: %w", err)
	}
	eps := 0.0
	if a.Releases > 0 {
		if eps, _, err = acc.Epsilon(h.cfg.Delta); err != nil {
			return fmt.Errorf("modes: stored accounting: %w", err)
		}
	}
	h.acc = acc
	h.st.Releases, h.st.Epsilon = a.Releases, eps
	if a.Releases > 0 {
		h.st.SamplingRate = a.SamplingRate
	}
	return nil
}

func (h *Hub) clip() float64 {
	if h.clipper != nil {
		return h.clipper.Clip
	}
	return h.cfg.Clip
}

// Prepare implements hook.HubTransform: it fixes the round's parameters and runs the
// secure protocols' setup steps.
func (h *Hub) Prepare(ctx context.Context, info hook.RoundInfo) (map[string][]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = nil
	if h.global == nil || h.k.sum != "" && h.x == nil {
		return nil, fmt.Errorf("modes: %s hub side is not bound to the federation (Bind)", h.mode)
	}
	g := h.global()
	if g.Version != info.Version {
		return nil, fmt.Errorf("modes: global model is version %d, round %d starts from %d", g.Version, info.Round, info.Version)
	}
	if len(info.Devices) == 0 {
		return nil, errors.New("modes: round has no devices")
	}
	r := &hubRound{id: info.Round, devices: slices.Clone(info.Devices), global: g}
	r.q, r.wor = h.rate(info)
	sort.Strings(r.devices)
	r.p = roundParams{Mode: h.mode, Len: g.Params(), Bound: h.cfg.Bound}
	if r.p.Len == 0 {
		return nil, errors.New("modes: the model has no f32 parameters")
	}
	if h.k.noise == "sgd" {
		// The devices' updates are DP already; nothing bounds their norm
		// (the noise is unbounded), secagg clamps each value to Bound.
		r.p.SGD = h.sgdParams()
	} else if h.k.dp() {
		r.p.Clip = h.clip()
		r.p.Bound = r.p.Clip // |x_i| <= ||x||_2 <= C
	} else if h.cfg.NormBound > 0 {
		r.p.Clip = h.cfg.NormBound
		r.p.Bound = math.Min(r.p.Bound, r.p.Clip)
	}
	r.minContrib = 1
	switch h.k.sum {
	case "secagg":
		if err := h.prepareSecAgg(ctx, r); err != nil {
			return nil, err
		}
	case "he":
		if err := h.setupHE(ctx, info.Round); err != nil {
			return nil, err
		}
		r.p.Bound = math.Min(r.p.Bound, he.MaxAbsSum/float64(len(h.cfg.Population)))
		if err := h.heAgg.StartRound(r.p.Len); err != nil {
			return nil, err
		}
		r.minContrib = h.cfg.MinAggregate
	}
	if h.cfg.DistributedNoise {
		r.minContrib = max(r.minContrib, (len(r.devices)+1)/2)
		r.p.DevSigma = h.cfg.NoiseMultiplier * r.p.Clip / math.Sqrt(float64(r.minContrib))
		// Room for the noise in the secure sum's range (clamping a sample
		// beyond 8 sigma is a probability-1e-15 event).
		// (secagg sized its range in prepareSecAgg).
		if h.k.sum == "he" {
			r.p.Bound = math.Min(r.p.Clip+8*r.p.DevSigma, he.MaxAbsSum/float64(len(h.cfg.Population)))
		}
	}
	pb, err := model.Marshal(r.p)
	if err != nil {
		return nil, err
	}
	h.cur = r
	return map[string][]byte{extraParams: pb}, nil
}

// neighbors picks the SecAgg+ degree for n clients.
func (h *Hub) neighbors(n int) int {
	if h.cfg.Neighbors > 0 || n <= 32 {
		return h.cfg.Neighbors
	}
	return 2*int(math.Ceil(math.Log2(float64(n)))) + 2
}

func (h *Hub) prepareSecAgg(ctx context.Context, r *hubRound) error {
	n := len(r.devices)
	bound := r.p.Bound
	if h.cfg.DistributedNoise {
		// Room for the devices' noise (std at most zC; clamping a sample
		// beyond 8 sigma is a probability-1e-15 event).
		bound = r.p.Clip + 8*h.cfg.NoiseMultiplier*r.p.Clip
	}
	rid := make([]byte, 24)
	rand.Read(rid[:16])
	for i := 0; i < 8; i++ {
		rid[16+i] = byte(r.id >> (8 * i))
	}
	sc := secagg.Config{RoundID: rid, NumClients: n, Neighbors: h.neighbors(n), VectorLen: r.p.Len, Clip: bound}
	sc.Threshold = h.cfg.Threshold
	if sc.Threshold == 0 {
		sc.Threshold = sc.Degree()/2 + 1
	}
	srv, err := secagg.NewServer(sc)
	if err != nil {
		return fmt.Errorf("modes: secagg round of %d devices: %w", n, err)
	}
	r.sa, r.saIDs = srv, map[string]uint32{}
	reqs := map[string][]byte{}
	for i, d := range r.devices {
		r.saIDs[d] = uint32(i + 1)
		if r.id <= h.quarantine[d] {
			// A recent culprit sits out: it counts as a round-0 dropout.
			h.cfg.Logger.Warn("secagg: quarantined device sits out the round", "device", d, "round", r.id, "until", h.quarantine[d])
			continue
		}
		b, err := model.Marshal(saSetup{RoundID: rid, NumClients: n, Neighbors: sc.Neighbors, Threshold: sc.Threshold,
			VectorLen: sc.VectorLen, Clip: sc.Clip, ID: uint32(i + 1)})
		if err != nil {
			return err
		}
		reqs[d] = b
	}
	accept := func(replies map[string][]byte, add func([]byte) error) map[string]bool {
		ok := map[string]bool{}
		for d, b := range replies {
			if from, err := fromOf(b); err == nil && from == r.saIDs[d] && add(b) == nil {
				ok[d] = true
			}
		}
		return ok
	}
	replies, _ := h.x.Exchange(ctx, r.id, stepSAKeys, reqs, h.cfg.StepTimeout)
	keyed := accept(replies, srv.AddKeys)
	dir, err := srv.Directory()
	if err != nil {
		return fmt.Errorf("modes: secagg keys: %w", err)
	}
	reqs = map[string][]byte{}
	for d := range keyed {
		reqs[d] = dir
	}
	replies, _ = h.x.Exchange(ctx, r.id, stepSAShare, reqs, h.cfg.StepTimeout)
	accept(replies, srv.AddShares)
	dels, err := srv.Deliveries()
	if err != nil {
		return fmt.Errorf("modes: secagg shares: %w", err)
	}
	reqs = map[string][]byte{}
	for d, id := range r.saIDs {
		if b, ok := dels[id]; ok {
			reqs[d] = b
		}
	}
	// A device that misses its delivery cannot mask: it drops out. The
	// others answer with the senders whose boxes did not open; the hub
	// excludes the culprits (secagg.Server.Exclude) before anyone masks.
	replies, _ = h.x.Exchange(ctx, r.id, stepSADeliver, reqs, h.cfg.StepTimeout)
	for d, b := range replies {
		if from, err := fromOf(b); err != nil || from != r.saIDs[d] {
			h.cfg.Logger.Warn("secagg: complaint not from its device", "device", d, "round", r.id)
		} else if err := srv.AddComplaint(b); err != nil {
			h.cfg.Logger.Warn("secagg: complaint refused", "device", d, "round", r.id, "err", err)
		}
	}
	excl, err := srv.Exclude()
	h.blame(r, srv.Culprits())
	h.st.Excluded += len(excl)
	if err != nil {
		return fmt.Errorf("modes: secagg share boxes: %w", err)
	}
	r.p.Excluded = excl
	r.minContrib = sc.Threshold
	r.p.Bound = sc.Clip
	r.res = sc.Resolution()
	return nil
}

// blame logs the culprits the secagg server named that were not yet
// reported this round, counts them by device and quarantines them.
func (h *Hub) blame(r *hubRound, cs []secagg.Culprit) {
	byID := map[uint32]string{}
	for d, id := range r.saIDs {
		byID[id] = d
	}
	for _, c := range cs[min(r.blamed, len(cs)):] {
		d := byID[c.ID]
		if c.Disputed {
			h.cfg.Logger.Warn("secagg: device excluded from the round (disputed share box, either side may be at fault)",
				"device", d, "round", r.id, "reason", c.Reason)
			continue
		}
		if h.st.Culprits == nil {
			h.st.Culprits = map[string]int{}
		}
		h.st.Culprits[d]++
		if !h.cfg.NoQuarantine {
			h.quarantine[d] = r.id + uint64(h.cfg.Quarantine)
		}
		h.cfg.Logger.Warn("secagg: culprit", "device", d, "round", r.id, "reason", c.Reason, "times", h.st.Culprits[d],
			"quarantined_until", h.quarantine[d])
	}
	r.blamed = len(cs)
}

// setupHE runs the one-time collective key generation (again after a
// failed attempt, with a fresh CRS).
func (h *Hub) setupHE(ctx context.Context, round uint64) error {
	if h.heAgg != nil {
		return nil
	}
	pop := h.cfg.Population
	crs := make([]byte, 32)
	rand.Read(crs)
	s := he.Setup{Params: h.cfg.HEParams, Parties: len(pop), Threshold: h.cfg.HEThreshold, CRS: crs,
		MinAggregate: h.cfg.MinAggregate, AllowInsecure: h.cfg.AllowInsecure}
	agg, err := he.NewAggregator(s)
	if err != nil {
		return fmt.Errorf("modes: he setup: %w", err)
	}
	ids := map[string]uint32{}
	reqs := map[string][]byte{}
	for i, d := range pop {
		ids[d] = uint32(i + 1)
		if reqs[d], err = model.Marshal(heKeygen{Setup: s, ID: uint32(i + 1)}); err != nil {
			return err
		}
	}
	all := func(step string, reqs map[string][]byte, add func(string, []byte) error) error {
		replies, errs := h.x.Exchange(ctx, round, step, reqs, h.cfg.StepTimeout)
		for d, e := range errs {
			return fmt.Errorf("modes: he key setup needs every device; %s: %w", d, e)
		}
		for d, b := range replies {
			if err := add(d, b); err != nil {
				return fmt.Errorf("modes: he key setup: %s: %w", d, err)
			}
		}
		return nil
	}
	checked := func(add func([]byte) error) func(string, []byte) error {
		return func(d string, b []byte) error {
			if from, err := fromOf(b); err != nil || from != ids[d] {
				return fmt.Errorf("message not from party %d", ids[d])
			}
			return add(b)
		}
	}
	if err := all(stepHEKeygen, reqs, checked(agg.AddKeyShare)); err != nil {
		return err
	}
	pk, err := agg.PublicKey()
	if err != nil {
		return fmt.Errorf("modes: he key setup: %w", err)
	}
	reqs = map[string][]byte{}
	for _, d := range pop {
		reqs[d] = pk
	}
	none := func(string, []byte) error { return nil }
	if err := all(stepHEPK, reqs, none); err != nil {
		return err
	}
	if s.Threshold > 0 && s.Threshold < s.Parties {
		for _, d := range pop {
			reqs[d] = nil
		}
		if err := all(stepHETShares, reqs, checked(agg.AddThresholdShares)); err != nil {
			return err
		}
		dels, err := agg.ThresholdDeliveries()
		if err != nil {
			return fmt.Errorf("modes: he threshold setup: %w", err)
		}
		reqs = map[string][]byte{}
		for d, id := range ids {
			reqs[d] = dels[id]
		}
		if err := all(stepHETDel, reqs, none); err != nil {
			return err
		}
	}
	h.heAgg, h.heIDs = agg, ids
	return nil
}

// PreAggregate implements hook.HubTransform: it turns the round's updates into one
// aggregate update (global + mean delta, noised in the DP modes).
func (h *Hub) PreAggregate(ctx context.Context, info hook.RoundInfo, ups []strategy.ModelUpdate) ([]strategy.ModelUpdate, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.cur
	h.cur = nil
	if r == nil || r.id != info.Round {
		return nil, fmt.Errorf("modes: round %d was not prepared", info.Round)
	}
	var (
		sum      []float64
		contrib  []string
		err      error
		examples = map[string]uint64{}
	)
	for _, u := range ups {
		examples[u.Device] = u.NumExamples
	}
	if h.k.noise == "sgd" {
		h.deviceSpend(ups)
	}
	switch h.k.sum {
	case "":
		sum, contrib, err = h.sumPlain(r, ups)
	case "secagg":
		sum, contrib, err = h.sumSecAgg(ctx, r, ups)
	case "he":
		sum, contrib, err = h.sumHE(ctx, r, ups)
	}
	if err != nil {
		return nil, err
	}
	if len(contrib) < r.minContrib {
		return nil, fmt.Errorf("modes: %d contributions, the round needs %d", len(contrib), r.minContrib)
	}
	if h.k.sum != "" {
		h.checkAggregate(r, sum[:r.p.Len], len(contrib))
	}
	den := float64(len(contrib))
	if h.k.dp() && h.k.noise != "sgd" {
		if h.k.noise == "central" {
			// Fixed denominator: the number of sampled devices, known
			// before any data is seen (McMahan et al. 2018's estimator with
			// the exact sample size).
			den = float64(len(r.devices))
			if !h.cfg.DistributedNoise {
				if err := h.cfg.Source.AddGaussian(sum, h.zDelta*r.p.Clip); err != nil {
					return nil, err
				}
			}
		}
		if err := h.account(info.Round, r.q, r.wor); err != nil {
			return nil, err
		}
	}
	m, err := applyMean(&r.global, sum[:r.p.Len], den)
	if err != nil {
		return nil, err
	}
	var n uint64
	for _, d := range contrib {
		n += examples[d]
	}
	h.st.Releases++
	h.st.Contributors = len(contrib)
	h.st.Clip = h.clip()
	return []strategy.ModelUpdate{{Device: "aggregate:" + h.mode, Model: m, NumExamples: max(n, 1)}}, nil
}

// checkAggregate bounds a secure aggregate of k contributions by what k
// honest ones can reach, before any central noise: each value within
// k*Bound (secagg has clamped in the ring already), and, when devices clip
// to an L2 norm C (DP modes, NormBound), the vector within the ball of
// radius k*C (plus their distributed noise and the encoding's error). A
// malicious device's values are masked or encrypted, so this is the only
// check there is: it bounds its pull on the mean to (2k-1)/k*C in L2. Both
// are projections onto convex sets, so the sensitivity to any one honest
// device (and the DP guarantee) is unchanged.
func (h *Hub) checkAggregate(r *hubRound, sum []float64, k int) {
	kf := float64(k)
	var enc float64 // per-value error of the secure sum's encoding
	switch h.k.sum {
	case "secagg":
		enc = kf * r.res
	case "he":
		enc = 1e-2 * kf // CKKS precision, generous
	}
	lim := kf*r.p.Bound + enc
	clamped := 0
	for i, v := range sum {
		if v > lim || v < -lim {
			sum[i] = math.Max(-lim, math.Min(lim, v))
			clamped++
		}
	}
	var why []string
	if clamped > 0 {
		why = append(why, fmt.Sprintf("%d values beyond %d*%g", clamped, k, r.p.Bound))
	}
	if r.p.Clip > 0 {
		rad := kf*r.p.Clip*(1+1e-6) + enc*math.Sqrt(float64(len(sum)))
		if r.p.DevSigma > 0 {
			// chi concentration: ||N(0, k s^2 I_L)|| <= s sqrt(k) (sqrt(L) + 8) but with probability e^-32
			rad += r.p.DevSigma * math.Sqrt(kf) * (math.Sqrt(float64(len(sum))) + 8)
		}
		var n2 float64
		for _, v := range sum {
			n2 += v * v
		}
		if n := math.Sqrt(n2); n > rad {
			for i := range sum {
				sum[i] *= rad / n
			}
			why = append(why, fmt.Sprintf("L2 norm %.4g beyond %.4g", n, rad))
		}
	}
	if len(why) > 0 {
		h.outOfRange(r, strings.Join(why, "; "))
	}
}

// outOfRange counts (once per round) and logs an aggregate out of range.
func (h *Hub) outOfRange(r *hubRound, why string) {
	if r.outOfRange {
		return
	}
	r.outOfRange = true
	h.st.OutOfRange++
	h.cfg.Logger.Warn("secure aggregate out of the honest range, clamped (a device encoded values beyond its bound; not attributable)",
		"mode", h.mode, "round", r.id, "detail", why)
}

// rate is the sampling rate the accountant charges for a round, and
// whether the sample was drawn without replacement. A hub draws
// len(info.Devices) of info.Available devices uniformly without
// replacement: a device among the available ones is in the sample with
// exactly that probability (an unavailable one with probability 0, so the
// available ones are the worst case), and the release is charged with the
// bound for sampling without replacement
// (dp.RDPSampledWithoutReplacementGaussian). A round that does not say how
// many devices were available (a transform driven outside a hub) is
// charged as a Poisson sample at Config.SamplingRate. Local DP releases
// every device's update to the hub, so it is charged at 1.
func (h *Hub) rate(info hook.RoundInfo) (q float64, withoutReplacement bool) {
	switch {
	case h.k.noise == "local":
		return 1, false
	case info.Available > 0:
		return min(1, float64(len(info.Devices))/float64(info.Available)), true
	}
	return h.cfg.SamplingRate, false
}

// account composes one release at sampling rate q (without replacement:
// wor) and charges the ledger, refusing a release beyond TargetEpsilon or
// the ledger's budget.
func (h *Hub) account(round uint64, q float64, wor bool) error {
	z := h.cfg.NoiseMultiplier
	next := h.acc.Clone()
	compose := next.ComposeSubsampledGaussian
	if wor {
		compose = next.ComposeSampledWithoutReplacementGaussian
	}
	if err := compose(q, z, 1); err != nil {
		return err
	}
	eps, _, err := next.Epsilon(h.cfg.Delta)
	if err != nil {
		return err
	}
	if t := h.cfg.TargetEpsilon; t > 0 && eps > t*(1+1e-9) {
		return fmt.Errorf("modes: privacy budget: round %d would bring epsilon to %.4g, above the target %g at delta %g; release refused", round, eps, t, h.cfg.Delta)
	}
	if h.cfg.Ledger != nil && h.k.noise == "central" {
		_, err := h.cfg.Ledger.Charge(budget.Charge{Gaussian: &budget.Gaussian{NoiseMultiplier: z, SamplingRate: q, Steps: 1, WithoutReplacement: wor},
			Note: fmt.Sprintf("federation %s round %d", h.mode, round)}, h.cfg.Accounts...)
		if err != nil {
			return fmt.Errorf("modes: %w", err)
		}
	}
	h.acc = next
	h.st.Epsilon, h.st.SamplingRate = eps, q
	return nil
}

// sumPlain sums the deltas of dp/ldp updates. In central DP the hub clips
// again (float rounding of global+delta may push a norm a hair over C) and
// infers each device's unclipped bit for adaptive clipping from the norm:
// a clipped update arrives with norm C(1-2^-22), so norms below C(1-1e-3)
// are unclipped (the f32 rounding of global+delta blurs the norm by far
// less than 1e-3 relative).
func (h *Hub) sumPlain(r *hubRound, ups []strategy.ModelUpdate) ([]float64, []string, error) {
	sum := make([]float64, r.p.Len)
	var contrib []string
	unclipped := 0
	for _, u := range ups {
		d, err := deltaOf(&r.global, &u.Model)
		if err != nil {
			continue // a malformed update counts as a dropout
		}
		if h.k.noise == "central" {
			norm, err := dp.ClipL2(d, r.p.Clip)
			if err != nil {
				continue
			}
			if norm < r.p.Clip*(1-1e-3) {
				unclipped++
			}
		}
		for i, v := range d {
			sum[i] += float64(v)
		}
		contrib = append(contrib, u.Device)
	}
	if h.clipper != nil && len(contrib) > 0 {
		if _, err := h.clipper.Update(h.cfg.Source, unclipped, len(contrib)); err != nil {
			return nil, nil, err
		}
	}
	return sum, contrib, nil
}

func (h *Hub) sumSecAgg(ctx context.Context, r *hubRound, ups []strategy.ModelUpdate) ([]float64, []string, error) {
	masked := map[string]bool{}
	for _, u := range ups {
		id, ok := r.saIDs[u.Device]
		if !ok || r.global.SameLayout(&u.Model) != nil {
			continue
		}
		b, err := model.Marshal(secagg.MaskedMsg{From: id, Data: f32Bytes(&u.Model)})
		if err != nil {
			return nil, nil, err
		}
		if r.sa.AddMasked(b) == nil {
			masked[u.Device] = true
		}
	}
	req, err := r.sa.UnmaskRequest()
	if err != nil {
		return nil, nil, fmt.Errorf("modes: secagg: %w", err)
	}
	reqs := map[string][]byte{}
	for d := range masked {
		reqs[d] = req
	}
	replies, _ := h.x.Exchange(ctx, r.id, stepSAUnmask, reqs, h.cfg.StepTimeout)
	for d, b := range replies {
		if from, err := fromOf(b); err == nil && from == r.saIDs[d] {
			_ = r.sa.AddUnmask(b) // a bad share set only weakens that device's help
		}
	}
	sum, surv, err := r.sa.Result()
	h.blame(r, r.sa.Culprits())
	if err != nil {
		return nil, nil, fmt.Errorf("modes: secagg: %w", err)
	}
	if n := r.sa.OutOfRange(); n > 0 {
		h.outOfRange(r, fmt.Sprintf("%d values beyond %d contributions' range", n, len(surv)))
	}
	byID := map[uint32]string{}
	for d, id := range r.saIDs {
		byID[id] = d
	}
	contrib := make([]string, len(surv))
	for i, id := range surv {
		contrib[i] = byID[id]
	}
	return sum, contrib, nil
}

func (h *Hub) sumHE(ctx context.Context, r *hubRound, ups []strategy.ModelUpdate) ([]float64, []string, error) {
	reqs := map[string][]byte{}
	for _, u := range ups {
		if _, ok := h.heIDs[u.Device]; ok {
			reqs[u.Device] = nil
		}
	}
	replies, _ := h.x.Exchange(ctx, r.id, stepHECollect, reqs, h.cfg.StepTimeout)
	in := map[uint32]bool{}
	for d, b := range replies {
		if from, err := fromOf(b); err == nil && from == h.heIDs[d] && h.heAgg.AddCiphertext(b) == nil {
			in[from] = true
		}
	}
	// Decryptors: all N, or t preferring this round's contributors (they
	// were just online).
	pop := h.cfg.Population
	t := h.cfg.HEThreshold
	if t == 0 {
		t = len(pop)
	}
	var active []uint32
	for _, pass := range []bool{true, false} {
		for _, d := range pop {
			id := h.heIDs[d]
			if in[id] == pass && len(active) < t {
				active = append(active, id)
			}
		}
	}
	slices.Sort(active)
	req, err := h.heAgg.DecryptionRequest(active)
	if err != nil {
		return nil, nil, fmt.Errorf("modes: he: %w", err)
	}
	reqs = map[string][]byte{}
	for _, d := range pop {
		if _, ok := slices.BinarySearch(active, h.heIDs[d]); ok {
			reqs[d] = req
		}
	}
	replies, errs := h.x.Exchange(ctx, r.id, stepHEDecrypt, reqs, h.cfg.StepTimeout)
	for d, b := range replies {
		if from, err := fromOf(b); err == nil && from == h.heIDs[d] {
			if err := h.heAgg.AddDecryptionShare(b); err != nil {
				errs[d] = err
			}
		}
	}
	sum, contribIDs, err := h.heAgg.Result()
	if err != nil {
		return nil, nil, fmt.Errorf("modes: he decryption (%d of %d decryptors failed, e.g. %v): %w", len(errs), len(active), firstErr(errs), err)
	}
	byID := map[uint32]string{}
	for d, id := range h.heIDs {
		byID[id] = d
	}
	contrib := make([]string, len(contribIDs))
	for i, id := range contribIDs {
		contrib[i] = byID[id]
	}
	return sum, contrib, nil
}

func firstErr(m map[string]error) error {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", ks[0], m[ks[0]])
}

// PostAggregate implements hook.HubTransform; the modes finish in PreAggregate.
func (h *Hub) PostAggregate(_ context.Context, _ hook.RoundInfo, global model.Model) (model.Model, error) {
	return global, nil
}
