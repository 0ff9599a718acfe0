package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/runtime"
)

func init() { register(newAgentCmd) }

func federationDecodeModel(b []byte, m *federation.Model) error {
	return federation.DecodeModel(b, m)
}

func newAgentCmd() *cobra.Command {
	var (
		hubURL, credsFile, id, modulePath, dataPath, name string
		i32Labels, verbose                                bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a device: train the hub's global model on local data with a Wasm training module",
		Long: `fennec agent joins a federation with an explicit identity (--creds, made by
'fennec hub creds'), holds its local data (--data: numeric CSV, last column the label), and
when a round samples it runs the training module's "train" entrypoint through the fennec
runtime and submits its update. The module's instances are drained after every call, so
an idle device holds none.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if hubURL == "" || credsFile == "" || modulePath == "" || dataPath == "" {
				return &exitError{exitUsage, errors.New("--hub, --creds, --module and --data are required")}
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
			eng, err := runtime.New(ctx, runtime.Config{Logger: log})
			if err != nil {
				return &exitError{exitFailure, err}
			}
			defer eng.Close(context.Background())
			mod, err := eng.Compile(ctx, wasm, man)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			a, err := federation.NewAgent(federation.AgentConfig{Name: name, URL: hubURL, ID: cid, Key: key,
				Trainer: &federation.WasmTrainer{Mod: mod}, Data: ds, Logger: log})
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if err := a.Start(ctx); err != nil {
				return &exitError{exitFailure, err}
			}
			defer a.Close()
			fmt.Fprintf(c.OutOrStdout(), "device %s joined %s with %d examples\n", cid, hubURL, len(data.TrainY))
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			last := federation.AgentStats{}
			for {
				select {
				case <-ctx.Done():
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
	return cmd
}
