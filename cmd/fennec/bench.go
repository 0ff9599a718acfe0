package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/internal/benchsuite" // registers the cases
	"github.com/spf13/cobra"
)

func init() {
	register(newBenchCmd)
	benchsuite.NewEngine = newEngine // benchmarks run on the backend this binary selects
}

// benchReport is what `fennec bench --json` prints.
type benchReport struct {
	Version  string         `json:"version"`
	Platform string         `json:"platform"`
	CPUs     int            `json:"cpus"`
	Started  time.Time      `json:"started"`
	Results  []bench.Result `json:"results"`
	Errors   []string       `json:"errors,omitempty"`
}

func newBenchCmd() *cobra.Command {
	var (
		asJSON  bool
		quick   bool
		minTime time.Duration
		list    bool
	)
	c := &cobra.Command{
		Use:   "bench [GROUP...]",
		Short: "Measure this device: host calls, tensor kernels, federation, privacy",
		Long: `Bench runs the benchmarks of the named groups (all when none) on this device and
prints a table of medians, with ratios against the reference measured in the
same run where the benchmark has one. --json prints machine-readable results.
Groups: ` + strings.Join(bench.Groups(), ", ") + `.`,
		RunE: func(c *cobra.Command, args []string) error {
			if list {
				w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, bc := range bench.Cases() {
					fmt.Fprintf(w, "%s\t%s\t%s\n", bc.Group, bc.Name, bc.Doc)
				}
				return w.Flush()
			}
			known := bench.Groups()
			for _, g := range args {
				if !contains(known, g) {
					return &exitError{exitUsage, fmt.Errorf("unknown benchmark group %q (groups: %s)", g, strings.Join(known, ", "))}
				}
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt)
			defer stop()
			o := bench.Options{Quick: quick, MinTime: minTime}
			rep := benchReport{Version: currentVersion().Version, Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
				CPUs: goruntime.NumCPU(), Started: time.Now().UTC()}
			for _, bc := range bench.Cases(args...) {
				if !asJSON {
					fmt.Fprintf(c.ErrOrStderr(), "running %s/%s ...\n", bc.Group, bc.Name)
				}
				res, err := bc.Run(ctx, o)
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return err
					}
					rep.Errors = append(rep.Errors, fmt.Sprintf("%s/%s: %v", bc.Group, bc.Name, err))
					continue
				}
				rep.Results = append(rep.Results, res...)
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printBench(c, rep)
			}
			if len(rep.Errors) > 0 {
				return &exitError{exitFailure, fmt.Errorf("%d benchmark(s) failed", len(rep.Errors))}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&quick, "quick", false, "short runs with fewer sizes (a smoke test, not a measurement)")
	c.Flags().DurationVar(&minTime, "min-time", 0, "duration of each timing sample (default 200ms; 20ms with --quick)")
	c.Flags().BoolVar(&list, "list", false, "list the benchmarks and exit")
	return c
}

func printBench(c *cobra.Command, rep benchReport) {
	w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "fennec %s on %s, %d CPUs\n\n", rep.Version, rep.Platform, rep.CPUs)
	fmt.Fprintln(w, "GROUP\tBENCHMARK\tVALUE\tREFERENCE\tRATIO\tTARGET\tNOTE")
	for _, r := range rep.Results {
		ref, ratio := "", ""
		if r.Ref != "" {
			ref = fmt.Sprintf("%s %s", fmtVal(r.RefValue), r.Ref)
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", r.Group, r.Name, fmtVal(r.Value), r.Unit, ref, ratio, r.Target, r.Note)
	}
	w.Flush()
	for _, e := range rep.Errors {
		fmt.Fprintln(c.ErrOrStderr(), "error:", e)
	}
}

func fmtVal(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
