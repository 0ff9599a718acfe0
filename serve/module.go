package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/runtime"
)

// Stats are a module's runtime counters (pool sizes, instantiations).
type Stats = runtime.Stats

// Module is what a binding calls: a compiled module (Compiled) or the
// version a device's deployer runs (Deployed).
type Module interface {
	// Call runs an entrypoint on the module's warm pool, under the
	// manifest's deadline (runtime.Module.Call).
	Call(ctx context.Context, entry string, in []byte) ([]byte, error)
	// Ready reports whether the module is loaded and passed its health
	// check, and why not.
	Ready() (bool, string)
}

// Compiled serves a compiled module. Its health check, if it has one, is
// run by CheckHealth; until then (and after a failed one) it is not ready.
type Compiled struct {
	Mod *runtime.Module
	// IdleTimeout, when positive, closes the module's warm instances once
	// it has had no call for that long (Module.Drain, run by the Server
	// that serves it); the next call starts an instance again. Zero keeps
	// them.
	IdleTimeout time.Duration

	healthy bool
	reason  string
	last    atomic.Int64 // unix nanoseconds of the last call's end
}

// NewCompiled wraps mod and runs its health check (the "health"
// entrypoint with an empty CBOR map, as deploy.Deployer does), bounded by
// timeout. A module without one is ready at once.
func NewCompiled(ctx context.Context, mod *runtime.Module, timeout time.Duration) *Compiled {
	c := &Compiled{Mod: mod, healthy: true}
	defer c.touch()
	if slices.Contains(mod.Manifest().Entrypoints, deploy.HealthEntrypoint) {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := mod.Call(hctx, deploy.HealthEntrypoint, []byte{0xa0}); err != nil {
			c.healthy, c.reason = false, "health check failed: "+err.Error()
		}
	}
	return c
}

// Call implements Module.
func (c *Compiled) Call(ctx context.Context, entry string, in []byte) ([]byte, error) {
	if !c.healthy {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, c.reason)
	}
	defer c.touch()
	return c.Mod.Call(ctx, entry, in)
}

func (c *Compiled) touch() { c.last.Store(time.Now().UnixNano()) }

// trimIdle closes the warm instances when the module has had no call for
// IdleTimeout, and reports whether it closed any. A call that starts
// meanwhile takes an instance first or starts its own: either way it runs.
func (c *Compiled) trimIdle(now time.Time) bool {
	if c.IdleTimeout <= 0 || now.UnixNano()-c.last.Load() < int64(c.IdleTimeout) || c.Mod.Stats().Idle == 0 {
		return false
	}
	c.Mod.Drain()
	return true
}

// idleTimeout is what the Server's trimmer checks for (0: never).
func (c *Compiled) idleTimeout() time.Duration { return c.IdleTimeout }

// Ready implements Module.
func (c *Compiled) Ready() (bool, string) { return c.healthy, c.reason }

// Stats returns the module's runtime counters.
func (c *Compiled) Stats() (Stats, bool) { return c.Mod.Stats(), true }

// Deployed serves the version a deploy.Deployer runs: calls go to the
// current version, and during a swap finish on the one they started on.
// With Name set, only a version of that module takes calls (a rollout of
// another module makes it unavailable, not silently rebound).
type Deployed struct {
	D    *deploy.Deployer
	Name string
}

func (d Deployed) check() error {
	if d.Name == "" {
		return nil
	}
	if v, ok := d.D.Current(); ok && v.Name != d.Name {
		return fmt.Errorf("%w: the device runs %s %s, not %s", ErrUnavailable, v.Name, v.Version, d.Name)
	}
	return nil
}

// Call implements Module.
func (d Deployed) Call(ctx context.Context, entry string, in []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	out, err := d.D.Call(ctx, entry, in)
	if errors.Is(err, deploy.ErrNoModule) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return out, err
}

// Ready implements Module.
func (d Deployed) Ready() (bool, string) {
	if err := d.check(); err != nil {
		return false, err.Error()
	}
	ok, why := d.D.Healthy()
	if !ok && why == "" {
		why = "no version installed yet"
	}
	return ok, why
}

// Stats returns the current version's runtime counters.
func (d Deployed) Stats() (Stats, bool) { return d.D.Stats() }

// ErrUnavailable: the module is not loaded, not healthy, or closed.
var ErrUnavailable = errors.New("module unavailable")

// outcome classifies a call's error.
func outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, runtime.ErrTrap):
		return OutcomeTrap
	case errors.Is(err, runtime.ErrDeadline):
		return OutcomeDeadline
	case errors.Is(err, runtime.ErrGuest):
		return OutcomeGuestError
	case errors.Is(err, runtime.ErrNoEntrypoint):
		return OutcomeNoEntry
	case errors.Is(err, ErrUnavailable), errors.Is(err, runtime.ErrClosed), errors.Is(err, deploy.ErrClosed):
		return OutcomeUnavailable
	}
	return OutcomeError
}
