// Package hubdash wires the web dashboard (package dashboard) to a hub the
// way `fennec hub --http` and `fennec demo --http` both do: a dashboard that
// may start after the hub's first round, and a hub view the dashboard can
// outlive.
package hubdash

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
)

// Late is a dashboard that is nil until started, so that a hub's OnRound
// may call Round before. Rounds before Start come from the hub's stored
// history (dashboard.HistoryHub): Start registers the dashboard for live
// rounds before it reads the history, so a round that ends meanwhile is
// in one or the other (or both, and shown once). The zero value is ready
// to use; its methods are safe for concurrent use.
type Late struct {
	d atomic.Pointer[dashboard.Dashboard]
}

// Round passes a round's report to the dashboard, once started.
func (l *Late) Round(r federation.RoundReport, p *federation.ModeStatus, metrics map[string]float64) {
	if d := l.d.Load(); d != nil {
		d.Round(r, p, metrics)
	}
}

// Start starts a dashboard of hub at addr and returns its URL.
func (l *Late) Start(addr string, hub dashboard.Hub, acc *deploy.Access, t dashboard.Training, log *slog.Logger) (string, error) {
	d, err := dashboard.New(dashboard.Config{Addr: addr, Hub: hub, Access: acc, Training: t, Logger: log})
	if err != nil {
		return "", err
	}
	l.d.Store(d) // live rounds from now on, before the history is read
	if err := d.Start(); err != nil {
		l.d.Store(nil)
		return "", err
	}
	return d.URL(), nil
}

// URL is the started dashboard's URL ("" before Start).
func (l *Late) URL() string {
	if d := l.d.Load(); d != nil {
		return d.URL()
	}
	return ""
}

// Shutdown stops the dashboard, if started.
func (l *Late) Shutdown() {
	if d := l.d.Load(); d != nil {
		d.Shutdown()
	}
}

// Stoppable is a hub that a dashboard outlives (the demo's): after Stop it
// has no devices and no connection. Rollouts, when set, is the connection
// to the fleet's rollout server, which outlives the hub: the dashboard's
// rollouts come from it.
type Stoppable struct {
	H        *federation.Hub
	Rollouts *nats.Conn
	stopped  atomic.Bool
}

// Stop marks the hub stopped.
func (s *Stoppable) Stop() { s.stopped.Store(true) }

// Seen is the hub's Seen until Stop, then nothing.
func (s *Stoppable) Seen() map[string]time.Time {
	if s.stopped.Load() {
		return nil
	}
	return s.H.Seen()
}

// History is the hub's stored round history until Stop, then nothing.
func (s *Stoppable) History(ctx context.Context, n int) ([]federation.RoundReport, error) {
	if s.stopped.Load() {
		return nil, nil
	}
	return s.H.History(ctx, n)
}

// Conn is Rollouts when set; otherwise the hub's Conn until Stop, then nil.
func (s *Stoppable) Conn() *nats.Conn {
	if s.Rollouts != nil {
		return s.Rollouts
	}
	if s.stopped.Load() {
		return nil
	}
	return s.H.Conn()
}
