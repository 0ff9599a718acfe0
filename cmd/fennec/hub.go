package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/hubdash"
	"github.com/fennec-edge/fennec/serve"
)

func init() { register(newHubCmd) }

func newHubCmd() *cobra.Command {
	var (
		cfg         federation.HubConfig
		sc          federation.StrategyConfig
		secretFile  string
		modelFile   string
		accessFile  string
		initMLP     []int
		jsonOut     bool
		verbose     bool
		mode        string
		mcfg        federation.ModeConfig
		wf          hubWasmFlags
		httpAddr    string
		dash        hubdash.Late
		tf          tlsFlags
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Coordinate federated training rounds (embedded NATS + JetStream, or --nats URL)",
		Long: `fennec hub samples devices each round, sends them the global model, collects their
signed updates until the deadline, aggregates them with the strategy, and stores the new
model in a JetStream object store and the round state in JetStream KV, so a restarted hub
resumes from the last completed round. By default it embeds nats-server with JetStream file
storage under --data; --nats URL uses an existing NATS server or cluster instead (use
--replicas 3 on a 3-node cluster). Devices join with 'fennec agent --hub URL --creds FILE';
make a device's credentials with 'fennec hub creds --secret FILE --id ID'.

--leaf-listen ADDR opens a leaf node listener: a device started with 'fennec agent
--leaf' runs its own NATS server with local JetStream, connected to this one as a leaf
with the device's own credentials and permissions; the hub's JetStream takes the domain
"hub", and its FENNEC_UPLINK stream sources each device's outbox (alerts, results), which
JetStream delivers when the link is up, also after an outage.

--tls-cert FILE --tls-key FILE make the client and leaf listeners TLS only (the files
are read again when they change, so a renewed certificate needs no restart);
--tls-client-ca FILE also requires every client and leaf to present a certificate signed
by that CA (mutual TLS). With --access, listening on an address other than loopback
without TLS is refused unless --allow-plaintext.

The embedded server authenticates every client that connects over the network:
without --access, a device connects with the password its credentials derive (the
agent does this itself) and may publish only its own join, update and leave messages
and receive only its own tasks; nothing but the hub itself may write the hub's state.
Every task carries the hub's MAC under the device's key, so a device acts on no task
the hub did not send. --insecure turns authentication off (any client that reaches
--listen may then do anything); it is for a closed test network only. With --nats, the
server's own configuration decides who connects ('fennec hub creds --nats-user' prints a
device's entry for it); the hub refuses a server that authenticates no one, reached at
an address that is not loopback, unless --insecure.

--access FILE (an access file of devices and operators with their nkeys, see
'fennec deploy nkey') turns on authentication on the embedded server: each device
connects with its own nkey ('fennec agent --nkey') and may publish only its own join,
update, leave and rollout status and receive only its own tasks and its group's
desired state; operators may deploy ('fennec deploy BUNDLE --group NAME') and read the
devices' status ('fennec status'), and nothing else. The hub then serves rollouts, and
keeps serving them after --rounds are complete, until interrupted.

--privacy-mode MODE runs every round in a privacy mode (dp, ldp, secagg, secagg+dp, he,
he+dp, dpsgd, secagg+dpsgd; see docs): the DP modes take --target-epsilon with --rounds
(or --noise-multiplier), --delta and --clip; he takes the population (--population, or
the --access devices). In dpsgd and secagg+dpsgd the devices train with patient-level
DP-SGD and add the noise themselves: --clip bounds each patient's gradient,
--patients-per-step and --local-steps plan the steps, and each device calibrates its
noise for --target-epsilon per patient after --rounds, charges its own ledger and
reports its epsilon, which the hub prints (the largest). Agents
learn the mode when they join. In every mode but plain the devices send no training
metrics; the hub reports the mode's epsilon so far.

--eval-data FILE.csv with --eval-module MODULE.wasm (a training module such as
risk-train) scores each new global model on held-out data through the module's
"evaluate" entrypoint and reports the held-out loss and accuracy per round.
--strategy-module MODULE.wasm aggregates the updates with the module's "aggregate"
entrypoint instead of a built-in --strategy. Both modules run in the fennec runtime,
with their manifest beside them (NAME.toml or fennec.toml) or --eval-manifest /
--strategy-manifest.

--http ADDR serves a web dashboard of the fleet, its rollouts and its training, and
the JSON API behind it (docs/DASHBOARD.md), and keeps serving it after --rounds are
complete, until interrupted. It binds to loopback unless --access is given; with
--access, operators sign in with a token of their nkey ('fennec hub token'), and only
those whose role allows deploys may change a rollout from it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			cfg.Logger = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			secretFile, err := federation.FleetSecretFile(secretFile, cfg.DataDir)
			switch {
			case errors.Is(err, federation.ErrNoSecretFile):
				return &exitError{exitUsage, errors.New("--secret is required with --nats (no data directory)")}
			case err != nil:
				return &exitError{exitFailure, err}
			}
			s, err := federation.ReadFleetSecret(secretFile, true)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			cfg.Secret = s
			if cfg.TLS, err = tf.server(); err != nil {
				return err
			}
			cfg.AllowPlaintext = tf.allowPlaintext
			if accessFile != "" {
				acc, err := deploy.LoadAccess(accessFile)
				if err != nil {
					return &exitError{exitBadInput, err}
				}
				cfg.Access = acc
			}
			if err := wf.check(c); err != nil {
				return err
			}
			if wf.stratModule == "" {
				strat, err := federation.NewStrategy(sc)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				cfg.Strategy = strat
			}
			var mh *federation.HubPrivacy
			if mode != "" && mode != "plain" {
				// Which strategies a mode may feed is the hub's rule
				// (hub.Config validation), checked by NewHub below.
				// Rounds, the population and the planned sampling rate
				// come from the hub's configuration (HubConfig.PlanPrivacy).
				mcfg.Logger = cfg.Logger.With("mode", mode) // culprits and clamped aggregates
				if mh, err = federation.NewHubPrivacy(mode, cfg.PlanPrivacy(mcfg)); err != nil {
					return &exitError{exitUsage, fmt.Errorf("--privacy-mode %s: %w (a DP mode needs --noise-multiplier, or --target-epsilon with --rounds; he needs --population or --access)", mode, err)}
				}
				cfg.Privacy = mh
			}
			switch {
			case modelFile != "":
				b, err := os.ReadFile(modelFile)
				if err != nil {
					return &exitError{exitBadInput, err}
				}
				m, err := federation.DecodeModel(b)
				if err != nil {
					return &exitError{exitBadInput, fmt.Errorf("%s: %w", modelFile, err)}
				}
				cfg.Initial = &m
			case len(initMLP) > 0:
				if len(initMLP) < 2 || len(initMLP) > 3 {
					return &exitError{exitUsage, errors.New("--init-mlp takes in,out or in,hidden,out")}
				}
				n := federation.MLP{In: initMLP[0], Out: initMLP[len(initMLP)-1]}
				if len(initMLP) == 3 {
					n.Hidden = initMLP[1]
				}
				m := n.Init(1)
				cfg.Initial = &m
			}
			if wf.stratModule != "" || wf.evalModule != "" {
				closeEngine, err := wf.load(c.Context(), &cfg, cfg.Logger)
				if err != nil {
					return err
				}
				defer closeEngine()
			}
			var hm *hubMetrics
			var reg *prometheus.Registry
			if metricsAddr != "" {
				reg = serve.NewRegistry()
				hm = newHubMetrics(reg, mh)
			}
			cfg.OnRound = func(r federation.RoundReport) {
				if hm != nil {
					hm.round(r)
				}
				var ps *federation.ModeStatus
				if mh != nil {
					st := mh.Status()
					ps = &st
				}
				if jsonOut {
					b, _ := json.Marshal(struct {
						federation.RoundReport
						Privacy *federation.ModeStatus `json:"privacy,omitempty"`
					}{r, ps})
					fmt.Fprintln(c.OutOrStdout(), string(b))
					return
				}
				line := fmt.Sprintf("round %d %s: version %d, %d/%d updates, %d dropped, %s",
					r.Round, r.Status, r.Version, r.Received, r.Sampled, len(r.Dropped), r.Duration.Round(time.Millisecond))
				if l, ok := r.DeviceMetrics["loss"]; ok {
					line += fmt.Sprintf(", device loss %.4f", l)
				}
				if r.HasEval {
					line += fmt.Sprintf(", eval loss %.4f acc %.4f", r.EvalLoss, r.EvalAccuracy)
					if a, ok := r.EvalMetrics["auroc"]; ok {
						line += fmt.Sprintf(" auroc %.4f", a)
					}
				}
				if ps != nil {
					line += ", " + ps.Mode
					switch {
					case len(ps.DeviceEpsilon) > 0:
						line += fmt.Sprintf(" per-patient epsilon %.3f (the largest of %d devices, delta %g)", ps.Epsilon, len(ps.DeviceEpsilon), ps.Delta)
					case ps.Epsilon > 0:
						line += fmt.Sprintf(" epsilon %.3f (delta %g, sampling rate %g)", ps.Epsilon, ps.Delta, ps.SamplingRate)
					}
				}
				if r.Error != "" {
					line += " (" + r.Error + ")"
				}
				fmt.Fprintln(c.OutOrStdout(), line)
			}
			onRound := cfg.OnRound
			cfg.OnRound = func(r federation.RoundReport) {
				onRound(r)
				if httpAddr != "" {
					var ps *federation.ModeStatus
					if mh != nil {
						st := mh.Status()
						ps = &st
					}
					dash.Round(r, ps, nil)
				}
			}
			h, err := federation.NewHub(cfg)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if err := h.Start(); err != nil {
				return &exitError{exitFailure, err}
			}
			defer h.Shutdown()
			if httpAddr != "" {
				url, err := dash.Start(httpAddr, h, cfg.Access, dashboard.Training{
					Name: cfg.Name, Strategy: cfg.Strategy.Name(), Params: strategyParams(sc), Mode: mode,
					TargetEpsilon: mcfg.TargetEpsilon, Delta: mcfg.Delta, Rounds: cfg.Rounds,
				}, cfg.Logger)
				if err != nil {
					return &exitError{exitUsage, fmt.Errorf("--http: %w", err)}
				}
				defer dash.Shutdown()
				if !jsonOut {
					fmt.Fprintf(c.OutOrStdout(), "dashboard at %s\n", url)
				}
			}
			if reg != nil {
				obs, err := serve.StartObserve(c.Context(), metricsAddr, reg, nil, cfg.Logger)
				if err != nil {
					return &exitError{exitFailure, err}
				}
				defer obs.Shutdown()
				if !jsonOut {
					fmt.Fprintf(c.OutOrStdout(), "metrics on http://%s/metrics\n", obs.Addr())
				}
			}
			if !jsonOut {
				fmt.Fprintf(c.OutOrStdout(), "hub %q ready at %s, global model version %d\n", cfg.Name, h.ClientURL(), h.Version())
				if u := h.LeafURL(); u != "" {
					fmt.Fprintf(c.OutOrStdout(), "leaf nodes connect at %s\n", u)
				}
				if mh != nil {
					// The plan as the mode runs it: rounds from --rounds,
					// defaults filled in (not the flags as given).
					st, pc := mh.Status(), mh.Config()
					fmt.Fprintf(c.OutOrStdout(), "privacy mode %s", mode)
					switch {
					case federation.ModeTrainsDPSGD(mode):
						noise := "each device calibrates its own noise and charges its own ledger"
						if mode == "secagg+dpsgd" {
							noise = "each device adds a share of one step's noise under secure aggregation, the hub unmasks only the sum, and each device charges its own ledger the full-noise step"
						}
						fmt.Fprintf(c.OutOrStdout(), ": patient-level DP-SGD on the devices, clip %g per patient, %g patients per step, epsilon %g per device after %d rounds at delta <= %g (%s)",
							pc.Clip, pc.PatientsPerStep, pc.TargetEpsilon, pc.Rounds, pc.Delta, noise)
					case st.NoiseMultiplier > 0:
						fmt.Fprintf(c.OutOrStdout(), ": noise multiplier %.4g, clip %g, planned sampling rate %g, delta %g", st.NoiseMultiplier, st.Clip, st.SamplingRate, st.Delta)
					}
					fmt.Fprintln(c.OutOrStdout())
				}
				if wf.stratModule != "" {
					fmt.Fprintf(c.OutOrStdout(), "strategy %s from %s\n", cfg.Strategy.Name(), wf.stratModule)
				}
				if wf.evalModule != "" {
					fmt.Fprintf(c.OutOrStdout(), "held-out evaluation on %s with %s\n", wf.evalData, wf.evalModule)
				}
				if cfg.Access != nil {
					fmt.Fprintf(c.OutOrStdout(), "access control on: %d devices, %d operators; serving rollouts\n", len(cfg.Access.Devices), len(cfg.Access.Operators))
				}
			}
			ctx, stop := signalContext(c)
			defer stop()
			select {
			case <-ctx.Done():
				return nil
			case <-h.Done():
				if err := h.Err(); err != nil {
					return &exitError{exitFailure, err}
				}
				if cfg.Access == nil && httpAddr == "" {
					return nil
				}
			}
			if !jsonOut {
				fmt.Fprintln(c.OutOrStdout(), "training rounds complete; still serving rollouts and the dashboard until interrupted")
			}
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "data directory (embedded JetStream storage, fleet secret)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:4222", "embedded NATS client address")
	f.StringVar(&cfg.LeafListen, "leaf-listen", "", "open a leaf node listener (host:7422) for devices running 'fennec agent --leaf'; their outboxes are sourced into the FENNEC_UPLINK stream")
	f.StringVar(&cfg.NATSURL, "nats", "", "use an existing NATS server/cluster at URL instead of embedding one")
	f.StringVar(&cfg.Name, "name", "default", "federation name")
	f.IntVar(&cfg.Replicas, "replicas", 1, "replicas of the KV bucket and object store (3 on a cluster)")
	f.IntVar(&cfg.Rounds, "rounds", 0, "rounds to complete, then exit (0: run until interrupted)")
	f.Float64Var(&cfg.Fraction, "fraction", 1, "fraction of available devices sampled per round")
	f.IntVar(&cfg.MinDevices, "min-devices", 1, "minimum devices per round (a round waits for them)")
	f.Float64Var(&cfg.Quorum, "quorum", 0.5, "fraction of sampled devices needed to close a round at the deadline")
	f.DurationVar(&cfg.Deadline, "deadline", 30*time.Second, "round deadline; stragglers are dropped")
	f.Float64Var(&cfg.Settings.LR, "lr", 0.05, "device learning rate")
	f.Uint64Var(&cfg.Settings.Epochs, "epochs", 1, "local epochs per round")
	f.Uint64Var(&cfg.Settings.BatchSize, "batch", 32, "local batch size")
	f.StringVar(&sc.Name, "strategy", "fedavg", "strategy: "+strings.Join(federation.StrategyNames(), ", "))
	f.Float64Var(&sc.Mu, "mu", 0, "FedProx proximal weight")
	f.Float64Var(&sc.LR, "server-lr", 0, "FedSGD server learning rate")
	f.Float64Var(&sc.Momentum, "momentum", 0, "FedSGD server momentum")
	f.Float64Var(&sc.Eta, "eta", 0, "FedAdam/FedYogi/FedAdagrad server learning rate")
	f.Float64Var(&sc.TrimBeta, "trim", 0, "trimmed mean: fraction cut at each end (0.2)")
	f.IntVar(&sc.F, "byzantine", 0, "Krum/MultiKrum/Bulyan: assumed malicious devices")
	f.IntVar(&sc.M, "keep", 0, "MultiKrum: updates kept (n-f)")
	f.StringVar(&secretFile, "secret", "", "fleet secret file (hex; created when absent; default DATA/fleet.secret)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "authenticate no one on the embedded server: any client that reaches --listen may forge tasks and write the hub's state (never on a shared network)")
	f.StringVar(&accessFile, "access", "", "access file (devices and operators with their nkeys): authenticate every client, serve rollouts")
	f.StringVar(&modelFile, "model", "", "initial global model (CBOR Model) when the store holds none")
	f.IntSliceVar(&initMLP, "init-mlp", nil, "initial MLP in,hidden,out (sdk/nn layout) when the store holds none")
	f.StringVar(&mode, "privacy-mode", "", "privacy round mode: "+strings.Join(federation.ModeNames(), ", ")+" (default plain)")
	f.Float64Var(&mcfg.TargetEpsilon, "target-epsilon", 0, "DP modes: epsilon after --rounds releases (calibrates the noise; no release beyond it)")
	f.Float64Var(&mcfg.Delta, "delta", 1e-5, "DP modes: delta of the reported (epsilon, delta)")
	f.BoolVar(&cfg.ResetPrivacy, "reset-privacy", false, "DP modes: when the store's privacy accounting cannot be continued (another mode's, malformed), start the accountant from zero, a new budget, instead of refusing to start")
	f.Float64Var(&mcfg.Clip, "clip", 1, "DP modes: L2 bound of each device's update delta")
	f.Float64Var(&mcfg.NoiseMultiplier, "noise-multiplier", 0, "DP modes: noise std / clip (0: calibrated from --target-epsilon and --rounds)")
	f.Float64Var(&mcfg.SamplingRate, "sampling-rate", 0, "DP modes: planned sampled devices / population, for calibrating --noise-multiplier (0: from --fraction, --min-devices and --population or --access); each release is charged at its round's real rate")
	f.Float64Var(&mcfg.PatientsPerStep, "patients-per-step", 0, "dpsgd: expected patients (units) in each device's DP-SGD step (8)")
	f.IntVar(&mcfg.LocalSteps, "local-steps", 0, "dpsgd: DP-SGD steps per round on each device (0: one expected pass over its patients)")
	f.BoolVar(&mcfg.AdaptiveClip, "adaptive-clip", false, "dp mode: track the median update norm as the clip")
	f.BoolVar(&mcfg.DistributedNoise, "distributed-noise", false, "secagg+dp, he+dp: the devices add the noise, not the hub")
	f.StringSliceVar(&mcfg.Population, "population", nil, "he modes: every device id (default: the --access file's devices)")
	f.StringVar(&wf.evalData, "eval-data", "", "held-out CSV (numeric columns, last the label) the hub evaluates each new global model on, with --eval-module")
	f.StringVar(&wf.evalModule, "eval-module", "", "module whose \"evaluate\" entrypoint scores the global model on --eval-data (e.g. risk-train.wasm)")
	f.StringVar(&wf.evalManifest, "eval-manifest", "", "manifest of --eval-module (default: NAME.toml or fennec.toml beside it)")
	f.StringVar(&wf.stratModule, "strategy-module", "", "Wasm strategy: a module exporting \"aggregate\", used instead of --strategy")
	f.StringVar(&wf.stratManifest, "strategy-manifest", "", "manifest of --strategy-module (default: NAME.toml or fennec.toml beside it)")
	f.BoolVar(&jsonOut, "json", false, "one JSON round report per line")
	f.BoolVarP(&verbose, "verbose", "v", false, "log hub events")
	f.StringVar(&httpAddr, "http", "", "serve the web dashboard and its JSON API at ADDR (loopback, e.g. 127.0.0.1:8080, unless --access signs operators in; see docs/DASHBOARD.md)")
	f.StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on ADDR (host:port; default off)")
	tf.addServer(cmd)
	cmd.AddCommand(newHubCredsCmd(), newHubTokenCmd())
	return cmd
}

func newHubCredsCmd() *cobra.Command {
	var secretFile, id, name string
	var natsUser bool
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Print a device's credentials file (id:key derived from the fleet secret)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := federation.ReadFleetSecret(secretFile, false)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			if id == "" {
				return &exitError{exitUsage, errors.New("--id is required")}
			}
			out := federation.FormatCreds(id, federation.DeviceKey(s, id))
			if _, _, err := federation.ParseCreds([]byte(out)); err != nil {
				return &exitError{exitUsage, err}
			}
			if natsUser {
				out = federation.DeviceNATSUser(name, id, federation.DeviceKey(s, id))
			}
			fmt.Fprint(c.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret", "", "fleet secret file")
	cmd.Flags().StringVar(&id, "id", "", "device id (letters, digits, '-', '_')")
	cmd.Flags().BoolVar(&natsUser, "nats-user", false, "print the device's user entry (password, permissions) for an external NATS server's authorization block (fennec hub --nats)")
	cmd.Flags().StringVar(&name, "name", "default", "federation name (with --nats-user)")
	_ = cmd.MarkFlagRequired("secret")
	return cmd
}
