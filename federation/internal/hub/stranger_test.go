package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// tcpURL is the loopback URL of a hub listening on every interface.
func tcpURL(t *testing.T, h *hub.Hub) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(h.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	return "nats://127.0.0.1:" + port
}

func logTo(b *testutil.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// A default hub (no access file) listening on every interface: a stranger
// cannot connect without credentials nor with a made-up password; a
// device's own credentials connect, but can neither read nor write the
// hub's state, nor publish tasks, nor speak for another device.
func TestStrangerRefusedByDefault(t *testing.T) {
	var logs testutil.Buffer
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "0.0.0.0:0", Logger: logTo(&logs)})
	defer h.Shutdown()
	url := tcpURL(t, h)

	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a stranger without credentials connected to a hub listening on 0.0.0.0")
	} else {
		t.Logf("stranger: %v", err)
	}
	if nc, err := nats.Connect(url, nats.UserInfo("dev-0", "guessed"), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a stranger with a guessed password connected as dev-0")
	}
	// The key of another fleet derives another password.
	if nc, err := nats.Connect(url, append(agent.FleetOptions("dev-0", wire.DeviceKey([]byte("another fleet's secret!!"), "dev-0")), nats.Timeout(5*time.Second))...); err == nil {
		nc.Close()
		t.Fatal("another fleet's credentials connected")
	}
	t.Logf("hub log:\n%s", logs.String())
	if !strings.Contains(logs.String(), "refused a connection") {
		t.Errorf("the hub logged no refused connection:\n%s", logs.String())
	}

	// An honest device trains over the network.
	a := startAgent(t, h, url, 0, nil)
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a.Stats().Accepted == 0 {
			return fmt.Errorf("the device trained no round: %+v", a.Stats())
		}
		return nil
	})

	// A device's own credentials give no more than its own subjects.
	v := make(violations, 16)
	nc, err := nats.Connect(url, append(agent.FleetOptions("dev-1", wire.DeviceKey(secret, "dev-1")), nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	v.mustDeny(t, "write the hub's round state", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "$KV.fennec_default_state.state", []byte("garbage"))
		return err
	})
	v.mustDeny(t, "open the hub's round state", func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, "fennec_default_state")
		return err
	})
	v.mustDeny(t, "delete the hub's models", func(ctx context.Context) error {
		return js.DeleteObjectStore(ctx, "fennec_default_models")
	})
	subj := wire.For("default")
	v.mustDeny(t, "publish a task to another device", func(ctx context.Context) error {
		if err := nc.Publish(subj.TaskPrefix+"dev-0", []byte{0xa0}); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	v.mustDeny(t, "leave as another device", func(ctx context.Context) error {
		if err := nc.Publish(subj.LeavePrefix+"dev-0", []byte{0xa0}); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	v.mustDeny(t, "answer model requests", func(ctx context.Context) error {
		_, err := nc.SubscribeSync(subj.Model)
		if err == nil {
			err = nc.FlushWithContext(ctx)
		}
		if err == nil {
			<-ctx.Done()
			err = ctx.Err()
		}
		return err
	})
}

// The same hub with Insecure admits the stranger: only the explicit
// setting opens the server.
func TestInsecureAdmitsStranger(t *testing.T) {
	var logs testutil.Buffer
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "0.0.0.0:0", Insecure: true, Logger: logTo(&logs)})
	defer h.Shutdown()
	nc, err := nats.Connect(tcpURL(t, h))
	if err != nil {
		t.Fatalf("insecure hub refused a client: %v", err)
	}
	nc.Close()
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("an insecure hub does not say so:\n%s", logs.String())
	}
	if _, err := hub.New(hub.Config{DataDir: t.TempDir(), Secret: secret, Insecure: true, Access: &deploy.Access{}}); err == nil {
		t.Error("Insecure with Access accepted")
	}
}

// A hub given an external NATS server that authenticates no one, reached
// over the network, refuses to start unless Insecure says so.
func TestExternalServerWithoutAuthRefused(t *testing.T) {
	var ip net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP
			break
		}
	}
	if ip == nil {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "open", Dir: t.TempDir(), Listen: "0.0.0.0:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	_, port, _ := net.SplitHostPort(ns.Addr().String())
	url := "nats://" + net.JoinHostPort(ip.String(), port)
	init := net8.Init(1)
	h, err := hub.New(hub.Config{NATSURL: url, Secret: secret, Initial: &init})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err == nil {
		h.Shutdown()
		t.Fatalf("a hub started on %s, a server that authenticates no one", url)
	} else if !strings.Contains(err.Error(), "authenticates no one") || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("unclear refusal: %v", err)
	}
	var logs testutil.Buffer
	h = newHub(t, hub.Config{NATSURL: url, Insecure: true, Logger: logTo(&logs)})
	h.Shutdown()
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("no warning:\n%s", logs.String())
	}
}

// On a hub whose network a stranger can reach (Insecure here, so that the
// stranger can connect at all), a device acts on no task the hub did not
// MAC for it: a forged task (an attacker's round and inline model) and a
// captured genuine task replayed are refused and logged, and the device
// keeps training the hub's rounds.
func TestForgedTaskIgnored(t *testing.T) {
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Insecure: true, Deadline: 5 * time.Second})
	defer h.Shutdown()
	stranger, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	subj := wire.For("default")
	captured, err := stranger.SubscribeSync(subj.TaskPrefix + "dev-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.Flush(); err != nil {
		t.Fatal(err)
	}

	var logs testutil.Buffer
	id := "dev-0"
	a, err := agent.New(agent.Config{URL: h.ClientURL(), ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
		Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{0, 1, 2, 3}), Heartbeat: 200 * time.Millisecond, Logger: logTo(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	genuine, err := captured.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitStats(t, a, "the first round", func(s agent.Stats) bool { return s.Accepted >= 1 })

	evil := net8.Init(99)
	for i := range evil.Tensors[0].Data {
		evil.Tensors[0].Data[i] = 0x7f
	}
	enc, err := model.Marshal(evil)
	if err != nil {
		t.Fatal(err)
	}
	forged := wire.Task{Round: 999999, Version: 0, Size: uint64(len(enc)), Chunks: 1, Digest: wire.Digest(enc), Inline: enc,
		Settings: wire.Settings{LR: 1e6, Epochs: 1, BatchSize: 1, Mode: "weights"}, DeadlineMS: time.Now().Add(time.Minute).UnixMilli(),
		MAC: make([]byte, 32)}
	before := a.Stats()
	if err := stranger.Publish(subj.TaskPrefix+id, wire.Encode(forged)); err != nil {
		t.Fatal(err)
	}
	if err := stranger.Publish(subj.TaskPrefix+id, genuine.Data); err != nil { // a replay
		t.Fatal(err)
	}
	if err := stranger.Flush(); err != nil {
		t.Fatal(err)
	}
	waitStats(t, a, "the forged and replayed tasks refused", func(s agent.Stats) bool { return s.Forged >= before.Forged+2 })
	log := logs.String()
	if !strings.Contains(log, "task refused") || !strings.Contains(log, "not sent by the hub") || !strings.Contains(log, "a replay") {
		t.Errorf("the device did not log the refused tasks:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "round=999999") && !strings.Contains(line, "task refused") {
			t.Errorf("the device acted on the forged round: %s", line)
		}
	}
	// It keeps training the hub's rounds, from the hub's model.
	waitStats(t, a, "another genuine round", func(s agent.Stats) bool { return s.Accepted > before.Accepted+1 })
	if g := h.Global(); g.Tensors[0].Data[0] == 0x7f && g.Tensors[0].Data[1] == 0x7f {
		t.Fatal("the attacker's model reached the global model")
	}
}

func waitStats(t *testing.T, a *agent.Agent, what string, ok func(agent.Stats) bool) {
	t.Helper()
	testutil.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		if !ok(a.Stats()) {
			return fmt.Errorf("waiting for %s: %+v", what, a.Stats())
		}
		return nil
	})
}

// A captured heartbeat (a join) replayed on the device's leave subject is
// refused (join and leave are separate MAC domains), and replayed as a
// join it is refused too (each device's timestamps must increase): the
// device stays available.
func TestJoinReplayedAsLeave(t *testing.T) {
	var logs testutil.Buffer
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Insecure: true, MinDevices: 2, Logger: logTo(&logs)})
	defer h.Shutdown()
	stranger, err := nats.Connect(h.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	subj := wire.For("default")
	heartbeats, err := stranger.SubscribeSync(subj.JoinPrefix + "dev-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.Flush(); err != nil {
		t.Fatal(err)
	}
	// One join, no heartbeat for the test's length: the device stays
	// available (DeviceTTL) unless a leave removes it.
	a, err := agent.New(agent.Config{URL: h.ClientURL(), ID: "dev-0", Key: wire.DeviceKey(secret, "dev-0"), Trainer: net8,
		Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{0, 1}), Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	hb, err := heartbeats.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	available := func() bool { return strings.Contains(strings.Join(h.Available(), ","), "dev-0") }
	if !available() {
		t.Fatal("dev-0 is not available after its join")
	}
	if err := stranger.Publish(subj.LeavePrefix+"dev-0", hb.Data); err != nil {
		t.Fatal(err)
	}
	if err := stranger.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 3*time.Second, 5*time.Millisecond, func() error {
		if !available() {
			t.Fatal("a captured join replayed as a leave removed dev-0")
		}
		if !strings.Contains(logs.String(), "leave refused") {
			return fmt.Errorf("the hub did not log the refused leave:\n%s", logs.String())
		}
		return nil
	})
	if !available() {
		t.Fatal("a captured join replayed as a leave removed dev-0")
	}
	reply, err := stranger.Request(subj.JoinPrefix+"dev-0", hb.Data, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack, _ := wire.DecodeAck(reply.Data); ack.OK || !strings.Contains(ack.Error, "replayed") {
		t.Errorf("replayed join accepted: %+v", ack)
	}
}

// A hub whose round state is corrupt (garbage written into the KV bucket
// while it was down, through a server opened on its store) starts from the
// last good model, never reuses a round id, and says so in its log; so
// does a hub whose state key was deleted.
func TestCorruptStateRecovers(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func(context.Context, jetstream.KeyValue) error
	}{
		{"garbage", func(ctx context.Context, kv jetstream.KeyValue) error {
			_, err := kv.Put(ctx, "state", []byte("\xff\x00 not cbor"))
			return err
		}},
		{"deleted", func(ctx context.Context, kv jetstream.KeyValue) error { return kv.Delete(ctx, "state") }},
		{"bad checkpoint", func(ctx context.Context, kv jetstream.KeyValue) error {
			st := hub.State{NextRound: 3, Version: 9, Model: "model-9", Digest: make([]byte, 32), Strategy: "fedavg"}
			b, _ := model.Marshal(st)
			_, err := kv.Put(ctx, "state", b)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHub(t, hub.Config{DataDir: dir, Rounds: 2, Deadline: 5 * time.Second})
			startAgent(t, h, "", 0, nil)
			wait(t, h, 20*time.Second)
			g2 := h.Global()
			var last uint64
			for _, r := range h.Reports() {
				last = max(last, r.Round)
			}
			h.Shutdown()

			ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "intruder", Dir: dir, Listen: "-"})
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect("", nats.InProcessServer(ns))
			if err != nil {
				t.Fatal(err)
			}
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			kv, err := js.KeyValue(ctx, "fennec_default_state")
			if err == nil {
				err = c.corrupt(ctx, kv)
			}
			cancel()
			nc.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
			if err != nil {
				t.Fatal(err)
			}

			var logs testutil.Buffer
			init := net8.Init(1)
			h2, err := hub.New(hub.Config{DataDir: dir, Listen: "-", Secret: secret, Initial: &init, Rounds: 3, Deadline: 5 * time.Second, Logger: logTo(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			if err := h2.Start(); err != nil {
				t.Fatalf("a hub with corrupt state refused to start: %v", err)
			}
			defer h2.Shutdown()
			if v := h2.Version(); v != 2 {
				t.Fatalf("resumed at version %d, want 2 (the last good model)", v)
			}
			if g := h2.Global(); string(g.Tensors[0].Data) != string(g2.Tensors[0].Data) {
				t.Fatal("resumed model differs from the last good one")
			}
			if log := logs.String(); !strings.Contains(log, "unusable") || !strings.Contains(log, "recovered") {
				t.Errorf("the hub did not log the recovery:\n%s", log)
			}
			startAgent(t, h2, "", 0, nil)
			wait(t, h2, 20*time.Second)
			for _, r := range h2.Reports() {
				if r.Round <= last {
					t.Fatalf("round id %d reused after recovery (last before: %d)", r.Round, last)
				}
			}
		})
	}
}

// A hub whose listen address is taken fails at once with an error that
// names it, not after the server's 30-second readiness wait.
func TestHubBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	init := net8.Init(1)
	h, err := hub.New(hub.Config{DataDir: t.TempDir(), Listen: addr, Secret: secret, Initial: &init})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- h.Start() }()
	select {
	case err := <-done:
		if err == nil {
			h.Shutdown()
			t.Fatal("a hub started on a port in use")
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("the error does not name %s: %v", addr, err)
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("a hub on a port in use did not fail within 5s")
	}
}

// The documented external-server setup: a NATS server configured with a
// hub user and the devices' entries from `fennec hub creds --nats-user`
// (federation.DeviceNATSUser): the devices train, a stranger cannot
// connect, and a device cannot touch the hub's state.
func TestExternalServerWithDeviceUsers(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\nauthorization { users = [\n  { user: hub, password: hub-password }\n", port, filepath.Join(dir, "js"))
	for i := range 2 {
		id := fmt.Sprintf("dev-%d", i)
		conf += "  " + federation.DeviceNATSUser("default", id, wire.DeviceKey(secret, id))
	}
	conf += "] }\n"
	path := filepath.Join(dir, "n.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the device entries do not parse as NATS configuration: %v\n%s", err, conf)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	h := newHub(t, hub.Config{NATSURL: fmt.Sprintf("nats://hub:hub-password@127.0.0.1:%d", port), Rounds: 2, MinDevices: 2, Deadline: 5 * time.Second})
	defer h.Shutdown()
	for i := range 2 {
		startAgent(t, h, url, i, nil)
	}
	wait(t, h, 20*time.Second)
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a stranger connected")
	}
	v := make(violations, 16)
	nc, err := nats.Connect(url, append(agent.FleetOptions("dev-1", wire.DeviceKey(secret, "dev-1")), nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	v.mustDeny(t, "write the hub's round state", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "$KV.fennec_default_state.state", []byte("garbage"))
		return err
	})
}
