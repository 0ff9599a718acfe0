package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/routines"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/serve"
)

func init() { register(newAgentCmd) }

func newAgentCmd() *cobra.Command {
	var (
		hubURL, credsFile, id, modulePath, dataPath, name, nkeyFile string
		i32Labels, verbose, keepWarm                                bool
		leafURL, leafDir, localListen                               string
		outboxMax                                                   int64
		outboxAge                                                   time.Duration
		tf                                                          tlsFlags
		rf                                                          rolloutFlags
		mode                                                        string
		mcfg                                                        federation.ModeConfig
		ledgerPath, dataset                                         string
		deviceConfig, httpAddr                                      string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a device: train the hub's global model on local data with a Wasm training module",
		Long: `fennec agent joins a federation with an explicit identity (--creds, made by
'fennec hub creds'), holds its local data (--data: numeric CSV, last column the label), and
when a round samples it runs the training module's "train" entrypoint through the fennec
runtime and submits its update. The module's instances are drained after every call, so
an idle device holds none.

--nkey FILE authenticates to a hub started with --access ('fennec deploy nkey' makes the
file; the device's id in the access file is its id in --creds). With --group NAME,
--trust FILE and --dir DIR the same process also receives its group's rollouts over the
same connection: it verifies, health-checks and swaps in each module its trust file
accepts, keeps its bundles and audit.log under DIR, and reports its status (see
'fennec deploy' and 'fennec status').

The device follows the hub's privacy mode (fennec hub --privacy-mode): it learns the mode
when it joins, answers the mode's protocol steps (secagg, he) and transforms its update
(clip, noise, mask, encrypt); it sends no training metrics in any mode but plain.
--privacy-mode MODE makes it take part in that mode only (it refuses to join a hub in
another mode). In ldp the device adds its own noise: give it --noise-multiplier, or
--target-epsilon with --privacy-rounds, and --clip.

In dpsgd and secagg+dpsgd the device trains with patient-level DP-SGD (each row of
--data is its own unit): it turns the hub's plan (per-unit clip, units per step,
steps, target epsilon over the rounds) into its own sampling rate and noise, and its
training module's runs are charged by the host to the account dataset/NAME
(--dataset, default the --data file's base name) of the privacy ledger --ledger,
which must have a budget ('fennec privacy budget set --ledger FILE dataset/NAME
--epsilon E --delta D'); a run that would overspend it is refused. --target-epsilon
caps this device's epsilon below the hub's. The device reports its epsilon with
each update.

--leaf URL (the hub's leaf listener, 'fennec hub --leaf-listen') runs a NATS server on
the device, a leaf node of the hub with its own JetStream under --leaf-dir: the agent's
training and rollout clients connect to it in-process (--local-listen opens it to the
device's other processes), their traffic reaches the hub through the leaf connection,
which authenticates with the device's --nkey (or its --creds) and has the device's
permissions. Messages on the outbox subjects (alerts.ID, alerts.ID.>, results.ID.>,
fennec.uplink.ID.>) are stored in a local stream of at most --outbox-max-bytes and
--outbox-max-age (oldest dropped first, counted) and reach the hub's FENNEC_UPLINK
stream when the link is up, also after an outage.

--tls-ca FILE connects (directly or as a leaf) over TLS, verifying the hub's certificate
with that CA; --tls-cert and --tls-key present this device's certificate to a hub that
requires one (mutual TLS; reloaded when the files change). With --nkey, a hub that is
not on this machine is refused without TLS unless --allow-plaintext.

--device-config FILE serves the device's modules to its own traffic as the file binds
them (HTTP POST /v1/modules/{module}/{entry}, NATS subjects, MQTT topics through the
device's nats-server; see docs/ARCHITECTURE.md "Serving"): [[module]] files, and the
module its rollouts deploy. --http ADDR serves /metrics, /healthz and /readyz (and the
HTTP bindings) on ADDR. With --device-config and no --hub the agent only serves. With
--leaf the bindings run on the leaf's server (the config's MQTT listener and [nats]
listen open it; its device must be the credentials' id) and start before the hub is
reached, so the device serves through an outage and what they publish on the outbox
subjects reaches the hub when it returns; /metrics then has the outbox's fennec_leaf_* gauges.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var dc *serve.DeviceConfig
			if deviceConfig != "" || httpAddr != "" {
				var err error
				if dc, err = loadDeviceConfig(deviceConfig, httpAddr); err != nil {
					return err
				}
			}
			if hubURL == "" && leafURL == "" && deviceConfig != "" {
				return serveOnly(c, dc, deviceConfig, verbose)
			}
			if (hubURL == "") == (leafURL == "") || credsFile == "" || modulePath == "" || dataPath == "" {
				return &exitError{exitUsage, errors.New("--hub or --leaf (one of them), --creds, --module and --data are required (or --device-config alone to serve only)")}
			}
			if leafURL != "" && leafDir == "" {
				return &exitError{exitUsage, errors.New("--leaf needs --leaf-dir (the local JetStream store)")}
			}
			tlsc, err := tf.client()
			if err != nil {
				return err
			}
			if target := hubURL + leafURL; tlsc == nil && nkeyFile != "" && remoteURL(target) && !tf.allowPlaintext {
				return &exitError{exitUsage, fmt.Errorf("%s is not on this machine: without TLS (--tls-ca) the device's updates, rollouts and status would cross the network in the clear; pass --allow-plaintext to connect anyway", target)}
			}
			rollouts := rf.group != "" || rf.dir != "" || rf.trustPath != ""
			if rollouts {
				if err := rf.check(); err != nil {
					return err
				}
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cb, err := os.ReadFile(credsFile)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			cid, key, err := federation.ParseCreds(cb)
			if err != nil {
				return &exitError{exitBadInput, fmt.Errorf("%s: %w", credsFile, err)}
			}
			if id != "" && id != cid {
				return &exitError{exitUsage, fmt.Errorf("--id %q differs from the credentials' id %q", id, cid)}
			}
			data, err := federation.LoadCSV(dataPath, 0, 1)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			ds := data.TrainDataset(!i32Labels)
			ctx, stop := signalContext(c)
			defer stop()
			wasm, err := os.ReadFile(modulePath)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			mp, err := runtime.FindManifest(modulePath)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			man, err := runtime.ReadManifest(mp)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			// The training module's he_encrypt encrypts under the
			// federation's collective key: the mode client of an he or
			// he+dp round holds this device's party once the hub's key
			// setup has run (until then, and in other modes, ESTATE).
			mcfg.Logger = log
			heParty := &hostfuncs.HESlot{}
			ps := &hostfuncs.PrivacyServices{HE: heParty}
			if dataset == "" {
				dataset = strings.TrimSuffix(filepath.Base(dataPath), filepath.Ext(dataPath))
			}
			if ledgerPath != "" {
				// The host charges the training module's DP-SGD runs here.
				l, err := budget.Open(ledgerPath)
				if err != nil {
					return &exitError{exitBadInput, fmt.Errorf("--ledger: %w", err)}
				}
				defer l.Close()
				if _, err := l.Remaining(budget.DatasetAccount(dataset)); err != nil {
					return &exitError{exitBadInput, fmt.Errorf("--ledger %s: %w (set one with 'fennec privacy budget set --ledger %s %s --epsilon E --delta D')", ledgerPath, err, ledgerPath, budget.DatasetAccount(dataset))}
				}
				ps.Ledger = l
			}
			models := hostfuncs.NewModelSet(nil, onnx.Options{}) // bundles' models (rollouts)
			defer models.Close()
			eng, err := newEngine(ctx, log, runtime.Config{Logger: log,
				Services: &hostfuncs.Services{Privacy: ps, NN: &hostfuncs.NNServices{Models: models}}})
			if err != nil {
				return &exitError{exitFailure, err}
			}
			defer eng.Close(context.Background())
			mod, err := eng.Compile(ctx, wasm, man)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			if leafURL != "" {
				rf.domain = leaf.HubDomain // the hub's buckets, seen from the device's server
			}
			var rd *deploy.Device
			if rollouts {
				if rd, err = openRollout(ctx, eng, models, cid, rf, log); err != nil {
					return err
				}
				defer rd.Close()
			}
			// One connection for training and rollouts; with an nkey, the
			// device's own inbox, which its permissions require.
			// The server reports permission violations asynchronously: they
			// end the start (a credential that is not this device's) and are
			// logged afterwards.
			startCtx, startCancel := context.WithCancelCause(ctx)
			defer startCancel(nil)
			opts := []nats.Option{nats.Name("fennec-agent-" + cid), nats.MaxReconnects(-1),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					log.Warn("nats", "err", err)
					if errors.Is(err, nats.ErrPermissionViolation) {
						startCancel(err)
					}
				})}
			var nc *nats.Conn
			where := hubURL
			// The serving metrics, and with --leaf the outbox's
			// (fennec_leaf_outbox_*), on --http's /metrics.
			reg := serve.NewRegistry()
			var servingNS *server.Server // with --leaf: the server the bindings use
			serving := false             // with --leaf the bindings start before the hub is reached
			if leafURL != "" {
				// The device's own server, a leaf of the hub: the leaf
				// connection carries the device's credentials; the
				// agent's clients are in-process, with the device's inbox
				// (the only one the hub lets the leaf receive).
				lc := leaf.Config{Device: cid, Hub: leafURL, Dir: leafDir, Listen: localListen,
					MaxBytes: outboxMax, MaxAge: outboxAge, TLS: tlsc, Logger: log, Registerer: reg}
				if dc != nil && dc.NeedsNATS() {
					// The bindings run on this server, not on one of
					// their own: what they publish on the outbox subjects
					// (alerts.{device}...) is kept for the hub.
					if err := leafServes(&lc, dc, deviceConfig); err != nil {
						return err
					}
				}
				if nkeyFile != "" {
					if lc.Nkey, err = deploy.LoadNkey(nkeyFile); err != nil {
						return &exitError{exitBadInput, err}
					}
				} else {
					lc.User, lc.Password = cid, federation.DevicePassword(key)
				}
				node, err := leaf.New(lc)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				if err := node.Start(ctx); err != nil {
					return &exitError{exitFailure, err}
				}
				defer node.Shutdown()
				if dc != nil && dc.NeedsNATS() {
					servingNS = node.Server()
				}
				if u := node.ClientURL(); u != "" {
					fmt.Fprintf(c.OutOrStdout(), "device %s serves local clients at %s\n", cid, u)
				}
				opts = append(opts, nats.InProcessServer(node.Server()), nats.CustomInboxPrefix(deploy.InboxPrefix(cid)))
				if nc, err = nats.Connect("", opts...); err != nil {
					return &exitError{exitFailure, fmt.Errorf("connect to the local server: %w", err)}
				}
				defer nc.Close()
				if dc != nil {
					// The bindings serve at once: a device (re)started
					// while the hub is unreachable scores its traffic,
					// and what it publishes for the hub waits in the
					// outbox.
					sv, err := startServing(ctx, c.OutOrStdout(), eng, dc, filepath.Dir(deviceConfig), rd, servingNS, reg, log)
					if err != nil {
						return err
					}
					defer sv.stop()
					serving = true
				}
				// Join once the leaf reaches the hub; the local server
				// serves local clients meanwhile.
				if err := waitLeaf(ctx, node, c, cid, leafURL); err != nil {
					return nil // interrupted while waiting
				}
				where = leafURL
			} else {
				if nkeyFile != "" {
					co, err := deploy.ConnectOptions(nkeyFile, cid)
					if err != nil {
						return &exitError{exitBadInput, err}
					}
					opts = append(opts, co...)
				} else {
					// A hub without --access authenticates its devices with
					// the password their key derives.
					opts = append(opts, federation.DeviceConnectOptions(cid, key)...)
				}
				if tlsc != nil {
					opts = append(opts, nats.Secure(tlsc))
				}
				if nc, err = nats.Connect(hubURL, opts...); err != nil {
					return &exitError{exitFailure, fmt.Errorf("connect %s: %w", hubURL, err)}
				}
				defer nc.Close()
			}
			if mode == "plain" {
				mode = ""
			}
			trainer := &federation.WasmTrainer{Mod: mod, KeepWarm: keepWarm}
			if ledgerPath != "" {
				trainer.Dataset = dataset
			}
			a, err := federation.NewAgent(federation.AgentConfig{Name: name, Conn: nc, ID: cid, Key: key,
				Trainer: trainer, Data: ds, Logger: log, Mode: mode,
				// The device side of the hub's privacy mode (or of
				// --privacy-mode only), its steps served on this
				// connection (fennec.NAME.mode.ID).
				NewMode: func(m string) (*federation.DevicePrivacy, error) {
					mc, err := federation.NewDevicePrivacy(m, cid, mcfg)
					if err != nil {
						return nil, err
					}
					heParty.Set(mc.HEParty()) // nil outside he and he+dp
					fmt.Fprintf(c.OutOrStdout(), "device %s takes part in privacy mode %s\n", cid, m)
					return mc, nil
				}})
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if err := a.Start(startCtx); err != nil {
				if cause := context.Cause(startCtx); errors.Is(cause, nats.ErrPermissionViolation) {
					err = fmt.Errorf("the hub's server refused device %s: %w (is --nkey this device's credential?)", cid, cause)
				}
				return &exitError{exitFailure, err}
			}
			startCancel(nil)
			defer a.Close()
			if dc != nil {
				if err := registerAgentMetrics(reg, a.Stats); err != nil {
					return &exitError{exitFailure, err}
				}
			}
			if dc != nil && !serving {
				sv, err := startServing(ctx, c.OutOrStdout(), eng, dc, filepath.Dir(deviceConfig), rd, nil, reg, log)
				if err != nil {
					return err
				}
				defer sv.stop()
			}
			fmt.Fprintf(c.OutOrStdout(), "device %s joined %s with %d examples\n", cid, where, len(data.TrainY))
			// The rollout client runs beside the agent; the group waits for
			// it before the connection and the agent close.
			var bg routines.Group
			defer bg.CloseAndWait()
			rolloutDone := make(chan error, 1)
			if rd != nil {
				rctx, rcancel := context.WithCancel(ctx)
				defer rcancel()
				bg.Go(func() { rolloutDone <- rd.Run(rctx, nc) })
				fmt.Fprintf(c.OutOrStdout(), "device %s receives the rollouts of group %s\n", cid, rf.group)
			}
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			last := federation.AgentStats{}
			for {
				select {
				case <-ctx.Done():
					return nil
				case err := <-rolloutDone:
					if err != nil {
						return &exitError{exitFailure, fmt.Errorf("rollout agent: %w", err)}
					}
					return nil
				case <-t.C:
					if st := a.Stats(); st != last {
						fmt.Fprintf(c.OutOrStdout(), "rounds %d, accepted %d, refused %d, failed %d, in %d B, out %d B\n",
							st.Rounds, st.Accepted, st.Refused, st.Failed, st.BytesIn, st.BytesOut)
						last = st
					}
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&hubURL, "hub", "", "hub NATS URL (nats://host:4222); or --leaf")
	f.StringVar(&leafURL, "leaf", "", "run a local NATS server, a leaf node of the hub's leaf listener at URL (nats-leaf://host:7422)")
	f.StringVar(&leafDir, "leaf-dir", "", "with --leaf: the local JetStream store (the outbox)")
	f.StringVar(&localListen, "local-listen", "-", "with --leaf: local client address for the device's other processes (\"-\": in-process only)")
	f.Int64Var(&outboxMax, "outbox-max-bytes", 64<<20, "with --leaf: bytes the outbox keeps for the hub (the oldest dropped first)")
	f.DurationVar(&outboxAge, "outbox-max-age", 7*24*time.Hour, "with --leaf: age after which outbox messages are dropped")
	f.StringVar(&credsFile, "creds", "", "device credentials file (from 'fennec hub creds')")
	f.StringVar(&id, "id", "", "device id (checked against the credentials)")
	f.StringVar(&modulePath, "module", "", "training module (.wasm with fennec.toml beside it)")
	f.StringVar(&dataPath, "data", "", "local data: numeric CSV, last column the class label")
	f.StringVar(&name, "name", "default", "federation name")
	f.BoolVar(&i32Labels, "i32-labels", false, "send labels as i32 class indices (default f32, as modules/risk-train expects)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log agent events")
	f.BoolVar(&keepWarm, "keep-warm", false, "keep the training module's instance between rounds (no instantiation per round, at the cost of its memory while idle)")
	f.StringVar(&nkeyFile, "nkey", "", "NATS credential (nkey seed from 'fennec deploy nkey') for a hub started with --access")
	f.StringVar(&mode, "privacy-mode", "", "take part only in rounds of this privacy mode ("+strings.Join(federation.ModeNames(), ", ")+"); default: the hub's")
	f.Float64Var(&mcfg.Clip, "clip", 1, "ldp: L2 bound of this device's update delta")
	f.Float64Var(&mcfg.NoiseMultiplier, "noise-multiplier", 0, "ldp: noise std / clip this device adds")
	f.Float64Var(&mcfg.TargetEpsilon, "target-epsilon", 0, "ldp: this device's epsilon cap (calibrates the noise with --privacy-rounds); dpsgd: a cap below the hub's")
	f.Float64Var(&mcfg.Delta, "delta", 1e-5, "ldp: delta of this device's epsilon")
	f.IntVar(&mcfg.Rounds, "privacy-rounds", 0, "ldp: rounds to calibrate the noise for")
	f.StringVar(&ledgerPath, "ledger", "", "dpsgd: privacy ledger file; the host charges the module's DP-SGD runs to dataset/NAME (--dataset)")
	f.StringVar(&dataset, "dataset", "", "dpsgd: this device's dataset name in --ledger (default: --data's base name)")
	f.IntVar(&mcfg.MinAggregate, "min-aggregate", 2, "secure modes: refuse to join a secure aggregate of fewer devices")
	tf.addClient(cmd, true)
	f.StringVar(&deviceConfig, "device-config", "", "device configuration (TOML): bind module entrypoints to HTTP, NATS and MQTT")
	f.StringVar(&httpAddr, "http", "", "serve /metrics, /healthz, /readyz and the HTTP bindings on ADDR (host:port; default: the device config's [http] listen, else off)")
	rf.add(cmd)
	return cmd
}

// waitLeaf waits until node's leaf connection to the hub is up, saying
// once that it waits; it fails only when ctx ends.
func waitLeaf(ctx context.Context, node *leaf.Node, c *cobra.Command, id, url string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	said := time.After(2 * time.Second)
	for !node.Connected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-said:
			fmt.Fprintf(c.OutOrStdout(), "device %s waits for the hub at %s (serving locally)\n", id, url)
		case <-t.C:
		}
	}
	return nil
}

// serveOnly runs a device that serves its [[module]] files and answers no
// hub (fennec agent --device-config without --hub).
func serveOnly(c *cobra.Command, dc *serve.DeviceConfig, path string, verbose bool) error {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	ctx, stop := signalContext(c)
	defer stop()
	eng, err := newEngine(ctx, log, runtime.Config{Logger: log})
	if err != nil {
		return &exitError{exitFailure, err}
	}
	defer eng.Close(context.Background())
	sv, err := startServing(ctx, c.OutOrStdout(), eng, dc, filepath.Dir(path), nil, nil, serve.NewRegistry(), log)
	if err != nil {
		return err
	}
	defer sv.stop()
	<-ctx.Done()
	return nil
}
