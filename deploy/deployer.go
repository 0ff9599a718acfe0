package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
	"github.com/fennec-edge/fennec/runtime"
)

// HealthEntrypoint is the optional entrypoint a deployer calls, with an
// empty CBOR map as input, before a new version takes traffic. The check
// passes when the call succeeds.
const HealthEntrypoint = "health"

// DeployerConfig configures a Deployer. Engine, Store and Trust are
// required; the rest have defaults.
type DeployerConfig struct {
	Engine *runtime.Engine
	Store  *Store
	Trust  *Trust
	// Models is the model set of the Engine's Services.NN: the models a
	// bundle carries are registered there (by digest) while its version
	// runs, and unregistered when it is retired. Nil refuses bundles that
	// carry models.
	Models *hostfuncs.ModelSet
	// Audit receives a record of every decision; nil records nothing.
	Audit *AuditLog
	// Device names this device in audit records ("who").
	Device string
	// Limits bound the bundles accepted.
	Limits Limits
	// HealthTimeout bounds the health check (default 10s).
	HealthTimeout time.Duration
	// CrashLoopFailures traps or deadlines within CrashLoopWindow make the
	// current version roll back to the previous good one (defaults 5 in 1m).
	CrashLoopFailures int
	CrashLoopWindow   time.Duration
	// OnEvent, if set, is told of each install, refusal, failed health
	// check and rollback, in order, by the goroutine that caused it (or
	// one delivering concurrently) and never under a Deployer lock: it may
	// call the Deployer, except Close.
	OnEvent func(Event)
	// Logger receives the Deployer's events (slog.Default() when nil).
	Logger *slog.Logger
}

// Event kinds.
const (
	EventStarted   = "started"   // a stored version is running after a (re)start
	EventInstalled = "installed" // a new version took over
	EventRefused   = "refused"   // a bundle was refused (see Reason)
	EventFailed    = "failed"    // a bundle failed to compile or its health check; the old version stays
	EventRollback  = "rollback"  // the current version crash-looped; the previous good one runs again
)

// Event reports something a Deployer did.
type Event struct {
	Time    time.Time
	Kind    string
	Version StoredVersion // the version concerned
	Running *StoredVersion
	Reason  string
}

// Deployer holds the module a device runs and replaces it without
// downtime. Calls go to the current version; Install verifies a bundle,
// compiles it, runs its health check and swaps it in atomically: calls in
// flight finish on the old version, which is closed once they have, and new
// calls go to the new one. A version that then crash-loops is replaced by
// the previous good one.
//
// Goroutines: the Deployer starts two kinds, the retirement of a replaced
// version (waits for its calls, then closes it) and the crash-loop
// rollback; both go through routines (a routines.Group), and Close waits
// for every one of them.
//
// Locks, in the order they may be taken (never the other way):
//
//	swapMu -> mu
//	swapMu -> the Store's, AuditLog's and Trust's own locks
//	active.fmu is taken alone (Call, no other lock held)
//	routines' lock is taken alone
//
// No lock is held while OnEvent runs: events are queued under mu and
// delivered by deliver after swapMu is released.
type Deployer struct {
	cfg DeployerConfig
	log *slog.Logger

	swapMu   sync.Mutex // serialises Start, Install, rollback and Close
	cur      atomic.Pointer[active]
	routines routines.Group
	closed   atomic.Bool

	rollingBack atomic.Bool

	mu         sync.Mutex // guards the fields below
	lastErr    string
	healthy    bool
	pending    []Event // events not yet delivered to OnEvent
	delivering bool    // a goroutine is delivering pending

	// testHookCrashLoop, when set by a test, runs first in the crash-loop
	// goroutine.
	testHookCrashLoop func()
}

// active is one compiled version. refs counts the Deployer's own reference
// (while it is current) plus calls in flight; when it drops to zero the
// version can be closed and no call can acquire it again.
type active struct {
	mod     *runtime.Module
	ver     StoredVersion
	models  [][2]string // registered models: name, digest
	set     *hostfuncs.ModelSet
	refs    atomic.Int64
	drained chan struct{}

	fmu      sync.Mutex
	failures []time.Time
}

func newActive(mod *runtime.Module, ver StoredVersion) *active {
	a := &active{mod: mod, ver: ver, drained: make(chan struct{})}
	a.refs.Store(1)
	return a
}

func (a *active) tryAcquire() bool {
	for {
		n := a.refs.Load()
		if n == 0 {
			return false
		}
		if a.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (a *active) release() {
	if a.refs.Add(-1) == 0 {
		close(a.drained)
	}
}

// failure records a failed call and reports whether the failures within
// window reached n.
func (a *active) failure(now time.Time, n int, window time.Duration) bool {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	a.failures = append(a.failures, now)
	i := 0
	for i < len(a.failures) && now.Sub(a.failures[i]) > window {
		i++
	}
	a.failures = a.failures[i:]
	return len(a.failures) >= n
}

// ErrNoModule is returned by Call before any version is installed.
var ErrNoModule = errors.New("deploy: no module installed")

// ErrClosed is returned by a Deployer or AuditLog used after Close. It
// wraps runtime.ErrClosed, so one errors.Is check covers a closed engine,
// module or deployer.
var ErrClosed = fmt.Errorf("deploy: %w", runtime.ErrClosed)

// NewDeployer returns a Deployer with nothing running; call Start to run
// what the store holds.
func NewDeployer(cfg DeployerConfig) (*Deployer, error) {
	if cfg.Engine == nil || cfg.Store == nil || cfg.Trust == nil {
		return nil, errors.New("deploy: DeployerConfig needs Engine, Store and Trust")
	}
	if err := errors.Join(
		config.Default("deploy: DeployerConfig.HealthTimeout", &cfg.HealthTimeout, 10*time.Second),
		config.Default("deploy: DeployerConfig.CrashLoopFailures", &cfg.CrashLoopFailures, 5),
		config.Default("deploy: DeployerConfig.CrashLoopWindow", &cfg.CrashLoopWindow, time.Minute),
		config.NonNegative("deploy: DeployerConfig.Limits.MaxBundle", cfg.Limits.MaxBundle),
	); err != nil {
		return nil, err
	}
	if cfg.Device == "" {
		cfg.Device = "device"
	}
	return &Deployer{cfg: cfg, log: config.Logger(cfg.Logger)}, nil
}

func (d *Deployer) audit(r Record) {
	if d.cfg.Audit == nil {
		return
	}
	if r.Who == "" {
		r.Who = d.cfg.Device
	}
	if err := d.cfg.Audit.Append(r); err != nil {
		d.log.Error("audit log write failed", "err", err)
	}
}

// event records e (the Deployer's health) and queues it for OnEvent; the
// caller calls deliver once it holds no lock.
func (d *Deployer) event(e Event) {
	e.Time = time.Now()
	if e.Running == nil {
		if a := d.cur.Load(); a != nil {
			v := a.ver
			e.Running = &v
		}
	}
	d.mu.Lock()
	switch e.Kind {
	case EventStarted, EventInstalled:
		d.healthy, d.lastErr = true, ""
	case EventRollback:
		d.healthy, d.lastErr = true, e.Reason
	default:
		d.lastErr = e.Reason
	}
	if d.cfg.OnEvent != nil {
		d.pending = append(d.pending, e)
	}
	d.mu.Unlock()
}

// deliver passes the queued events to OnEvent, in order, with no lock
// held. One goroutine delivers at a time; one that finds another
// delivering leaves its events to it (so an OnEvent that calls the
// Deployer does not recurse).
func (d *Deployer) deliver() {
	d.mu.Lock()
	if d.delivering {
		d.mu.Unlock()
		return
	}
	d.delivering = true
	for len(d.pending) > 0 {
		e := d.pending[0]
		d.pending = d.pending[1:]
		d.mu.Unlock()
		d.cfg.OnEvent(e)
		d.mu.Lock()
	}
	d.pending = nil
	d.delivering = false
	d.mu.Unlock()
}

// unlockSwap releases swapMu and then delivers the events queued under
// it.
func (d *Deployer) unlockSwap() {
	d.swapMu.Unlock()
	d.deliver()
}

func versionOf(b *Bundle) StoredVersion {
	return StoredVersion{Digest: b.Digest(), Name: b.Name(), Version: b.Version()}
}

// Current returns the version taking calls, if any.
func (d *Deployer) Current() (StoredVersion, bool) {
	a := d.cur.Load()
	if a == nil {
		return StoredVersion{}, false
	}
	return a.ver, true
}

// Stats returns the counters of the version taking calls, if any.
func (d *Deployer) Stats() (runtime.Stats, bool) {
	a := d.cur.Load()
	if a == nil {
		return runtime.Stats{}, false
	}
	return a.mod.Stats(), true
}

// Healthy reports whether the running version passed its last check, and
// the last problem seen (a refusal, a failed install or a rollback).
func (d *Deployer) Healthy() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.healthy && d.cur.Load() != nil, d.lastErr
}

// Start runs the version the store holds: the current one, or the previous
// good one if the current does not load, verify, compile or pass its health
// check. With an empty store it does nothing.
func (d *Deployer) Start(ctx context.Context) error {
	d.swapMu.Lock()
	defer d.unlockSwap()
	if d.closed.Load() {
		return ErrClosed
	}
	for attempt := 0; attempt < 2; attempt++ {
		st := d.cfg.Store.State()
		if st.Current == nil {
			return nil
		}
		b, err := d.cfg.Store.Load(st.Current.Digest)
		var a *active
		if err == nil {
			var v *Verified
			if v, err = d.cfg.Trust.Verify(b, Running{}); err == nil {
				a, err = d.prepare(ctx, v.Bundle)
			}
		}
		if err == nil {
			d.cur.Store(a)
			d.audit(Record{What: "start", Module: b.Name(), Version: b.Version(), Digest: b.Digest(), Decision: DecisionAccept})
			d.event(Event{Kind: EventStarted, Version: a.ver})
			return nil
		}
		d.audit(Record{What: "start", Module: st.Current.Name, Version: st.Current.Version, Digest: st.Current.Digest, Decision: DecisionFail, Reason: err.Error()})
		if st.Previous == nil {
			return fmt.Errorf("deploy: stored version %s %s cannot run and there is no previous version: %w", st.Current.Name, st.Current.Version, err)
		}
		if _, rerr := d.cfg.Store.Revert(); rerr != nil {
			return rerr
		}
		d.event(Event{Kind: EventRollback, Version: *st.Current, Reason: "at start: " + err.Error()})
	}
	return errors.New("deploy: no stored version can run")
}

// prepare registers b's models, compiles b and runs its health check (on
// the new models: the new version's instances load the digests its
// manifest pins, while the running version keeps its own).
func (d *Deployer) prepare(ctx context.Context, b *Bundle) (*active, error) {
	man, err := runtime.ParseManifest(b.Manifest(), b.Name()+" "+b.Version()+" manifest")
	if err != nil {
		return nil, err
	}
	a := newActive(nil, versionOf(b))
	a.set = d.cfg.Models
	if len(b.Models()) > 0 && a.set == nil {
		return nil, fmt.Errorf("deploy: %s %s carries models but this device has no model set (DeployerConfig.Models)", b.Name(), b.Version())
	}
	for _, name := range sortedKeys(b.Models()) {
		sha, err := a.set.Register(name, fmt.Sprintf("%s %s bundle model %s", b.Name(), b.Version(), name), b.Models()[name])
		if err != nil {
			a.close()
			return nil, err
		}
		a.models = append(a.models, [2]string{name, sha})
	}
	mod, err := d.cfg.Engine.Compile(ctx, b.Wasm(), man)
	if err != nil {
		a.close()
		return nil, err
	}
	a.mod = mod
	if slices.Contains(man.Entrypoints, HealthEntrypoint) {
		hctx, cancel := context.WithTimeout(ctx, d.cfg.HealthTimeout)
		_, err := mod.Call(hctx, HealthEntrypoint, []byte{0xa0})
		cancel()
		if err != nil {
			a.close()
			return nil, &HealthError{Err: err}
		}
	}
	return a, nil
}

// close closes a's module (its instances free their graphs) and then
// unregisters its models.
func (a *active) close() {
	if a.mod != nil {
		a.mod.Close(context.Background())
	}
	for _, m := range a.models {
		a.set.Unregister(m[0], m[1])
	}
	a.models = nil
}

// HealthError is a failed health check.
type HealthError struct{ Err error }

func (e *HealthError) Error() string { return "health check failed: " + e.Err.Error() }
func (e *HealthError) Unwrap() error { return e.Err }

// Install verifies raw against the trust policy and the running version,
// then compiles it, health-checks it and swaps it in. who names the
// requester for the audit log (an operator, "rollout", ...). A refused
// bundle returns a *Refused error; one that fails to compile or its health
// check returns that error with the old version still running, and is
// remembered as bad so that it is not tried again.
func (d *Deployer) Install(ctx context.Context, raw []byte, who string) (*Verified, error) {
	d.swapMu.Lock()
	defer d.unlockSwap()
	if d.closed.Load() {
		return nil, ErrClosed
	}
	var run Running
	if a := d.cur.Load(); a != nil {
		run = Running{Name: a.ver.Name, Version: a.ver.Version, Digest: a.ver.Digest}
	}
	what := "install requested by " + who
	v, err := d.cfg.Trust.VerifyBytes(raw, d.cfg.Limits, run)
	if err != nil {
		rec := DecisionRecord(d.cfg.Device, what, raw, nil, err)
		d.audit(rec)
		d.event(Event{Kind: EventRefused, Version: StoredVersion{Digest: rec.Digest, Name: rec.Module, Version: rec.Version}, Reason: err.Error()})
		return nil, err
	}
	b := v.Bundle
	ver := versionOf(b)
	if v.Same {
		r := DecisionRecord(d.cfg.Device, what, raw, v, nil)
		r.Reason = "already running"
		d.audit(r)
		return v, nil
	}
	if d.cfg.Store.IsBad(b.Digest()) {
		err := fmt.Errorf("deploy: %s %s (digest %.12s) already failed on this device; publish a new version", b.Name(), b.Version(), b.Digest())
		d.audit(Record{What: what, Module: b.Name(), Version: b.Version(), Digest: b.Digest(), Decision: DecisionRefuse, Reason: err.Error()})
		d.event(Event{Kind: EventRefused, Version: ver, Reason: err.Error()})
		return nil, err
	}
	if err := d.cfg.Store.Put(b); err != nil {
		return nil, err
	}
	a, err := d.prepare(ctx, b)
	if err != nil {
		if ctx.Err() == nil {
			d.cfg.Store.MarkBad(b.Digest())
		}
		reason := err.Error()
		if run.Digest != "" {
			reason += fmt.Sprintf("; still running %s %s", run.Name, run.Version)
		}
		d.audit(Record{What: what, Module: b.Name(), Version: b.Version(), Digest: b.Digest(), Signers: v.Signers(), Models: b.modelsDesc(), Decision: DecisionFail, Reason: reason})
		d.event(Event{Kind: EventFailed, Version: ver, Reason: reason})
		return nil, err
	}
	if err := d.cfg.Store.Commit(b); err != nil {
		a.close()
		return nil, err
	}
	d.swap(a)
	rec := DecisionRecord(d.cfg.Device, what, raw, v, nil)
	d.audit(rec)
	d.event(Event{Kind: EventInstalled, Version: ver, Reason: rec.Reason})
	return v, nil
}

// swap makes a current and retires the previous version in the background.
func (d *Deployer) swap(a *active) {
	old := d.cur.Swap(a)
	if old != nil {
		d.retire(old)
	}
}

// retire releases the Deployer's reference to old and closes it once its
// calls in flight have finished, in the background. It runs even after
// Close began (Close itself retires the last version), so it starts its
// goroutine on the group that Close closes only after retiring.
func (d *Deployer) retire(old *active) {
	work := func() {
		old.release()
		<-old.drained
		old.close()
	}
	if !d.routines.Go(work) {
		// Not reached: every retire happens under swapMu before Close
		// closes the group. Do the work here rather than leak the version.
		work()
	}
}

// Call runs an entrypoint of the current version. A call that starts
// before a swap finishes on the old version.
func (d *Deployer) Call(ctx context.Context, entry string, in []byte) ([]byte, error) {
	var a *active
	for {
		a = d.cur.Load()
		if a == nil {
			return nil, ErrNoModule
		}
		if a.tryAcquire() {
			break
		}
	}
	out, err := a.mod.Call(ctx, entry, in)
	a.release()
	if err != nil && (errors.Is(err, runtime.ErrTrap) || errors.Is(err, runtime.ErrDeadline) && ctx.Err() == nil) {
		if a.failure(time.Now(), d.cfg.CrashLoopFailures, d.cfg.CrashLoopWindow) {
			d.crashLoop(a)
		}
	}
	return out, err
}

// crashLoop rolls back from a, once, in the background.
func (d *Deployer) crashLoop(a *active) {
	if !d.rollingBack.CompareAndSwap(false, true) {
		return
	}
	if !d.routines.Go(func() {
		defer d.rollingBack.Store(false)
		if d.testHookCrashLoop != nil {
			d.testHookCrashLoop()
		}
		if err := d.rollback(context.Background(), a, fmt.Sprintf("crash loop: %d failed calls within %v", d.cfg.CrashLoopFailures, d.cfg.CrashLoopWindow)); err != nil {
			d.log.Error("rollback failed", "module", a.ver.Name, "version", a.ver.Version, "err", err)
		}
	}) {
		d.rollingBack.Store(false) // closed: nothing to roll back
	}
}

// Rollback replaces the current version by the previous good one now and
// marks the current one bad.
func (d *Deployer) Rollback(ctx context.Context, reason string) error {
	a := d.cur.Load()
	if a == nil {
		return ErrNoModule
	}
	return d.rollback(ctx, a, reason)
}

func (d *Deployer) rollback(ctx context.Context, from *active, reason string) error {
	d.swapMu.Lock()
	defer d.unlockSwap()
	if d.closed.Load() || d.cur.Load() != from {
		return nil // already replaced
	}
	st := d.cfg.Store.State()
	if st.Previous == nil || st.Current == nil || st.Current.Digest != from.ver.Digest {
		err := fmt.Errorf("deploy: %s; no previous version of %s to roll back to", reason, from.ver.Name)
		d.audit(Record{What: "rollback", Module: from.ver.Name, Version: from.ver.Version, Digest: from.ver.Digest, Decision: DecisionFail, Reason: err.Error()})
		d.event(Event{Kind: EventFailed, Version: from.ver, Reason: err.Error()})
		return err
	}
	prev := *st.Previous
	b, err := d.cfg.Store.Load(prev.Digest)
	var a *active
	if err == nil {
		// The previous version was accepted when it was installed; check
		// its signature again (trust may have changed) but not its order.
		if _, err = d.cfg.Trust.Verify(b, Running{}); err == nil {
			a, err = d.prepare(ctx, b)
		}
	}
	if err != nil {
		err = fmt.Errorf("deploy: %s; previous version %s %s cannot run: %w", reason, prev.Name, prev.Version, err)
		d.audit(Record{What: "rollback", Module: prev.Name, Version: prev.Version, Digest: prev.Digest, Decision: DecisionFail, Reason: err.Error()})
		d.event(Event{Kind: EventFailed, Version: from.ver, Reason: err.Error()})
		return err
	}
	if _, err := d.cfg.Store.Revert(); err != nil {
		a.close()
		return err
	}
	d.swap(a)
	msg := fmt.Sprintf("%s %s: %s; rolled back to %s", from.ver.Name, from.ver.Version, reason, prev.Version)
	d.audit(Record{What: "rollback", Module: prev.Name, Version: prev.Version, Digest: prev.Digest, Decision: DecisionRollback, Reason: msg})
	d.event(Event{Kind: EventRollback, Version: from.ver, Reason: msg})
	return nil
}

// Close stops taking calls, waits for calls in flight and closes every
// version. When it returns, no goroutine the Deployer started is running
// (a crash-loop rollback under way finds the Deployer closed and stops).
// It must not be called from OnEvent.
func (d *Deployer) Close(ctx context.Context) error {
	d.swapMu.Lock()
	if !d.closed.Swap(true) {
		if a := d.cur.Swap(nil); a != nil {
			d.retire(a)
		}
		d.routines.Close()
	}
	// Wait without swapMu: a rollback goroutine may be waiting for it.
	d.swapMu.Unlock()
	d.routines.Wait()
	return nil
}
