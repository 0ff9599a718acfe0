package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/routines"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/runtime"
)

func init() {
	register(newDeployCmd)
	register(newStatusCmd)
}

// natsFlags are the connection flags shared by deploy and status.
type natsFlags struct {
	url, creds string
	tls        tlsFlags
}

func (f *natsFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.url, "nats", "nats://127.0.0.1:4222", "NATS server (the hub) to connect to")
	c.Flags().StringVar(&f.creds, "creds", "", "nkey seed file to authenticate with (from `fennec deploy nkey`)")
	f.tls.addClient(c, false)
}

// connect connects; the server's permission violations, which NATS reports
// asynchronously, arrive on denied so that a command can stop waiting.
func (f *natsFlags) connect(name, device string) (*nats.Conn, error) {
	nc, _, err := f.connectDenied(name, device)
	return nc, err
}

func (f *natsFlags) connectDenied(name, device string) (*nats.Conn, <-chan error, error) {
	denied := make(chan error, 1)
	opts := []nats.Option{nats.Name(name), nats.Timeout(5 * time.Second), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case denied <- err:
			default:
			}
		}
	})}
	if f.creds != "" {
		co, err := deploy.ConnectOptions(f.creds, device)
		if err != nil {
			return nil, nil, badInput(err)
		}
		opts = append(opts, co...)
	}
	tc, err := f.tls.client()
	if err != nil {
		return nil, nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(f.url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", f.url, err)
	}
	return nc, denied, nil
}

// signalContext ends on Ctrl-C, SIGTERM or the end of the command's context.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func newDeployCmd() *cobra.Command {
	var nf natsFlags
	var group, trustPath, operator string
	canaryPct := percent(100)
	var wait time.Duration
	c := &cobra.Command{
		Use:   "deploy BUNDLE --group NAME [--canary N]",
		Short: "Roll a signed bundle out to a device group, and run the rollout server and device agents",
		Long: "Publish BUNDLE to the hub's JetStream object store and make it the desired state of\n" +
			"group NAME (for N percent of its devices with --canary N). Devices verify, compile,\n" +
			"health-check and swap it in; with --wait the command shows the rollout's progress\n" +
			"until every selected device has updated, refused or failed, or the time is up.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if group == "" {
				return &exitError{exitUsage, errors.New("--group is required")}
			}
			canary := int(canaryPct)
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return badInput(err)
			}
			if trustPath != "" {
				tr, err := deploy.LoadTrust(trustPath)
				if err != nil {
					return badInput(err)
				}
				if _, err := tr.VerifyBytes(raw, deploy.Limits{}, deploy.Running{}); err != nil {
					return &exitError{exitFailure, fmt.Errorf("not deploying: %w", err)}
				}
			}
			nc, denied, err := nf.connectDenied("fennec-deploy", "")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := signalContext(cmd)
			defer cancel()
			if operator == "" && nf.creds != "" {
				operator = strings.TrimSuffix(filepath.Base(nf.creds), filepath.Ext(nf.creds))
			}
			pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
			dctx, dcancel := context.WithCancelCause(pctx)
			var watch routines.Group
			watch.Go(func() {
				select {
				case v := <-denied:
					dcancel(v)
				case <-dctx.Done():
				}
			})
			d, err := deploy.Publish(dctx, nc, raw, group, canary, operator)
			cause := context.Cause(dctx)
			dcancel(nil)
			watch.CloseAndWait()
			pcancel()
			if errors.Is(cause, nats.ErrPermissionViolation) {
				return &exitError{exitFailure, fmt.Errorf("not allowed to deploy with these credentials: %w", cause)}
			}
			if err != nil {
				if _, ok := deploy.IsRefused(err); ok || errors.Is(err, deploy.ErrMalformed) {
					return badInput(err)
				}
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "deployed %s %s (digest %.12s) to group %s, canary %d%%\n", d.Module, d.Version, d.Digest, group, d.Canary)
			if wait <= 0 {
				return nil
			}
			return watchRollout(ctx, w, nc, group, d.Digest, wait)
		},
	}
	nf.add(c)
	c.Flags().StringVar(&group, "group", "", "device group to deploy to")
	c.Flags().Var(&canaryPct, "canary", "percent of the group's devices that install the bundle (1-100, e.g. 10 or 10%)")
	c.Flags().StringVar(&trustPath, "trust", "", "check the bundle against this trust file before publishing")
	c.Flags().StringVar(&operator, "operator", "", "operator name recorded in the desired state (default: the creds file's name)")
	c.Flags().DurationVar(&wait, "wait", 0, "show the rollout's progress for up to this long (e.g. 2m)")
	c.AddCommand(newDeployNkeyCmd(), newDeployServerCmd(), newDeployAgentCmd())
	return c
}

// percent is a flag value accepting "10" or "10%".
type percent int

func (p *percent) String() string { return fmt.Sprintf("%d%%", int(*p)) }
func (p *percent) Type() string   { return "N%" }
func (p *percent) Set(s string) error {
	var n int
	if _, err := fmt.Sscanf(strings.TrimSuffix(s, "%"), "%d", &n); err != nil || n < 1 || n > 100 || strings.Count(s, "%") > 1 {
		return fmt.Errorf("%q is not a percentage from 1 to 100", s)
	}
	*p = percent(n)
	return nil
}

// watchRollout prints the rollout's progress until it settles or max passes.
func watchRollout(ctx context.Context, w io.Writer, nc *nats.Conn, group, digest string, max time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	tty := isTerminal(w)
	last := ""
	for {
		gs, err := deploy.Status(ctx, nc, group)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if len(gs) == 1 && gs[0].Desired != nil && gs[0].Desired.Digest == digest {
			sel, done, failed := gs[0].Progress()
			if sel == 0 && len(gs[0].Devices) > 0 {
				fmt.Fprintf(w, "no reporting device of group %s is in the %d%% canary\n", group, gs[0].Desired.Canary)
				return nil
			}
			line := fmt.Sprintf("rollout %s %s: %s %d/%d updated, %d failed", gs[0].Desired.Module, gs[0].Desired.Version, bar(done, failed, sel), done, sel, failed)
			if line != last {
				if tty {
					fmt.Fprintf(w, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(w, line)
				}
				last = line
			}
			if sel > 0 && done+failed == sel {
				if tty {
					fmt.Fprintln(w)
				}
				if failed > 0 {
					printDevices(w, gs)
					return &exitError{exitFailure, fmt.Errorf("%d of %d devices did not update", failed, sel)}
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return &exitError{exitFailure, errors.New("rollout still in progress when --wait ran out; see `fennec status`")}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func bar(done, failed, total int) string {
	const width = 20
	if total == 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	d := done * width / total
	f := failed * width / total
	return "[" + strings.Repeat("#", d) + strings.Repeat("x", f) + strings.Repeat(".", width-d-f) + "]"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newStatusCmd() *cobra.Command {
	var nf natsFlags
	var group string
	var watch time.Duration
	c := &cobra.Command{
		Use:   "status [--group NAME]",
		Short: "Show each device's module version, health, last report and the rollout's progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := nf.connect("fennec-status", "")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := signalContext(cmd)
			defer cancel()
			w := cmd.OutOrStdout()
			for {
				sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
				gs, err := deploy.Status(sctx, nc, group)
				scancel()
				if err != nil {
					return err
				}
				if watch > 0 && isTerminal(w) {
					fmt.Fprint(w, "\033[H\033[2J")
				}
				printDevices(w, gs)
				if watch <= 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watch):
				}
			}
		},
	}
	nf.add(c)
	c.Flags().StringVar(&group, "group", "", "show only this group")
	c.Flags().DurationVar(&watch, "watch", 0, "refresh at this interval until interrupted (e.g. 1s)")
	return c
}

func printDevices(w io.Writer, gs []deploy.GroupState) {
	if len(gs) == 0 {
		fmt.Fprintln(w, "no groups or devices yet")
		return
	}
	now := time.Now()
	for _, g := range gs {
		if g.Desired != nil {
			sel, done, failed := g.Progress()
			fmt.Fprintf(w, "group %s: desired %s %s (digest %.12s, canary %d%%, by %s) %s %d/%d updated, %d failed\n",
				g.Group, g.Desired.Module, g.Desired.Version, g.Desired.Digest, g.Desired.Canary, g.Desired.Operator, bar(done, failed, sel), done, sel, failed)
		} else {
			fmt.Fprintf(w, "group %s: nothing deployed\n", g.Group)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  DEVICE\tMODULE\tVERSION\tPREVIOUS\tHEALTH\tSTATE\tLAST SEEN\tREASON")
		for _, d := range g.Devices {
			health := "ok"
			if !d.Healthy {
				health = "-"
			}
			mod := d.Module
			if mod == "" {
				mod = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", d.Device, mod, dash(d.Version), dash(d.Previous), health, d.State,
				now.Sub(d.LastSeen).Round(time.Second), oneLine(d.Reason))
		}
		tw.Flush()
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

func newDeployNkeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nkey FILE",
		Short: "Create a NATS credential (user nkey seed, mode 0600) for a device or operator and print its public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := deploy.GenerateNkey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nnkey = %q\n", args[0], pub)
			return nil
		},
	}
}

func newDeployServerCmd() *cobra.Command {
	var dir, listen, accessPath string
	var tf tlsFlags
	c := &cobra.Command{
		Use:   "server --access access.toml --dir DIR",
		Short: "Run a NATS server with JetStream and per-device permissions for rollouts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if accessPath == "" || dir == "" {
				return &exitError{exitUsage, errors.New("--access and --dir are required")}
			}
			acc, err := deploy.LoadAccess(accessPath)
			if err != nil {
				return badInput(err)
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			tc, err := tf.server()
			if err != nil {
				return err
			}
			srv, err := deploy.StartServer(ctx, deploy.ServerConfig{Dir: dir, Listen: listen, Access: acc, TLS: tc, AllowPlaintext: tf.allowPlaintext})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rollout server listening on %s (%d devices, %d operators)\n", srv.ClientURL(), len(acc.Devices), len(acc.Operators))
			<-ctx.Done()
			srv.Shutdown()
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for JetStream's files")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "client address")
	c.Flags().StringVar(&accessPath, "access", "", "access file listing devices (id, group, nkey) and operators (name, nkey)")
	tf.addServer(c)
	return c
}

// rolloutFlags are a device's rollout settings, shared by `fennec deploy
// agent` and `fennec agent --group`.
type rolloutFlags struct {
	group, dir, trustPath string
	heartbeat             time.Duration
	domain                string // the hub's JetStream domain, behind a leaf node
}

func (r *rolloutFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&r.group, "group", "", "this device's group (as in the access file); receive its rollouts")
	c.Flags().StringVar(&r.dir, "dir", "", "rollout state directory: stored bundles and audit.log")
	c.Flags().StringVar(&r.trustPath, "trust", "", "trust file: publisher and operator keys this device accepts")
	c.Flags().DurationVar(&r.heartbeat, "heartbeat", 5*time.Second, "rollout status report interval")
}

func (r *rolloutFlags) check() error {
	if r.group == "" || r.dir == "" || r.trustPath == "" {
		return &exitError{exitUsage, errors.New("--group, --dir and --trust are required to receive rollouts")}
	}
	return nil
}

// openRollout opens device id's rollout side (deploy.OpenDevice) on eng.
// models is eng's model set (Services.NN), where bundled models go.
func openRollout(ctx context.Context, eng *runtime.Engine, models *hostfuncs.ModelSet, id string, r rolloutFlags, log *slog.Logger) (*deploy.Device, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	dev, err := deploy.OpenDevice(ctx, deploy.DeviceConfig{Engine: eng, Models: models, ID: id, Group: r.group, Dir: r.dir,
		TrustFile: r.trustPath, Heartbeat: r.heartbeat, Domain: r.domain, Logger: log})
	if errors.Is(err, deploy.ErrBadTrustFile) {
		return nil, badInput(err)
	}
	return dev, err
}

func newDeployAgentCmd() *cobra.Command {
	var nf natsFlags
	var rf rolloutFlags
	var id string
	c := &cobra.Command{
		Use:   "agent --id ID --group NAME --trust trust.toml --dir DIR --creds ID.nk",
		Short: "Run a device's rollout agent: run the stored module, apply its group's desired state, report status",
		Long: "Run a device's rollout agent only. `fennec agent --group NAME` runs the same agent\n" +
			"beside federated training, on the device's one connection to `fennec hub`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" {
				return &exitError{exitUsage, errors.New("--id, --group, --dir and --trust are required")}
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			// Models that bundles carry are registered here (by digest).
			models := hostfuncs.NewModelSet(nil, onnx.Options{})
			defer models.Close()
			eng, err := newEngine(ctx, log, runtime.Config{Logger: log, Services: &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: models}}})
			if err != nil {
				return err
			}
			defer eng.Close(context.Background())
			rd, err := openRollout(ctx, eng, models, id, rf, log)
			if err != nil {
				return err
			}
			defer rd.Close()
			nc, err := nf.connect("fennec-agent-"+id, id)
			if err != nil {
				return err
			}
			defer nc.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s (group %s) running\n", id, rf.group)
			return rd.Run(ctx, nc)
		},
	}
	nf.add(c)
	c.Flags().StringVar(&id, "id", "", "this device's id (as in the access file)")
	rf.add(c)
	return c
}
