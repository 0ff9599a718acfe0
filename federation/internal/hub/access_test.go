package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// accessFleet writes an nkey per device (all in group "g") and one operator
// ("alice") and returns the access list and the seed files by name.
func accessFleet(t *testing.T, devices ...string) (*deploy.Access, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	acc := &deploy.Access{}
	seeds := map[string]string{}
	for _, id := range append(devices, "alice") {
		seeds[id] = filepath.Join(dir, id+".nk")
		nk, err := deploy.GenerateNkey(seeds[id])
		if err != nil {
			t.Fatal(err)
		}
		if id == "alice" {
			acc.Operators = append(acc.Operators, deploy.OperatorAccess{Name: id, Nkey: nk})
		} else {
			acc.Devices = append(acc.Devices, deploy.DeviceAccess{ID: id, Group: "g", Nkey: nk})
		}
	}
	return acc, seeds
}

// violations collects the permission violations the server reports on a
// connection (asynchronously, for publishes).
type violations chan error

func (v violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		select {
		case v <- err:
		default:
		}
	}
}

// mustDeny runs do and requires the server to refuse it with a permissions
// violation (reported to the connection or returned), not a timeout.
func (v violations) mustDeny(t *testing.T, name string, do func(context.Context) error) {
	t.Helper()
	for len(v) > 0 {
		<-v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- do(ctx) }()
	select {
	case err := <-v:
		cancel()
		<-res
		t.Logf("%s: refused: %v", name, err)
	case err := <-res:
		switch {
		case err == nil:
			t.Errorf("%s: allowed", name)
		case errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "ermissions"):
			t.Logf("%s: refused: %v", name, err)
		default:
			t.Errorf("%s: failed without a permissions violation: %v", name, err)
		}
	}
}

// TestAccessTrainingAndImpersonation: with Access, devices authenticate with
// their own nkeys and train; the server refuses a device that speaks for
// another (join, update, leave), reads another's tasks or the hub's state,
// and an operator that reads or deletes the hub's buckets; unknown keys
// cannot connect.
func TestAccessTrainingAndImpersonation(t *testing.T) {
	acc, seeds := accessFleet(t, "dev-0", "dev-1", "dev-2")
	var logs testutil.Buffer
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Access: acc, Rounds: 2, MinDevices: 3, Deadline: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	defer h.Shutdown()
	connect := func(id, device string, extra ...nats.Option) *nats.Conn {
		t.Helper()
		opts, err := deploy.ConnectOptions(seeds[id], device)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(h.ClientURL(), append(opts, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	for i := range 3 {
		id := fmt.Sprintf("dev-%d", i)
		a, err := agent.New(agent.Config{Conn: connect(id, id), ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20}), Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(a.Close)
	}
	wait(t, h, 20*time.Second)
	if reps := h.Reports(); len(reps) != 2 || reps[1].Received != 3 {
		t.Fatalf("reports %+v", reps)
	}

	v := make(violations, 16)
	nc := connect("dev-0", "dev-0", nats.ErrorHandler(v.handler))
	subj := wire.For("default")
	join := func(as string) []byte {
		j := wire.Join{Device: as, TimeMS: time.Now().UnixMilli(), Nonce: 1}
		wire.SignJoin(wire.DeviceKey(secret, as), &j)
		return wire.Encode(j)
	}
	// Allowed: its own join.
	if msg, err := nc.Request(subj.JoinPrefix+"dev-0", join("dev-0"), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if ack, _ := wire.DecodeAck(msg.Data); !ack.OK {
		t.Fatalf("own join: %+v", ack)
	}
	// On its own subject, a message that names another device is refused by
	// the hub (even with that device's key).
	if msg, err := nc.Request(subj.JoinPrefix+"dev-0", join("dev-1"), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if ack, _ := wire.DecodeAck(msg.Data); ack.OK || ack.Code != "auth" {
		t.Fatalf("join as dev-1 on dev-0's subject: %+v", ack)
	}
	v.mustDeny(t, "join as another device", func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, subj.JoinPrefix+"dev-1", join("dev-1"))
		return err
	})
	v.mustDeny(t, "update as another device", func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, subj.UpdatePrefix+"dev-1", []byte{0xa0})
		return err
	})
	v.mustDeny(t, "leave as another device", func(ctx context.Context) error {
		if err := nc.Publish(subj.LeavePrefix+"dev-1", join("dev-1")); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	v.mustDeny(t, "receive another device's tasks", func(ctx context.Context) error {
		_, err := nc.SubscribeSync(subj.TaskPrefix + "dev-1")
		if err == nil {
			err = nc.FlushWithContext(ctx)
		}
		if err == nil {
			<-ctx.Done()
			err = ctx.Err()
		}
		return err
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	v.mustDeny(t, "read the hub's round state", func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, "fennec_default_state")
		return err
	})

	ov := make(violations, 16)
	op := connect("alice", "", nats.ErrorHandler(ov.handler))
	ojs, _ := jetstream.New(op)
	ov.mustDeny(t, "operator reads the hub's round state", func(ctx context.Context) error {
		_, err := ojs.KeyValue(ctx, "fennec_default_state")
		return err
	})
	ov.mustDeny(t, "operator deletes the hub's models", func(ctx context.Context) error {
		return ojs.DeleteObjectStore(ctx, "fennec_default_models")
	})
	ov.mustDeny(t, "operator joins as a device", func(ctx context.Context) error {
		_, err := op.RequestWithContext(ctx, subj.JoinPrefix+"dev-1", join("dev-1"))
		return err
	})
	ov.mustDeny(t, "operator reads the hub's replies", func(ctx context.Context) error {
		_, err := op.SubscribeSync(hub.HubInboxPrefix + ".>")
		if err == nil {
			err = op.FlushWithContext(ctx)
		}
		if err == nil {
			<-ctx.Done()
			err = ctx.Err()
		}
		return err
	})
	// The hub serves rollouts: the operator finds the deploy buckets.
	if _, err := ojs.KeyValue(context.Background(), deploy.BucketDesired); err != nil {
		t.Fatalf("operator: deploy bucket: %v", err)
	}

	// The hub logs each violation with the device or operator it was.
	for _, want := range [][2]string{{`Publish Violation - Subject \"fennec.default.join.dev-1\"`, `user="device dev-0"`},
		{`Subscription Violation - Subject \"_HUB_INBOX.>\"`, `user="operator alice"`}} {
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			found = found || strings.Contains(line, want[0]) && strings.Contains(line, want[1])
		}
		if !found {
			t.Errorf("hub log lacks %s by %s:\n%s", want[0], want[1], logs.String())
		}
	}

	// Neither an unknown key nor no credentials at all connect.
	stranger := filepath.Join(t.TempDir(), "x.nk")
	if _, err := deploy.GenerateNkey(stranger); err != nil {
		t.Fatal(err)
	}
	opts, _ := deploy.ConnectOptions(stranger, "dev-1")
	if c, err := nats.Connect(h.ClientURL(), opts...); err == nil {
		c.Close()
		t.Fatal("an unknown nkey connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unknown nkey: %v", err)
	}
	if c, err := nats.Connect(h.ClientURL()); err == nil {
		c.Close()
		t.Fatal("connected without credentials")
	}
}

// Access is for the embedded server only.
func TestAccessNeedsEmbeddedServer(t *testing.T) {
	acc, _ := accessFleet(t, "d")
	_, err := hub.New(hub.Config{NATSURL: "nats://127.0.0.1:4222", Access: acc, Secret: secret})
	if err == nil || !strings.Contains(err.Error(), "Access") {
		t.Fatalf("got %v", err)
	}
}
