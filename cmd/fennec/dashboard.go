package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/federation"
)

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
