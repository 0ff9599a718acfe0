package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
)

func init() { register(newPrivacyCmd) }

func newPrivacyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "privacy",
		Short: "Differential-privacy accounting, noise calibration and privacy budgets",
	}
	c.AddCommand(newPrivacyEpsilonCmd(), newPrivacySigmaCmd(), newPrivacyBudgetCmd())
	return c
}

func privUsage(err error) error { return &exitError{exitUsage, err} }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonFloat renders +Inf (no privacy) as a string in JSON output.
func jsonFloat(x float64) any {
	if math.IsInf(x, 1) {
		return "inf"
	}
	return x
}

func newPrivacyEpsilonCmd() *cobra.Command {
	var q, sigma, delta float64
	var steps int
	var orders []float64
	var classic, asJSON bool
	c := &cobra.Command{
		Use:   "epsilon --q Q --sigma S --steps T --delta D",
		Short: "Epsilon of T steps of the Poisson-subsampled Gaussian mechanism (RDP accountant)",
		Long: `Computes epsilon for T releases of the Gaussian mechanism with noise
multiplier S (noise standard deviation / L2 sensitivity), each on a Poisson
sample of rate Q, at the given delta, with the Renyi-DP accountant. The
default conversion is the improved one of Balle et al. 2020 (as in TF
Privacy / dp_accounting and Opacus); --classic uses Mironov 2017's.
Default orders: 1.1..10.9 by 0.1, 12..63, 128, 256, 512, 1024.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []string{"q", "sigma", "steps", "delta"} {
				if !cmd.Flags().Changed(f) {
					return privUsage(fmt.Errorf("--%s is required", f))
				}
			}
			acc, err := dp.NewAccountant(orders)
			if err != nil {
				return privUsage(err)
			}
			if err := acc.ComposeSubsampledGaussian(q, sigma, steps); err != nil {
				return privUsage(err)
			}
			conv := "improved"
			eps, order, err := acc.Epsilon(delta)
			if classic {
				conv = "classic"
				eps, order, err = acc.EpsilonClassic(delta)
			}
			if err != nil {
				return privUsage(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, map[string]any{
					"epsilon": jsonFloat(eps), "order": order, "delta": delta, "q": q,
					"sigma": sigma, "steps": steps, "conversion": conv,
				})
			}
			fmt.Fprintf(out, "epsilon %.6g (delta %g, optimal order %g, %s conversion)\n", eps, delta, order, conv)
			os := acc.Orders()
			if order == os[0] || order == os[len(os)-1] {
				fmt.Fprintln(out, "note: the optimal order is at the end of the grid; more orders may give a smaller epsilon")
			}
			return nil
		},
	}
	f := c.Flags()
	f.Float64Var(&q, "q", 0, "sampling rate per step, in [0,1] (1 = no subsampling)")
	f.Float64Var(&sigma, "sigma", 0, "noise multiplier: noise standard deviation / L2 sensitivity")
	f.IntVar(&steps, "steps", 0, "number of steps (rounds)")
	f.Float64Var(&delta, "delta", 0, "target delta")
	f.Float64SliceVar(&orders, "orders", nil, "RDP orders, comma separated (default: see above)")
	f.BoolVar(&classic, "classic", false, "use the classic RDP -> (epsilon, delta) conversion")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newPrivacySigmaCmd() *cobra.Command {
	var eps, delta, sens, q float64
	var steps int
	var classic, asJSON bool
	c := &cobra.Command{
		Use:   "sigma --epsilon E --delta D --sensitivity L2",
		Short: "Gaussian noise scale for (epsilon, delta)-DP",
		Long: `Prints the standard deviation of Gaussian noise that makes one release
with the given L2 sensitivity (epsilon, delta)-DP, by the analytic Gaussian
mechanism (Balle & Wang 2018), or by the classic bound with --classic (only
for epsilon < 1). With --steps (and --q, default 1) it instead finds, with
the RDP accountant, the smallest noise multiplier for which that many
subsampled releases are together (epsilon, delta)-DP, and prints it times
the sensitivity.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []string{"epsilon", "delta", "sensitivity"} {
				if !cmd.Flags().Changed(f) {
					return privUsage(fmt.Errorf("--%s is required", f))
				}
			}
			var sigma float64
			var err error
			method := "analytic Gaussian (Balle & Wang 2018)"
			switch {
			case steps > 0:
				if classic {
					return privUsage(errors.New("--classic cannot be combined with --steps"))
				}
				if !(sens > 0) {
					return privUsage(fmt.Errorf("sensitivity must be positive, got %v", sens))
				}
				var z float64
				z, err = dp.NoiseMultiplier(eps, delta, q, steps, nil)
				sigma = z * sens
				method = fmt.Sprintf("RDP accountant, %d steps at sampling rate %g (noise multiplier %.6g)", steps, q, z)
			case classic:
				sigma, err = dp.GaussianSigmaClassic(eps, delta, sens)
				method = "classic bound (Dwork & Roth Thm A.1)"
			default:
				sigma, err = dp.GaussianSigma(eps, delta, sens)
			}
			if err != nil {
				return privUsage(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				m := map[string]any{"sigma": sigma, "epsilon": eps, "delta": delta, "sensitivity": sens, "method": method}
				if steps > 0 {
					m["noise_multiplier"] = sigma / sens
					m["steps"] = steps
					m["q"] = q
				}
				return writeJSON(out, m)
			}
			fmt.Fprintf(out, "sigma %.6g (epsilon %g, delta %g, L2 sensitivity %g; %s)\n", sigma, eps, delta, sens, method)
			return nil
		},
	}
	f := c.Flags()
	f.Float64Var(&eps, "epsilon", 0, "target epsilon")
	f.Float64Var(&delta, "delta", 0, "target delta")
	f.Float64Var(&sens, "sensitivity", 0, "L2 sensitivity (clip norm)")
	f.IntVar(&steps, "steps", 0, "number of releases to account for with RDP (0 = one release)")
	f.Float64Var(&q, "q", 1, "sampling rate per step (with --steps)")
	f.BoolVar(&classic, "classic", false, "use the classic bound sens*sqrt(2 ln(1.25/delta))/epsilon")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newPrivacyBudgetCmd() *cobra.Command {
	var ledger string
	c := &cobra.Command{
		Use:   "budget",
		Short: "Show or set privacy budgets in a ledger file",
	}
	c.PersistentFlags().StringVar(&ledger, "ledger", "privacy-ledger.json", "ledger file")
	var asJSON bool
	show := &cobra.Command{
		Use:   "show [ACCOUNT...]",
		Short: "Show accounts' budgets and spending",
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := budget.Open(ledger)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			defer l.Close()
			if len(args) == 0 {
				args = l.Accounts()
			}
			var sts []budget.Status
			for _, a := range args {
				st, err := l.Remaining(a)
				if err != nil {
					return &exitError{exitBadInput, err}
				}
				sts = append(sts, st)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), sts)
			}
			for _, st := range sts {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: epsilon %.6g of %g spent (%.6g left), delta %.3g of %.3g, %d releases\n",
					st.Account, st.SpentEpsilon, st.Budget.Epsilon, st.RemainingEpsilon, st.SpentDelta, st.Budget.Delta, st.Releases)
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var b budget.Budget
	set := &cobra.Command{
		Use:   "set ACCOUNT --epsilon E --delta D",
		Short: "Set an account's total budget (e.g. dataset/wdbc)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := budget.Open(ledger)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			defer l.Close()
			if err := l.SetBudget(args[0], b); err != nil {
				return privUsage(err)
			}
			st, _ := l.Remaining(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "%s: budget epsilon %g delta %g (spent %.6g)\n", st.Account, b.Epsilon, b.Delta, st.SpentEpsilon)
			return nil
		},
	}
	set.Flags().Float64Var(&b.Epsilon, "epsilon", 0, "total epsilon")
	set.Flags().Float64Var(&b.Delta, "delta", 0, "total delta")
	c.AddCommand(show, set)
	return c
}
