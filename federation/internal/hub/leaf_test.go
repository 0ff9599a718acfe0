package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// startLeaf runs device id's leaf node against h's leaf listener, with
// cfg's credentials, and returns an in-process client of it with the
// device's inbox (as fennec agent --leaf connects).
func startLeaf(t *testing.T, h *hub.Hub, cfg leaf.Config) (*leaf.Node, *nats.Conn) {
	t.Helper()
	cfg.Hub, cfg.Dir, cfg.Reconnect = h.LeafURL(), t.TempDir(), 50*time.Millisecond
	n, err := leaf.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !n.Connected() {
			return fmt.Errorf("leaf %s not connected to %s", cfg.Device, cfg.Hub)
		}
		return nil
	})
	nc, err := nats.Connect("", nats.InProcessServer(n.Server()), nats.CustomInboxPrefix(deploy.InboxPrefix(cfg.Device)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return n, nc
}

// Devices behind their own leaf nodes train with an access-controlled
// hub, and what they publish on their outbox subjects reaches the hub's
// uplink stream; a fleet device (no access file) does the same with its
// password.
func TestLeafTrainingAndUplink(t *testing.T) {
	for _, withAccess := range []bool{true, false} {
		t.Run(fmt.Sprintf("access=%v", withAccess), func(t *testing.T) {
			ids := []string{"dev-0", "dev-1"}
			cfg := hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0",
				Rounds: 2, MinDevices: 2, Deadline: 5 * time.Second}
			acc, seeds := accessFleet(t, ids...)
			if withAccess {
				cfg.Access = acc
			}
			h := newHub(t, cfg)
			defer h.Shutdown()
			for i, id := range ids {
				lc := leaf.Config{Device: id}
				if withAccess {
					kp, err := deploy.LoadNkey(seeds[id])
					if err != nil {
						t.Fatal(err)
					}
					lc.Nkey = kp
				} else {
					lc.User, lc.Password = id, wire.DevicePassword(wire.DeviceKey(secret, id))
				}
				_, nc := startLeaf(t, h, lc)
				a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
					Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20}), Heartbeat: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Start(context.Background()); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				t.Cleanup(a.Close)
				js, _ := jetstream.New(nc)
				if _, err := js.Publish(context.Background(), "alerts."+id, []byte("alert from "+id)); err != nil {
					t.Fatal(err)
				}
			}
			wait(t, h, 30*time.Second)
			if reps := h.Reports(); len(reps) != 2 || reps[1].Received != 2 {
				t.Fatalf("reports %+v", reps)
			}
			ctx := context.Background()
			// The hub adds a device's source when it joins; if that first
			// source request went out before the leaf's JetStream could
			// answer (a loaded machine), nats-server waits out the request
			// (srcConsumerWaitTime, 30 s) and backs off 10 s before it asks
			// again: hence the bound, as in internal/leaf's outage tests.
			testutil.CheckFor(t, 75*time.Second, 20*time.Millisecond, func() error {
				s, err := h.Uplink(ctx)
				if err != nil {
					return err
				}
				info, err := s.Info(ctx)
				if err != nil {
					return err
				}
				if info.State.Msgs != 2 {
					return fmt.Errorf("uplink holds %d messages, want 2 (sources %d)", info.State.Msgs, len(info.Sources))
				}
				return nil
			})
		})
	}
}

// A leaf is confined exactly as its device's connection: its local
// clients reach the hub on the device's own subjects only.
func TestLeafConfinedToItsDevice(t *testing.T) {
	ids := []string{"dev-0", "dev-1"}
	acc, seeds := accessFleet(t, ids...)
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", Access: acc,
		MinDevices: 5, Deadline: 5 * time.Second})
	defer h.Shutdown()
	kp, err := deploy.LoadNkey(seeds["dev-0"])
	if err != nil {
		t.Fatal(err)
	}
	// Its outbox also captures a subject that names dev-1: the hub files
	// what comes from dev-0's outbox under dev-0 whatever its subject.
	_, nc := startLeaf(t, h, leaf.Config{Device: "dev-0", Nkey: kp, Subjects: []string{"alerts.dev-0", "alerts.dev-1"}})
	ljs, _ := jetstream.New(nc)
	if _, err := ljs.Publish(context.Background(), "alerts.dev-1", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 75*time.Second, 20*time.Millisecond, func() error { // nats-server's source retry: see TestLeafTrainingAndUplink
		s, err := h.Uplink(context.Background())
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(context.Background(), ">")
		if err != nil {
			return err
		}
		if m.Subject != "uplink.dev-0.alerts.dev-1" || string(m.Data) != "forged" {
			t.Fatalf("uplink filed dev-0's message as %q", m.Subject)
		}
		return nil
	})
	subj := wire.For("default")
	join := func(as string) []byte {
		j := wire.Join{Device: as, TimeMS: time.Now().UnixMilli(), Nonce: 1}
		wire.SignJoin(wire.DeviceKey(secret, as), &j)
		return wire.Encode(j)
	}
	// Allowed: its own join, answered by the hub through the leaf.
	if msg, err := nc.Request(subj.JoinPrefix+"dev-0", join("dev-0"), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if ack, _ := wire.DecodeAck(msg.Data); !ack.OK {
		t.Fatalf("own join: %+v", ack)
	}
	// Refused: speaking for another device (with its key even). The
	// leaf drops it (the hub told it the device's permissions), so the
	// request gets no answer.
	for _, s := range []string{subj.JoinPrefix + "dev-1", subj.UpdatePrefix + "dev-1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		if msg, err := nc.RequestWithContext(ctx, s, join("dev-1")); err == nil {
			t.Errorf("request on %s through dev-0's leaf answered: %q", s, msg.Data)
		}
		cancel()
	}
	// The hub's JetStream: the device's rollout buckets yes, the hub's
	// round state no.
	js, err := jetstream.NewWithDomain(nc, leaf.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, err := js.KeyValue(ctx, deploy.BucketDesired); err != nil {
		t.Errorf("the group's desired state through the leaf: %v", err)
	}
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	if _, err := js.KeyValue(ctx, "fennec_default_state"); err == nil {
		t.Error("the hub's round state readable through the leaf")
	}
	cancel()
	// Receiving: the leaf asks the hub for the device's own task subject
	// (the hub's account sees the interest), never for another device's
	// tasks or inbox (the hub refuses the interest).
	for _, sub := range []string{subj.TaskPrefix + "dev-1", deploy.InboxPrefix("dev-1") + ".x", hub.HubInboxPrefix + ".x", subj.TaskPrefix + "dev-0"} {
		if _, err := nc.SubscribeSync(sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	gacc := h.Server().GlobalAccount()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !gacc.SubscriptionInterest(subj.TaskPrefix + "dev-0") {
			return fmt.Errorf("the hub sees no interest in dev-0's tasks")
		}
		return nil
	})
	for _, s := range []string{subj.TaskPrefix + "dev-1", deploy.InboxPrefix("dev-1") + ".x", hub.HubInboxPrefix + ".x"} {
		if gacc.SubscriptionInterest(s) {
			t.Errorf("dev-0's leaf receives %s on the hub", s)
		}
	}
}

// A privacy mode whose steps the hub asks each device (secagg) works with
// the devices behind their leaf nodes: the device answers each step on the
// hub's private inbox through its leaf.
func TestLeafModeSteps(t *testing.T) {
	ids := []string{"dev-0", "dev-1", "dev-2"}
	acc, seeds := accessFleet(t, ids...)
	mh, err := modes.NewHub("secagg", modes.Config{Population: ids})
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", Access: acc,
		Rounds: 1, MinDevices: 3, Deadline: 20 * time.Second, Mode: "secagg", ModeHub: mh})
	defer h.Shutdown()
	for i, id := range ids {
		kp, err := deploy.LoadNkey(seeds[id])
		if err != nil {
			t.Fatal(err)
		}
		_, nc := startLeaf(t, h, leaf.Config{Device: id, Nkey: kp})
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data:      sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20, i + 30}),
			Heartbeat: 200 * time.Millisecond,
			NewMode:   func(m string) (hook.ClientTransform, error) { return modes.NewClient(m, id, modes.Config{}) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(a.Close)
	}
	wait(t, h, 60*time.Second)
	if reps := h.Reports(); len(reps) != 1 || reps[0].Status != "completed" || reps[0].Received != 3 {
		t.Fatalf("reports %+v", reps)
	}
}
