// Package budget is the host's privacy-budget ledger: every account (one per
// dataset, and optionally one per module and dataset) has a total
// (epsilon, delta) budget, every differentially private release is charged
// to its accounts before its result is returned, a release that would
// overspend any of them is refused with ErrBudget, and every charge is
// written to disk atomically (internal/atomicfile) before Charge returns, so
// a restart or a crash never resets spending.
//
// Composition. Charges come in two kinds and compose as follows:
//
//   - approximate-DP charges (epsilon_i, delta_i), e.g. a Laplace release,
//     add up (basic composition);
//   - Gaussian charges (noise multiplier, sampling rate, steps) are composed
//     in Renyi DP by an accountant (privacy/dp) and converted once, at the
//     delta left after the approximate-DP charges.
//
// The spent epsilon of an account is sum(epsilon_i) + eps_RDP(Delta -
// sum(delta_i)) and its spent delta is at most Delta: by basic composition of
// the two parts the account's releases together are (spent epsilon,
// Delta)-DP. A Gaussian charge therefore spends far less than its
// stand-alone (epsilon, delta) would under basic composition.
//
// One process at a time may open a ledger file (an advisory lock on
// path+".lock" enforces it on Unix).
package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// Errors. Callers map ErrBudget to the ABI code EBUDGET.
var (
	// ErrBudget: the release would overspend an account; nothing was charged.
	ErrBudget = errors.New("privacy budget exceeded")
	// ErrNoAccount: the account has no budget set; releases are refused.
	ErrNoAccount = errors.New("no privacy budget set")
	// ErrInvalid: a malformed charge, budget or ledger file.
	ErrInvalid = errors.New("invalid privacy ledger input")
)

// Budget is a total (epsilon, delta) for one account.
type Budget struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

func (b Budget) validate() error {
	if !(b.Epsilon >= 0) || math.IsInf(b.Epsilon, 0) {
		return fmt.Errorf("%w: budget epsilon must be finite and >= 0, got %v", ErrInvalid, b.Epsilon)
	}
	if !(b.Delta >= 0 && b.Delta < 1) {
		return fmt.Errorf("%w: budget delta must be in [0,1), got %v", ErrInvalid, b.Delta)
	}
	return nil
}

// Gaussian describes Steps releases of the Gaussian mechanism with noise
// standard deviation NoiseMultiplier times the L2 sensitivity, each on a
// Poisson sample of rate SamplingRate (1 = the whole dataset), or, with
// WithoutReplacement, on a sample of fixed size SamplingRate*n drawn
// uniformly without replacement (dp.RDPSampledWithoutReplacementGaussian).
type Gaussian struct {
	NoiseMultiplier    float64 `json:"noise_multiplier"`
	SamplingRate       float64 `json:"sampling_rate"`
	Steps              int     `json:"steps"`
	WithoutReplacement bool    `json:"without_replacement,omitempty"`
}

// Charge is the privacy cost of one release: an approximate-DP part
// (Epsilon, Delta), a Gaussian part, or both.
type Charge struct {
	Epsilon  float64   `json:"epsilon,omitempty"`
	Delta    float64   `json:"delta,omitempty"`
	Gaussian *Gaussian `json:"gaussian,omitempty"`
	// Note is recorded with the charge count for audit (e.g. "round 7").
	Note string `json:"note,omitempty"`
}

// Status is an account's budget and spending.
type Status struct {
	Account          string  `json:"account"`
	Budget           Budget  `json:"budget"`
	SpentEpsilon     float64 `json:"spent_epsilon"`
	SpentDelta       float64 `json:"spent_delta"`
	RemainingEpsilon float64 `json:"remaining_epsilon"`
	RemainingDelta   float64 `json:"remaining_delta"`
	Releases         int64   `json:"releases"`
	LastNote         string  `json:"last_note,omitempty"`
}

type account struct {
	Budget     Budget    `json:"budget"`
	BasicEps   float64   `json:"basic_epsilon"`
	BasicDelta float64   `json:"basic_delta"`
	RDP        []float64 `json:"rdp"`
	Releases   int64     `json:"releases"`
	LastNote   string    `json:"last_note,omitempty"`
	Updated    time.Time `json:"updated"`
}

type state struct {
	Version  int                 `json:"version"`
	Orders   []float64           `json:"orders"`
	Accounts map[string]*account `json:"accounts"`
}

const fileVersion = 1

// maxAccountName bounds account names.
const maxAccountName = 256

// Ledger is a persistent set of accounts. It is safe for concurrent use.
type Ledger struct {
	mu     sync.Mutex
	path   string
	st     state
	unlock func() error
}

// Open loads the ledger at path, creating an empty one if the file does not
// exist. A file that cannot be parsed or fails validation is an error (never
// silently reset: that would reset spending).
func Open(path string) (*Ledger, error) {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("budget: %s: %w", path, err)
	}
	l := &Ledger{path: path, unlock: unlock}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.st = state{Version: fileVersion, Orders: slices.Clone(dp.DefaultOrders), Accounts: map[string]*account{}}
	case err != nil:
		unlock()
		return nil, fmt.Errorf("budget: %w", err)
	default:
		st, err := parseState(data)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("budget: %s: %w", path, err)
		}
		l.st = st
	}
	return l, nil
}

// Close releases the ledger's lock. Every charge is already on disk.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlock == nil {
		return nil
	}
	err := l.unlock()
	l.unlock = nil
	return err
}

// parseState decodes and validates a ledger file.
func parseState(data []byte) (state, error) {
	var st state
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return state{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if st.Version != fileVersion {
		return state{}, fmt.Errorf("%w: field version: unsupported ledger version %d", ErrInvalid, st.Version)
	}
	if len(st.Orders) == 0 || len(st.Orders) > 10000 {
		return state{}, fmt.Errorf("%w: field orders: %d orders", ErrInvalid, len(st.Orders))
	}
	for i, o := range st.Orders {
		if !(o > 1) || math.IsInf(o, 0) {
			return state{}, fmt.Errorf("%w: field orders[%d]: %v is not a finite order > 1", ErrInvalid, i, o)
		}
	}
	if st.Accounts == nil {
		st.Accounts = map[string]*account{}
	}
	for name, a := range st.Accounts {
		if err := checkName(name); err != nil {
			return state{}, err
		}
		if a == nil {
			return state{}, fmt.Errorf("%w: accounts[%q]: null", ErrInvalid, name)
		}
		if err := a.Budget.validate(); err != nil {
			return state{}, fmt.Errorf("accounts[%q].budget: %w", name, err)
		}
		if !(a.BasicEps >= 0) || math.IsInf(a.BasicEps, 0) || !(a.BasicDelta >= 0 && a.BasicDelta <= 1) || a.Releases < 0 {
			return state{}, fmt.Errorf("%w: accounts[%q]: negative or non-finite spending", ErrInvalid, name)
		}
		if len(a.RDP) != len(st.Orders) {
			return state{}, fmt.Errorf("%w: accounts[%q].rdp: %d values for %d orders", ErrInvalid, name, len(a.RDP), len(st.Orders))
		}
		for _, r := range a.RDP {
			if !(r >= 0) || math.IsInf(r, 0) {
				return state{}, fmt.Errorf("%w: accounts[%q].rdp: value %v", ErrInvalid, name, r)
			}
		}
	}
	return st, nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxAccountName {
		return fmt.Errorf("%w: account name must be 1..%d bytes, got %d", ErrInvalid, maxAccountName, len(name))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: account name %q has a control character", ErrInvalid, name)
		}
	}
	return nil
}

// save writes the state atomically.
func (l *Ledger) save() error {
	data, err := json.MarshalIndent(&l.st, "", " ")
	if err != nil {
		return fmt.Errorf("budget: encode: %w", err)
	}
	return atomicfile.WriteFile(l.path, append(data, '\n'), 0o600)
}

// SetBudget sets (or changes) an account's total budget. Lowering it below
// what is already spent is allowed: further releases are then refused.
func (l *Ledger) SetBudget(name string, b Budget) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := b.validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.st.Accounts[name]
	var old Budget
	if ok {
		old = a.Budget
		a.Budget = b
	} else {
		a = &account{Budget: b, RDP: make([]float64, len(l.st.Orders)), Updated: time.Now().UTC()}
		l.st.Accounts[name] = a
	}
	if err := l.save(); err != nil {
		if ok {
			a.Budget = old
		} else {
			delete(l.st.Accounts, name)
		}
		return err
	}
	return nil
}

// spent computes an account's spending.
func (l *Ledger) spent(a *account) (eps, delta float64) {
	eps, delta = a.BasicEps, a.BasicDelta
	if !slices.ContainsFunc(a.RDP, func(r float64) bool { return r > 0 }) {
		return eps, delta
	}
	rest := a.Budget.Delta - a.BasicDelta
	if !(rest > 0) {
		return math.Inf(1), a.Budget.Delta
	}
	e, _, err := dp.EpsilonFromRDP(l.st.Orders, a.RDP, rest, false)
	if err != nil {
		return math.Inf(1), a.Budget.Delta
	}
	return eps + e, a.Budget.Delta
}

func (l *Ledger) status(name string, a *account) Status {
	e, d := l.spent(a)
	return Status{
		Account: name, Budget: a.Budget, SpentEpsilon: e, SpentDelta: d,
		RemainingEpsilon: math.Max(0, a.Budget.Epsilon-e), RemainingDelta: math.Max(0, a.Budget.Delta-d),
		Releases: a.Releases, LastNote: a.LastNote,
	}
}

// Remaining returns an account's status.
func (l *Ledger) Remaining(name string) (Status, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.st.Accounts[name]
	if !ok {
		return Status{}, fmt.Errorf("budget: account %q: %w", name, ErrNoAccount)
	}
	return l.status(name, a), nil
}

// Accounts lists the account names in order.
func (l *Ledger) Accounts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.st.Accounts))
	for n := range l.st.Accounts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c Charge) validate() error {
	if !(c.Epsilon >= 0) || math.IsInf(c.Epsilon, 0) {
		return fmt.Errorf("%w: charge epsilon must be finite and >= 0, got %v", ErrInvalid, c.Epsilon)
	}
	if !(c.Delta >= 0 && c.Delta < 1) {
		return fmt.Errorf("%w: charge delta must be in [0,1), got %v", ErrInvalid, c.Delta)
	}
	if len(c.Note) > 1024 {
		return fmt.Errorf("%w: charge note longer than 1024 bytes", ErrInvalid)
	}
	if g := c.Gaussian; g != nil {
		if !(g.NoiseMultiplier > 0) || math.IsInf(g.NoiseMultiplier, 0) {
			return fmt.Errorf("%w: noise multiplier must be positive and finite, got %v", ErrInvalid, g.NoiseMultiplier)
		}
		if !(g.SamplingRate > 0 && g.SamplingRate <= 1) {
			return fmt.Errorf("%w: sampling rate must be in (0,1], got %v", ErrInvalid, g.SamplingRate)
		}
		if g.Steps < 1 || g.Steps > 1<<40 {
			return fmt.Errorf("%w: steps must be in 1..2^40, got %d", ErrInvalid, g.Steps)
		}
	}
	return nil
}

// Charge charges c to every named account, all or none: if any account
// would overspend its epsilon or delta, or has no budget, nothing is charged
// and the error (wrapping ErrBudget or ErrNoAccount) names the account and
// the amounts. On success the new spending is on disk before Charge returns,
// and the accounts' new statuses are returned in the order named.
func (l *Ledger) Charge(c Charge, accounts ...string) ([]Status, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if len(accounts) == 0 {
		return nil, fmt.Errorf("%w: a charge needs at least one account", ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var add []float64
	if g := c.Gaussian; g != nil {
		curve := dp.SubsampledGaussianRDP
		if g.WithoutReplacement {
			curve = dp.SampledWithoutReplacementGaussianRDP
		}
		r, err := curve(l.st.Orders, g.SamplingRate, g.NoiseMultiplier)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		for i := range r {
			r[i] *= float64(g.Steps)
			if math.IsInf(r[i], 0) || math.IsNaN(r[i]) {
				return nil, fmt.Errorf("%w: Gaussian charge has unbounded RDP (noise multiplier %v too small)", ErrBudget, g.NoiseMultiplier)
			}
		}
		add = r
	}
	// Compute every account's new state before changing any.
	type pending struct {
		name string
		a    *account
		next account
	}
	var ps []pending
	seen := map[string]bool{}
	for _, name := range accounts {
		if seen[name] {
			continue
		}
		seen[name] = true
		a, ok := l.st.Accounts[name]
		if !ok {
			return nil, fmt.Errorf("budget: account %q: %w; release refused", name, ErrNoAccount)
		}
		next := *a
		next.RDP = slices.Clone(a.RDP)
		next.BasicEps += c.Epsilon
		next.BasicDelta += c.Delta
		for i := range add {
			next.RDP[i] += add[i]
		}
		next.Releases++
		next.LastNote = c.Note
		next.Updated = time.Now().UTC()
		before := l.status(name, a)
		e, _ := l.spent(&next)
		const slack = 1e-12 // float rounding when a budget is spent exactly
		if next.BasicDelta > a.Budget.Delta*(1+slack) || add != nil && next.BasicDelta >= a.Budget.Delta {
			return nil, fmt.Errorf("budget: account %q: %w: release needs delta %g, %g of %g left; release refused",
				name, ErrBudget, c.Delta, before.RemainingDelta, a.Budget.Delta)
		}
		if e > a.Budget.Epsilon*(1+slack)+slack {
			return nil, fmt.Errorf("budget: account %q: %w: release would bring epsilon to %.6g of %g (%.6g left); release refused",
				name, ErrBudget, e, a.Budget.Epsilon, before.RemainingEpsilon)
		}
		ps = append(ps, pending{name, a, next})
	}
	olds := make([]account, len(ps))
	for i, p := range ps {
		olds[i] = *p.a
		*p.a = p.next
	}
	if err := l.save(); err != nil {
		for i, p := range ps {
			*p.a = olds[i]
		}
		return nil, fmt.Errorf("budget: charge not recorded, release refused: %w", err)
	}
	out := make([]Status, len(ps))
	for i, p := range ps {
		out[i] = l.status(p.name, p.a)
	}
	return out, nil
}

// DatasetAccount and ModuleAccount name the accounts the host charges for
// a release by module on dataset: one per dataset, one per (module, dataset).
func DatasetAccount(dataset string) string { return "dataset/" + dataset }

// ModuleAccount names the per-module account on a dataset.
func ModuleAccount(module, dataset string) string { return "module/" + module + "/dataset/" + dataset }
