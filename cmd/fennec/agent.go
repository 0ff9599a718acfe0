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

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/serve"
)

func init() { register(newAgentCmd) }

func federationDecodeModel(b []byte, m *federation.Model) error {
	return federation.DecodeModel(b, m)
}

func newAgentCmd() *cobra.Command {
	var (
		hubURL, credsFile, id, modulePath, dataPath, name, nkeyFile string
		i32Labels, verbose                                          bool
		rf                                                          rolloutFlags
		mode                                                        string
		mcfg                                                        federation.ModeConfig
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

--device-config FILE serves the device's modules to its own traffic as the file binds
them (HTTP POST /v1/modules/{module}/{entry}, NATS subjects, MQTT topics through the
device's nats-server; see docs/ARCHITECTURE.md "Serving"): [[module]] files, and the
module its rollouts deploy. --http ADDR serves /metrics, /healthz and /readyz (and the
HTTP bindings) on ADDR. With --device-config and no --hub the agent only serves.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var dc *serve.DeviceConfig
			if deviceConfig != "" || httpAddr != "" {
				var err error
				if dc, err = loadDeviceConfig(deviceConfig, httpAddr); err != nil {
					return err
				}
			}
			if hubURL == "" && deviceConfig != "" {
				return serveOnly(c, dc, deviceConfig, verbose)
			}
			if hubURL == "" || credsFile == "" || modulePath == "" || dataPath == "" {
				return &exitError{exitUsage, errors.New("--hub, --creds, --module and --data are required (or --device-config alone to serve only)")}
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
			eng, err := newEngine(ctx, log, runtime.Config{Logger: log,
				Services: &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{HE: heParty}}})
			if err != nil {
				return &exitError{exitFailure, err}
			}
			defer eng.Close(context.Background())
			mod, err := eng.Compile(ctx, wasm, man)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			var rd *deploy.Device
			if rollouts {
				if rd, err = openRollout(ctx, eng, cid, rf, log); err != nil {
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
			nc, err := nats.Connect(hubURL, opts...)
			if err != nil {
				return &exitError{exitFailure, fmt.Errorf("connect %s: %w", hubURL, err)}
			}
			defer nc.Close()
			if mode == "plain" {
				mode = ""
			}
			a, err := federation.NewAgent(federation.AgentConfig{Name: name, Conn: nc, ID: cid, Key: key,
				Trainer: &federation.WasmTrainer{Mod: mod}, Data: ds, Logger: log, Mode: mode,
				// The device side of the hub's privacy mode (or of
				// --privacy-mode only), its steps served on this
				// connection (fennec.NAME.mode.ID).
				NewMode: func(m string) (federation.ClientTransform, error) {
					mc, err := federation.NewModeClient(m, cid, mcfg)
					if err != nil {
						return nil, err
					}
					if m == "he" || m == "he+dp" {
						heParty.Set(mc)
					} else {
						heParty.Set(nil)
					}
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
				reg := serve.NewRegistry()
				if err := registerAgentMetrics(reg, a.Stats); err != nil {
					return &exitError{exitFailure, err}
				}
				sv, err := startServing(ctx, c.OutOrStdout(), eng, dc, filepath.Dir(deviceConfig), rd, reg, log)
				if err != nil {
					return err
				}
				defer sv.stop()
			}
			fmt.Fprintf(c.OutOrStdout(), "device %s joined %s with %d examples\n", cid, hubURL, len(data.TrainY))
			rolloutDone := make(chan error, 1)
			if rd != nil {
				rctx, rcancel := context.WithCancel(ctx)
				go func() { rolloutDone <- rd.Run(rctx, nc) }()
				defer func() { rcancel(); <-rolloutDone }()
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
					rolloutDone <- err // for the deferred wait
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
	f.StringVar(&hubURL, "hub", "", "hub NATS URL (nats://host:4222)")
	f.StringVar(&credsFile, "creds", "", "device credentials file (from 'fennec hub creds')")
	f.StringVar(&id, "id", "", "device id (checked against the credentials)")
	f.StringVar(&modulePath, "module", "", "training module (.wasm with fennec.toml beside it)")
	f.StringVar(&dataPath, "data", "", "local data: numeric CSV, last column the class label")
	f.StringVar(&name, "name", "default", "federation name")
	f.BoolVar(&i32Labels, "i32-labels", false, "send labels as i32 class indices (default f32, as modules/risk-train expects)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log agent events")
	f.StringVar(&nkeyFile, "nkey", "", "NATS credential (nkey seed from 'fennec deploy nkey') for a hub started with --access")
	f.StringVar(&mode, "privacy-mode", "", "take part only in rounds of this privacy mode ("+strings.Join(federation.ModeNames, ", ")+"); default: the hub's")
	f.Float64Var(&mcfg.Clip, "clip", 1, "ldp: L2 bound of this device's update delta")
	f.Float64Var(&mcfg.NoiseMultiplier, "noise-multiplier", 0, "ldp: noise std / clip this device adds")
	f.Float64Var(&mcfg.TargetEpsilon, "target-epsilon", 0, "ldp: this device's epsilon cap (calibrates the noise with --privacy-rounds)")
	f.Float64Var(&mcfg.Delta, "delta", 1e-5, "ldp: delta of this device's epsilon")
	f.IntVar(&mcfg.Rounds, "privacy-rounds", 0, "ldp: rounds to calibrate the noise for")
	f.IntVar(&mcfg.MinAggregate, "min-aggregate", 2, "secure modes: refuse to join a secure aggregate of fewer devices")
	f.StringVar(&deviceConfig, "device-config", "", "device configuration (TOML): bind module entrypoints to HTTP, NATS and MQTT")
	f.StringVar(&httpAddr, "http", "", "serve /metrics, /healthz, /readyz and the HTTP bindings on ADDR (host:port; default: the device config's [http] listen, else off)")
	rf.add(cmd)
	return cmd
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
	sv, err := startServing(ctx, c.OutOrStdout(), eng, dc, filepath.Dir(path), nil, serve.NewRegistry(), log)
	if err != nil {
		return err
	}
	defer sv.stop()
	<-ctx.Done()
	return nil
}
