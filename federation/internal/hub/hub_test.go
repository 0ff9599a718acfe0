package hub_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/testutil"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

var (
	data = sim.Vitals(800, 1)
	net8 = sim.MLP{In: data.Features, Hidden: 0, Out: 2} // softmax regression over the generated vitals
)

func newHub(t testing.TB, cfg hub.Config) *hub.Hub {
	t.Helper()
	init := net8.Init(1)
	if cfg.Initial == nil {
		cfg.Initial = &init
	}
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	if cfg.Listen == "" && cfg.NATSURL == "" {
		cfg.Listen = "-"
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	if !h.Ready(5 * time.Second) {
		t.Fatal("hub not ready")
	}
	return h
}

type slowTrainer struct {
	train.Trainer
	delay time.Duration
	// started, if set, receives the round of each training that begins
	// (without blocking).
	started chan uint64
}

func (s slowTrainer) Train(ctx context.Context, in train.Input) (train.Output, error) {
	if s.started != nil {
		select {
		case s.started <- in.Round:
		default:
		}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return train.Output{}, ctx.Err()
	}
	return s.Trainer.Train(ctx, in)
}

func startAgent(t testing.TB, h *hub.Hub, url string, i int, tr train.Trainer) *agent.Agent {
	t.Helper()
	if tr == nil {
		tr = net8
	}
	id := fmt.Sprintf("dev-%d", i)
	cfg := agent.Config{ID: id, Key: wire.DeviceKey(secret, id), Trainer: tr,
		Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20, i + 30, i + 40}), Heartbeat: 200 * time.Millisecond}
	if url != "" {
		cfg.URL = url
	} else {
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		cfg.Conn = nc
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func wait(t testing.TB, h *hub.Hub, d time.Duration) {
	t.Helper()
	select {
	case <-h.Done():
		if err := h.Err(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatalf("hub did not finish in %v (version %d, reports %+v)", d, h.Version(), h.Reports())
	}
}

// A device that dies mid-round and a straggler never stall training: the
// round closes at the deadline on quorum; a late update (valid credentials,
// a round already closed) is refused.
func TestDeviceDiesAndStraggler(t *testing.T) {
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 2, MinDevices: 4, Deadline: 600 * time.Millisecond})
	defer h.Shutdown()
	for i := 0; i < 2; i++ {
		startAgent(t, h, "", i, nil)
	}
	slow := startAgent(t, h, "", 2, slowTrainer{Trainer: net8, delay: 900 * time.Millisecond})
	started := make(chan uint64, 1)
	dying := startAgent(t, h, "", 3, slowTrainer{Trainer: net8, delay: 300 * time.Millisecond, started: started})
	// The dying device dies in the middle of its first round's training.
	select {
	case <-started:
		dying.Kill()
	case <-time.After(10 * time.Second):
		t.Fatal("the dying device was never asked to train")
	}
	wait(t, h, 10*time.Second)
	reps := h.Reports()
	if len(reps) < 2 || reps[0].Status != "completed" || reps[0].Received != 2 || len(reps[0].Dropped) != 2 {
		t.Fatalf("reports %+v", reps)
	}
	if st := slow.Stats(); st.Accepted != 0 || st.Failed == 0 {
		t.Fatalf("straggler stats %+v: it should have given up at the deadline", st)
	}
	nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	payload := wire.Encode(wire.Body{Model: net8.Init(1), NumExamples: 1})
	c := wire.Frame(wire.DeviceKey(secret, "dev-2"), "dev-2", reps[0].Round, payload, len(payload))[0]
	msg, err := nc.Request(wire.For("default").UpdatePrefix+c.Device, wire.Encode(c), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack, _ := wire.DecodeAck(msg.Data); ack.OK || ack.Code != "late" {
		t.Fatalf("late update for round %d: %+v", reps[0].Round, ack)
	}
}

func TestBadCredentials(t *testing.T) {
	h := newHub(t, hub.Config{DataDir: t.TempDir()})
	defer h.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a, err := agent.New(agent.Config{Conn: nc, ID: "mallory", Key: []byte("not-the-right-key!"), Trainer: net8,
		Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{0, 1})})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("join with a wrong key: %v", err)
	}
	// A forged update for a device that is not sampled is refused too.
	payload := wire.Encode(wire.Body{Model: net8.Init(1), NumExamples: 1})
	c := wire.Frame([]byte("not dev-0's key"), "dev-0", 1, payload, len(payload))[0]
	msg, err := nc.Request(wire.For("default").UpdatePrefix+c.Device, wire.Encode(c), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ack, _ := wire.DecodeAck(msg.Data); ack.OK {
		t.Fatal("forged update accepted")
	}
}

// An abrupt hub stop mid-round (no round completion, no graceful step)
// and a restart on the same store resume from the last completed round.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	h := newHub(t, hub.Config{DataDir: dir, Rounds: 3, Deadline: 5 * time.Second})
	for i := 0; i < 3; i++ {
		startAgent(t, h, "", i, nil)
	}
	wait(t, h, 20*time.Second)
	g3 := h.Global()
	h.Shutdown()

	h2 := newHub(t, hub.Config{DataDir: dir, Rounds: 5, Deadline: 5 * time.Second})
	defer h2.Shutdown()
	if h2.Version() != 3 {
		t.Fatalf("resumed at version %d, want 3", h2.Version())
	}
	if g := h2.Global(); g.Version != 3 || string(g.Tensors[0].Data) != string(g3.Tensors[0].Data) {
		t.Fatal("resumed global model differs from the last checkpoint")
	}
	for i := 0; i < 3; i++ {
		startAgent(t, h2, "", i, nil)
	}
	wait(t, h2, 20*time.Second)
	reps := h2.Reports()
	if len(reps) == 0 || reps[0].Round <= 3 {
		t.Fatalf("round ids reused after restart: %+v", reps)
	}
}

// TestMain re-executes this test binary as a `hub` child process for the
// kill -9 test.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FENNEC_HUB_CHILD"); dir != "" {
		os.Exit(child(dir, os.Getenv("FENNEC_HUB_LISTEN"), os.Getenv("FENNEC_HUB_ROUNDS")))
	}
	os.Exit(m.Run())
}

func child(dir, listen, rounds string) int {
	n, _ := strconv.Atoi(rounds)
	init := net8.Init(1)
	h, err := hub.New(hub.Config{DataDir: dir, Listen: listen, Rounds: n, Initial: &init, Secret: secret, Deadline: 5 * time.Second, MinDevices: 2,
		OnRound: func(r hub.Report) { fmt.Println("version", r.Version) }})
	if err == nil {
		err = h.Start()
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("resumed", h.Version())
	for i := 0; i < 2; i++ {
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			return 1
		}
		id := fmt.Sprintf("dev-%d", i)
		a, _ := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id),
			Trainer: slowTrainer{Trainer: net8, delay: 50 * time.Millisecond}, Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 2, i + 4})})
		if err := a.Start(context.Background()); err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	<-h.Done()
	fmt.Println("done", h.Version())
	h.Shutdown()
	if h.Err() != nil {
		return 1
	}
	return 0
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// kill -9 a hub process mid-training, restart it on the same data dir: it
// resumes from the last completed round and finishes.
func TestKill9Resume(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	start := func(rounds int) (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FENNEC_HUB_CHILD="+dir, "FENNEC_HUB_LISTEN="+listen, "FENNEC_HUB_ROUNDS="+strconv.Itoa(rounds))
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewScanner(out)
	}
	cmd, out := start(1000)
	// Watch the completed rounds the child reports (its NATS listener
	// admits devices only, not a watcher of its state).
	var seen uint64
	progress := make(chan uint64)
	go func() {
		defer close(progress)
		for out.Scan() {
			f := strings.Fields(out.Text())
			if len(f) == 2 && f[0] == "version" {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				progress <- v
			}
		}
	}()
	timeout := time.After(30 * time.Second)
	for seen < 3 {
		select {
		case v, ok := <-progress:
			if !ok {
				t.Fatal("child exited before 3 rounds")
			}
			seen = max(seen, v)
		case <-timeout:
			cmd.Process.Kill()
			t.Fatal("child made no progress")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range progress { // drain what the child printed before it died
		}
	}()
	_ = cmd.Wait()

	cmd2, sc := start(int(seen) + 3)
	var resumed, final int = -1, -1
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "resumed" {
			resumed, _ = strconv.Atoi(f[1])
		}
		if len(f) == 2 && f[0] == "done" {
			final, _ = strconv.Atoi(f[1])
		}
	}
	if err := cmd2.Wait(); err != nil {
		t.Fatalf("restarted hub: %v", err)
	}
	if resumed < int(seen) || final != int(seen)+3 {
		t.Fatalf("observed version %d before kill -9; restarted hub resumed at %d and ended at %d", seen, resumed, final)
	}
	t.Logf("killed at >= version %d, resumed at %d, finished at %d", seen, resumed, final)
}

// The hub and devices against a real 3-server NATS cluster (routes on
// loopback), R3 buckets; devices connect to different servers than the hub.
func TestCluster3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	ports := []int{freePort(t), freePort(t), freePort(t)}
	cports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range cports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i := range ports {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: filepath.Join(t.TempDir(), fmt.Sprint(i)), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "fennec", Host: "127.0.0.1", Port: cports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		servers = append(servers, s)
		defer s.Shutdown()
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster node not ready")
		}
	}
	url := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", ports[i]) }
	// JetStream needs a meta leader before buckets can be created.
	probe, err := nats.Connect(url(1))
	if err != nil {
		t.Fatal(err)
	}
	pjs, _ := jetstream.New(probe)
	testutil.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := pjs.AccountInfo(c)
		return err
	})
	probe.Close()
	var h *hub.Hub
	testutil.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() (err error) {
		init := net8.Init(1)
		if h, err = hub.New(hub.Config{NATSURL: url(0), Replicas: 3, Rounds: 3, Initial: &init, Secret: secret, MinDevices: 3, Deadline: 5 * time.Second}); err != nil {
			return err
		}
		return h.Start()
	})
	defer h.Shutdown()
	// The hub's subscriptions reach the other nodes over the cluster
	// routes a moment after Start: wait until each node has a responder
	// for the join subject, so an agent's first join does not race them.
	for i := 0; i < 3; i++ {
		pc, err := nats.Connect(url(i))
		if err != nil {
			t.Fatal(err)
		}
		testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			_, err := pc.Request("fennec.default.join.probe", []byte("{}"), time.Second)
			if errors.Is(err, nats.ErrNoResponders) {
				return fmt.Errorf("node %d: %w", i, err)
			}
			return nil
		})
		pc.Close()
	}
	for i := 0; i < 3; i++ {
		startAgent(t, h, url(i), i, nil)
	}
	wait(t, h, 30*time.Second)
	// The checkpoint is replicated: read it through another server.
	nc, err := nats.Connect(url(2))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := js.ObjectStore(ctx, "fennec_default_models")
	if err != nil {
		t.Fatal(err)
	}
	st, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Replicas() != 3 {
		t.Fatalf("object store replicas %d, want 3", st.Replicas())
	}
	if _, err := obs.GetBytes(ctx, "model-3"); err != nil {
		t.Fatalf("checkpoint model-3 via server n2: %v", err)
	}
}

// A device that comes up before its hub (or while the hub restarts, or
// the moment its leaf link connects, before the hub's interest reaches
// it) is answered "no responders": its first join asks again until a hub
// answers, instead of failing the agent's start (TestLeafModeSteps once
// failed in CI that way).
func TestAgentJoinsHubThatStartsLater(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	id := "dev-0"
	a, err := agent.New(agent.Config{URL: s.ClientURL(), ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
		Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{0, 10, 20}), Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- a.Start(context.Background()) }()
	defer a.Close()
	select {
	case err := <-started:
		t.Fatalf("the agent's start returned before any hub existed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	h := newHub(t, hub.Config{NATSURL: s.ClientURL(), Rounds: 1, MinDevices: 1, Deadline: 5 * time.Second})
	defer h.Shutdown()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("agent start: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the agent never joined the hub that started after it")
	}
	wait(t, h, 30*time.Second)
}
