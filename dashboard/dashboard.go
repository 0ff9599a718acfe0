// Package dashboard serves a fleet's dashboard: a JSON API under
// /api/v1/ and a web UI (embedded static assets) over a federation hub's
// own state, its devices' heartbeats, the rollout buckets in its
// JetStream (desired states, device reports) and the rounds it reports.
// It keeps no database: what it shows is read from the hub, or derived in
// memory from what it has watched since it started (docs/DASHBOARD.md).
//
// The dashboard is off unless asked for (`fennec hub --http ADDR`), binds
// to loopback unless an access file signs operators in, and is read-only
// unless the signed-in operator's role allows deploys.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Hub is what the dashboard reads from a federation hub; a
// *federation.Hub is one. Rounds come through Dashboard.Round, called
// from the hub's OnRound.
type Hub interface {
	// Seen returns the devices available now with the time each was last
	// heard from (join or heartbeat).
	Seen() map[string]time.Time
	// Conn is a connection with rights to read the rollout buckets (and,
	// for deploys, to write them); nil when the hub serves no rollouts.
	Conn() *nats.Conn
}

// HistoryHub is a Hub that keeps its rounds' reports (a *federation.Hub
// does, in its JetStream KV bucket): the dashboard starts its training
// view with the last Config.HistoryRounds of them, so that a restarted
// hub's curves go on from where they were.
type HistoryHub interface {
	Hub
	// History returns the reports of the last n rounds, oldest first
	// (federation.Hub.History).
	History(ctx context.Context, n int) ([]federation.RoundReport, error)
}

// Training describes the federation the hub runs, for the training view.
type Training struct {
	Name     string             // federation name
	Strategy string             // strategy name
	Params   map[string]float64 // its parameters (mu, server lr, trim...)
	Mode     string             // privacy mode ("" plain)
	// TargetEpsilon and Delta: the DP budget the rounds spend (0: none).
	TargetEpsilon float64
	Delta         float64
	Rounds        int // planned rounds (0: until stopped)
}

// Config configures a Dashboard. The zero value of each field is its
// default.
type Config struct {
	// Addr is the listen address ("127.0.0.1:8080"; port 0 picks one). An
	// address that is not loopback needs Access: a dashboard open to the
	// network signs its operators in.
	Addr string
	// Hub is the hub whose state is shown (required).
	Hub Hub
	// Access signs operators in with tokens of their nkeys (SignToken)
	// and gives their roles; nil serves read-only to anyone who reaches
	// Addr (loopback only).
	Access   *deploy.Access
	Training Training
	// Interval is how often device liveness is re-checked (1s): a device
	// goes offline on the page within its heartbeat plus Interval.
	Interval time.Duration
	// StatusTTL: a device whose rollout report is older than this, and
	// which the hub has not heard from, is offline (15s: three of the
	// rollout agent's 5s heartbeats).
	StatusTTL time.Duration
	// MaxDevices bounds the devices tracked (10000); MaxRounds the rounds
	// kept (10000, the oldest dropped); MaxStreams the live streams
	// served at once (64).
	MaxDevices int
	MaxRounds  int
	MaxStreams int
	// HistoryRounds is how many of the hub's stored rounds the training
	// view starts with, when Hub is a HistoryHub (1000, at most
	// MaxRounds); rounds passed to Round meanwhile are merged with them
	// by round id, each shown once.
	HistoryRounds int
	Logger        *slog.Logger
	// Now is the clock (time.Now); tests set it.
	Now func() time.Time
}

func (c *Config) fill() error {
	if c.Hub == nil {
		return errors.New("dashboard config: Hub is required")
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("dashboard config: Addr %q: %w", c.Addr, err)
	}
	if !loopbackHost(host) && c.Access == nil {
		return fmt.Errorf("dashboard config: Addr %q is not loopback: a dashboard reachable from the network needs an access file (--access) to sign operators in", c.Addr)
	}
	if c.Training.Name == "" {
		c.Training.Name = "default"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Logger = config.Logger(c.Logger)
	return errors.Join(
		config.Default("dashboard config: Interval", &c.Interval, time.Second),
		config.Default("dashboard config: StatusTTL", &c.StatusTTL, 15*time.Second),
		config.Default("dashboard config: MaxDevices", &c.MaxDevices, 10000),
		config.Default("dashboard config: MaxRounds", &c.MaxRounds, 10000),
		config.Default("dashboard config: MaxStreams", &c.MaxStreams, 64),
		config.Default("dashboard config: HistoryRounds", &c.HistoryRounds, 1000),
	)
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Dashboard is an embeddable HTTP server: New, Start, Ready, Shutdown.
type Dashboard struct {
	cfg Config
	log *slog.Logger
	st  *state
	bc  *broadcaster

	srv         *http.Server
	readTimeout time.Duration // of a request (30s; tests shorten it)
	ln          net.Listener
	loopback    bool
	g           routines.Group
	ctx         context.Context
	cancel      context.CancelFunc
	ready       chan struct{}
	once        sync.Once
}

// New validates cfg and returns a dashboard that is not started.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("component", "dashboard"), ready: make(chan struct{}), readTimeout: 30 * time.Second}
	d.bc = newBroadcaster(cfg.MaxStreams)
	d.st = newState(&d.cfg, d.bc)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Start listens on Addr, starts watching the hub and serves.
func (d *Dashboard) Start() error {
	ln, err := net.Listen("tcp", d.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen %s: %w", d.cfg.Addr, err)
	}
	d.ln = ln
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	d.loopback = loopbackHost(host)
	d.srv = &http.Server{
		Handler:           d.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       d.readTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return d.ctx },
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	d.g.Go(func() {
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("serve", "err", err)
		}
	})
	d.g.Go(func() { d.st.run(d.ctx, &d.g) })
	close(d.ready)
	return nil
}

// Ready waits until the dashboard listens or timeout passes.
func (d *Dashboard) Ready(timeout time.Duration) bool {
	select {
	case <-d.ready:
		return true
	case <-time.After(timeout):
		return false
	}
}

// URL is the dashboard's address ("" before Start).
func (d *Dashboard) URL() string {
	if d.ln == nil {
		return ""
	}
	return "http://" + d.ln.Addr().String() + "/"
}

// Round records a finished round of the hub (call it from the hub's
// OnRound; it may be called before Start). privacy is the privacy mode's
// state after it (nil: the report's own, RoundReport.Privacy); metrics
// adds held-out metrics the hub's caller computed (such as "auroc"; the
// report's EvalMetrics otherwise). A round that is also in the hub's
// history is shown once, as passed here.
func (d *Dashboard) Round(r federation.RoundReport, privacy *federation.ModeStatus, metrics map[string]float64) {
	d.st.round(r, privacy, metrics)
}

// Shutdown ends the live streams, stops the server and the watchers, and
// waits for every goroutine the dashboard started.
func (d *Dashboard) Shutdown() {
	d.once.Do(func() {
		d.cancel() // ends the streams and the watchers
		if d.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.srv.Shutdown(ctx); err != nil {
				_ = d.srv.Close()
			}
			cancel()
		}
		d.g.Close()
		d.g.Wait()
	})
}
