package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/routines"
)

// RolloutGroup is the device group the demo's devices form for rollouts.
const RolloutGroup = "ward"

// RolloutStats describe the demo's rollout of risk-infer (with --http).
type RolloutStats struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	Group   string `json:"group"`
	// Canary is the first step's percentage and CanaryDevices the devices
	// it selected; both steps' time until every selected device ran the
	// bundle (fetched, signature and digest verified, compiled, health
	// checked, swapped in).
	Canary        int     `json:"canary_percent"`
	CanaryDevices int     `json:"canary_devices"`
	Devices       int     `json:"devices"`
	CanaryMillis  float64 `json:"canary_ms"`
	FullMillis    float64 `json:"full_ms"`
}

// fleet is the demo's rollout side, as a fleet runs it: a rollout server
// (NATS with JetStream, nkey access per device and for the operator), a
// publisher key the devices trust, and on every simulated device a rollout
// agent that installs what its group's desired state names into a
// Deployer of its own, on the device's runtime.
type fleet struct {
	dir      string
	srv      *deploy.Server
	operator *nats.Conn
	pub      *deploy.PrivateKey
	ids      []string
	devs     []*deploy.Device
	conns    []*nats.Conn
	cancel   context.CancelFunc
	g        routines.Group
}

// startFleet starts the rollout server and an agent on each device.
func startFleet(ctx context.Context, devs []*demoDevice, log *slog.Logger) (_ *fleet, err error) {
	dir, err := os.MkdirTemp("", "fennec-demo-fleet-*")
	if err != nil {
		return nil, err
	}
	f := &fleet{dir: dir}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	acc := &deploy.Access{}
	seed := func(name string) string { return filepath.Join(dir, "keys", name+".nk") }
	nk, err := deploy.GenerateNkey(seed("operator"))
	if err != nil {
		return nil, err
	}
	acc.Operators = append(acc.Operators, deploy.OperatorAccess{Name: "demo", Nkey: nk, Role: deploy.RoleDeploy})
	for i := range devs {
		id := federation.SimDeviceID(i)
		nk, err := deploy.GenerateNkey(seed(id))
		if err != nil {
			return nil, err
		}
		acc.Devices = append(acc.Devices, deploy.DeviceAccess{ID: id, Group: RolloutGroup, Nkey: nk})
		f.ids = append(f.ids, id)
	}
	if f.srv, err = deploy.StartServer(ctx, deploy.ServerConfig{Dir: filepath.Join(dir, "server"), Listen: "-", Access: acc}); err != nil {
		return nil, err
	}
	connect := func(name, device string, more ...nats.Option) (*nats.Conn, error) {
		opts, err := deploy.ConnectOptions(seed(name), device)
		if err != nil {
			return nil, err
		}
		return f.srv.Connect(append(opts, more...)...)
	}
	// The dashboard reads rollouts through the operator's connection, and
	// also asks it for uplink streams, which this server does not have
	// and an operator may not read: those refusals are expected here.
	quiet := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Debug("rollout server", "err", err) })
	if f.operator, err = connect("operator", "", quiet); err != nil {
		return nil, err
	}
	// The publisher's signing key, and the trust file every device holds.
	if f.pub, err = deploy.GenerateKey("demo-publisher", deploy.RolePublisher); err != nil {
		return nil, err
	}
	trust := filepath.Join(dir, "trust.toml")
	if err := os.WriteFile(trust, fmt.Appendf(nil, "[[publisher]]\nname = \"demo-publisher\"\nkey = %q\n", deploy.FormatKey(f.pub.Public().Key)), 0o600); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for i, id := range f.ids {
		dev, err := deploy.OpenDevice(ctx, deploy.DeviceConfig{Engine: devs[i].eng, ID: id, Group: RolloutGroup,
			Dir: filepath.Join(dir, "devices", id), TrustFile: trust, Heartbeat: time.Second, Logger: log})
		if err != nil {
			return nil, err
		}
		f.devs = append(f.devs, dev)
		nc, err := connect(id, id)
		if err != nil {
			return nil, err
		}
		f.conns = append(f.conns, nc)
		f.g.Go(func() {
			if err := dev.Run(rctx, nc); err != nil {
				log.Warn("rollout agent", "device", id, "err", err)
			}
		})
	}
	return f, nil
}

// rollout signs manifest and wasm as a bundle and deploys it to the group
// as an operator would with `fennec deploy --canary`: first to canary
// percent of the devices, then, once every one of those runs it, to all.
func (f *fleet) rollout(ctx context.Context, manifest, wasm []byte, canary int) (*RolloutStats, error) {
	b, err := deploy.Pack(manifest, wasm)
	if err != nil {
		return nil, err
	}
	if err := b.Sign(f.pub, false); err != nil {
		return nil, err
	}
	raw, err := b.Encode()
	if err != nil {
		return nil, err
	}
	st := &RolloutStats{Module: b.Name(), Version: b.Version(), Digest: b.Digest(), Group: RolloutGroup, Canary: canary, Devices: len(f.ids)}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, pct := range []int{canary, 100} {
		t0 := time.Now()
		d, err := deploy.Publish(ctx, f.operator, raw, RolloutGroup, pct, "demo")
		if err != nil {
			return nil, err
		}
		sel, err := f.settle(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("rollout of %s %s at %d%%: %w", d.Module, d.Version, pct, err)
		}
		if pct == canary {
			st.CanaryDevices, st.CanaryMillis = sel, float64(time.Since(t0).Microseconds())/1000
		} else {
			st.FullMillis = float64(time.Since(t0).Microseconds()) / 1000
		}
	}
	return st, nil
}

// settle waits until every device d's canary selects runs it, and fails
// when one refuses, fails its health check or rolls back; a canary that
// selects no device is settled at once.
func (f *fleet) settle(ctx context.Context, d deploy.Desired) (int, error) {
	for {
		gs, err := deploy.Status(ctx, f.operator, RolloutGroup)
		if err != nil && ctx.Err() == nil {
			return 0, err
		}
		if len(gs) == 1 && gs[0].Desired != nil && gs[0].Desired.ID == d.ID && len(gs[0].Devices) == len(f.ids) {
			sel, done, failed := gs[0].Progress()
			if sel == 0 {
				// The canary is a hash of the digest and each device
				// (deploy.Desired.InCanary): a small percentage of a
				// few devices can select none (25 % of 3: 42 % of
				// digests), and then there is nothing to wait for.
				return 0, nil
			}
			if failed > 0 {
				for _, ds := range gs[0].Devices {
					if ds.Rollout == d.ID && ds.State != deploy.StateRunning {
						return 0, fmt.Errorf("device %s: %s: %s", ds.Device, ds.State, ds.Reason)
					}
				}
				return 0, fmt.Errorf("%d of %d devices did not update", failed, sel)
			}
			if sel > 0 && done == sel {
				return sel, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, errors.New("the devices had not all updated when the time ran out")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deployed is device i's Deployer, which serves the module rolled out.
func (f *fleet) deployed(i int) *deploy.Deployer { return f.devs[i].Deployer() }

// close stops the agents, the devices' Deployers and the server, and
// removes the fleet's files.
func (f *fleet) close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.g.CloseAndWait()
	for _, dev := range f.devs {
		dev.Close()
	}
	for _, nc := range f.conns {
		nc.Close()
	}
	if f.operator != nil {
		f.operator.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
	}
	os.RemoveAll(f.dir)
}
