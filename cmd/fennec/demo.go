package main

import (
	"errors"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/demo"
)

func init() { register(newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var o demo.Options
	c := &cobra.Command{
		Use:   "demo",
		Short: "Bedside devices train a deterioration-risk model together, then predict live",
		Long: `Demo runs the worked case end to end in one process: an embedded hub (NATS with
JetStream) and N simulated bedside devices, each with its own fennec runtime and its
own non-IID shard of generated patient vitals (cardiology, general ward, diabetes,
screening case-mixes). On each device the vitals-preprocess module cleans, de-noises
and z-normalises the readings; the devices then train a deterioration-risk model with
federated averaging through the risk-train module, while a model trained centrally on
the pooled data in the same run serves as the reference; finally each device scores a
live stream of new readings with the risk-infer module.

--data PATH trains on a real CSV instead (numeric features, the label last), such as
../shared/data/wdbc.csv.

--http ADDR (e.g. 127.0.0.1:8080) serves the web dashboard of the demo's hub while the
devices train, and keeps serving it after the demo until Ctrl-C (docs/DASHBOARD.md).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			// --hidden 0 asks for logistic regression; unset, the demo's
			// default (16, and 0 in the DP-SGD modes).
			if c.Flags().Changed("hidden") && o.Hidden == 0 {
				o.Linear = true
			} else if !c.Flags().Changed("hidden") {
				o.Hidden = 0
			}
			o.NewEngine = newEngine
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt)
			defer stop()
			err := demo.Run(ctx, o, c.OutOrStdout(), c.ErrOrStderr())
			var de *demo.Error
			if errors.As(err, &de) {
				code := map[demo.Kind]int{demo.Usage: exitUsage, demo.BadInput: exitBadInput, demo.Failure: exitFailure}[de.Kind]
				return &exitError{code, de.Err}
			}
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&o.Devices, "devices", 8, "simulated bedside devices")
	f.IntVar(&o.Rounds, "rounds", 15, "federated rounds")
	f.IntVar(&o.Patients, "patients", 30, "patients per device (generated vitals)")
	f.StringVar(&o.Strategy, "strategy", "fedavg", "aggregation strategy: "+strings.Join(federation.StrategyNames(), ", "))
	f.Float64Var(&o.Skew, "skew", 0.5, "non-IID label skew for --data (0 = IID); generated vitals are non-IID by case-mix")
	f.Float64Var(&o.Fraction, "fraction", 1, "fraction of devices sampled per round")
	f.Float64Var(&o.LR, "lr", 0, "local learning rate (Adam); 0 picks 0.002 on generated vitals (~2,700 correlated readings per device), 0.01 on --data, 0.02 in dpsgd on the vitals, 0.1 in dpsgd on --data; in secagg+dpsgd the one SGD step a round: 0.4 on the vitals, 5 on --data")
	f.IntVar(&o.Epochs, "epochs", 2, "local epochs per round")
	f.StringVar(&o.Data, "data", "", "train on this CSV (numeric features, label last) instead of generated vitals")
	f.BoolVar(&o.JSON, "json", false, "print machine-readable results instead of the progress display")
	f.Uint64Var(&o.Seed, "seed", 1, "random seed")
	f.BoolVar(&o.Verbose, "verbose", false, "log runtime and hub events to stderr")
	f.StringVar(&o.Mode, "mode", "plain", "privacy round mode: "+strings.Join(federation.ModeNames(), ", "))
	f.Float64Var(&o.Epsilon, "epsilon", 3, "DP modes: total epsilon of the training (the noise is calibrated to reach it after --rounds)")
	f.Float64Var(&o.Delta, "delta", 1e-5, "DP modes: delta")
	f.Float64Var(&o.Clip, "clip", 0, "DP modes: L2 bound of each device's update (0.5), or in dpsgd of each patient's gradient (1; secagg+dpsgd on the vitals 10)")
	f.Float64Var(&o.PatientsPerStep, "patients-per-step", 0, "dpsgd: expected patients in each DP-SGD step's Poisson sample (8 on generated vitals, 16 rows on --data; secagg+dpsgd on the vitals 30)")
	f.IntVar(&o.Hidden, "hidden", 16, "hidden units of the risk model (0: logistic regression; the DP-SGD modes default to 0)")
	f.IntVar(&o.LocalSteps, "local-steps", 0, "dpsgd: DP-SGD steps per round on each device (0: one expected pass over its patients)")
	f.StringVar(&o.HTTP, "http", "", "serve the web dashboard of the demo's hub at ADDR (loopback, e.g. 127.0.0.1:8080) until interrupted")
	f.StringVar(&o.SaveModel, "save-model", "", "write the trained risk model to FILE (CBOR, the \"model\" risk-infer takes; a device binding can inject it)")
	return c
}
