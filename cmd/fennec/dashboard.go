package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
)

// hubDash is the dashboard of `fennec hub --http` and `fennec demo
// --http`: nil until started, so the hub's OnRound may call it first.
type hubDash struct {
	d atomic.Pointer[dashboard.Dashboard]
}

func (h *hubDash) round(r federation.RoundReport, p *federation.ModeStatus, metrics map[string]float64) {
	if d := h.d.Load(); d != nil {
		d.Round(r, p, metrics)
	}
}

func (h *hubDash) start(addr string, hub dashboard.Hub, acc *deploy.Access, t dashboard.Training, log *slog.Logger) (string, error) {
	d, err := dashboard.New(dashboard.Config{Addr: addr, Hub: hub, Access: acc, Training: t, Logger: log})
	if err != nil {
		return "", err
	}
	if err := d.Start(); err != nil {
		return "", err
	}
	h.d.Store(d)
	return d.URL(), nil
}

func (h *hubDash) shutdown() {
	if d := h.d.Load(); d != nil {
		d.Shutdown()
	}
}

// strategyParams lists the strategy parameters that were set.
func strategyParams(sc federation.StrategyConfig) map[string]float64 {
	m := map[string]float64{}
	for k, v := range map[string]float64{"mu": sc.Mu, "server_lr": sc.LR, "momentum": sc.Momentum, "eta": sc.Eta,
		"trim": sc.TrimBeta, "byzantine": float64(sc.F), "keep": float64(sc.M)} {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

// stoppable is a hub that the dashboard outlives (the demo's): once
// stopped it has no devices and no connection.
type stoppable struct {
	h       *federation.Hub
	stopped atomic.Bool
}

func (s *stoppable) Seen() map[string]time.Time {
	if s.stopped.Load() {
		return nil
	}
	return s.h.Seen()
}

func (s *stoppable) Conn() *nats.Conn {
	if s.stopped.Load() {
		return nil
	}
	return s.h.Conn()
}

func newHubTokenCmd() *cobra.Command {
	var seed, operator, name string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print an operator's dashboard sign-in token, signed with the operator's nkey",
		Long: `token signs a sign-in token for the dashboard of 'fennec hub --http ADDR --access FILE'
with the operator's nkey seed (the one 'fennec deploy nkey' wrote and the access file
lists): the hub verifies it with the operator's public nkey, so it stores no password.
The token names the operator and the federation (--name) and expires after --ttl (at
most 24h); paste it on the dashboard's sign-in form or send it as
'Authorization: Bearer TOKEN'. The operator's role in the access file (role = "deploy",
the default, or "read") decides whether the dashboard lets them deploy.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if seed == "" || operator == "" {
				return &exitError{exitUsage, errors.New("--nkey and --operator are required")}
			}
			tok, err := dashboard.SignToken(seed, operator, dashboard.Audience(name), ttl, time.Now())
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			fmt.Fprintln(c.OutOrStdout(), tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&seed, "nkey", "", "the operator's nkey seed file (private, mode 0600)")
	f.StringVar(&operator, "operator", "", "the operator's name in the access file")
	f.StringVar(&name, "name", "default", "federation name of the hub")
	f.DurationVar(&ttl, "ttl", 8*time.Hour, "token lifetime (at most 24h)")
	return cmd
}
