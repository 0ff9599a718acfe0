package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/spf13/cobra"
)

func init() {
	register(newGuestsCmd)
	register(newVitalsCmd)
}

func newGuestsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "guests",
		Short: "Build the example guest modules (or write the prebuilt ones this binary carries)",
	}
	var out string
	build := &cobra.Command{
		Use:   "build [NAME...]",
		Short: "Build example modules (all when none) into --out as NAME.wasm with NAME.toml",
		Long: `Build compiles the example guest modules from the fennec source tree: Go guests
with the Go toolchain (GOOS=wasip1, -buildmode=c-shared), the C guest with clang
for wasm32-wasi. Away from a source tree (an installed binary, $FENNEC_SRC unset),
or without the toolchain a guest needs, it writes the prebuilt copy embedded in
this binary instead, checked against its recorded sha256, and says so; rebuilding
those needs a checkout. Names: ` + strings.Join(guests.Names(), ", ") + `.`,
		RunE: func(c *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				names = guests.Names()
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
			}
			var why []string
			for _, n := range names {
				g, err := guests.Get(c.Context(), n)
				if err != nil && len(args) == 0 && !guests.HasPrebuilt(n) && errors.Is(err, guests.ErrNoSource) {
					fmt.Fprintf(c.ErrOrStderr(), "%s: skipped: this binary has no prebuilt copy of it and %v\n", n, err)
					continue
				}
				if err != nil {
					return &exitError{exitFailure, fmt.Errorf("%s: %w", n, err)}
				}
				sum := sha256.Sum256(g.Wasm)
				line := fmt.Sprintf("%-18s v%-6s %7d KiB  sha256 %x  %s", n, g.Manifest.Version, len(g.Wasm)>>10, sum[:6], g.Origin)
				if g.Why != "" && !slices.Contains(why, g.Why) {
					why = append(why, g.Why)
				}
				if out != "" {
					wasmPath := filepath.Join(out, n+".wasm")
					if err := atomicfile.WriteFile(wasmPath, g.Wasm, 0o644); err != nil {
						return err
					}
					if err := atomicfile.WriteFile(filepath.Join(out, n+".toml"), g.ManifestTOML, 0o644); err != nil {
						return err
					}
					line += "  -> " + wasmPath
				}
				fmt.Fprintln(c.OutOrStdout(), line)
			}
			for _, w := range why {
				fmt.Fprintf(c.ErrOrStderr(), "prebuilt (embedded in this binary) because %s\n", w)
			}
			return nil
		},
	}
	build.Flags().StringVarP(&out, "out", "o", "", "directory to write NAME.wasm and NAME.toml to (default: only build and cache)")
	c.AddCommand(build)
	return c
}

func newVitalsCmd() *cobra.Command {
	var (
		cfg    vitals.Config
		device int
		out    string
		pub    publishOpts
	)
	c := &cobra.Command{
		Use:   "vitals",
		Short: "Write synthetic patient vitals as CSV (for fennec run and the demo)",
		Long: `Vitals writes realistic synthetic adult vital signs (heart rate, blood pressure,
SpO2, respiratory rate, temperature, glucose) and the nurse's observations NEWS2
needs (supplemental oxygen, consciousness on the ACVPU scale) with noise, missing
readings, artefacts and deteriorating patients (sepsis-like, respiratory failure,
hypovolaemia), one row per reading, with a label that says whether the patient
deteriorates within the horizon. Distributions, courses and their sources are
documented in docs/VITALS.md.

With --publish mqtt://HOST:PORT/TOPIC it is a bedside-monitor simulator
instead: it publishes the readings over MQTT 3.1.1 at QoS 1, one JSON
message {"records": [reading]} each (the shape vitals-preprocess and a
device's MQTT binding take; the label is left out), at --rate per second,
for --count messages or --duration (cycling through the readings).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case c.Flags().Changed("device") && device < 0:
				return &exitError{exitUsage, fmt.Errorf("--device %d: a device shard is numbered from 0", device)}
			case device >= 0:
				cfg = vitals.Shard(cfg, device)
			}
			recs, err := vitals.Generate(cfg)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if pub.url != "" {
				if pub.count == 0 && pub.duration == 0 {
					pub.count = len(recs)
				}
				ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return publishVitals(ctx, pub, recs, c.ErrOrStderr())
			}
			w := c.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := vitals.WriteCSV(w, recs); err != nil {
				return err
			}
			if out != "" && out != "-" {
				patients := map[string]bool{}
				for _, r := range recs {
					patients[r.Patient] = true
				}
				fmt.Fprintf(c.ErrOrStderr(), "wrote %d readings of %d patients to %s\n", len(recs), len(patients), out)
			}
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Patients, "patients", 0, "number of patients (default 40)")
	c.Flags().Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	c.Flags().Float64Var(&cfg.Hours, "hours", 0, "length of stay of stable patients in hours (default 48)")
	c.Flags().IntVar(&device, "device", -1, "generate device N's non-IID shard (its case-mix profile)")
	c.Flags().StringVarP(&out, "out", "o", "-", "output CSV file ('-' for standard output)")
	c.Flags().StringVar(&pub.url, "publish", "", "publish the readings to mqtt://HOST:PORT/TOPIC instead of writing CSV")
	c.Flags().Float64Var(&pub.rate, "rate", 10, "--publish: readings per second (0 = as fast as the broker acknowledges)")
	c.Flags().IntVar(&pub.count, "count", 0, "--publish: stop after this many readings (default: every generated reading once, unless --duration)")
	c.Flags().DurationVar(&pub.duration, "duration", 0, "--publish: stop after this long")
	return c
}
