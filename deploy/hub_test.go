package deploy_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
)

// The fleet tests (rollout_test.go) also run against a federation hub that
// serves rollouts: its embedded server authenticates the devices and
// operators of the access list, and every device trains with the hub over
// the same connection its rollout agent uses.
func init() { deploy.StartHub = startHub }

var fleetSecret = []byte("0123456789abcdef0123456789abcdef")

type hubServer struct {
	h *federation.Hub

	mu      sync.Mutex
	devices int
	want    int
}

func startHub(t *testing.T, dir string, acc *deploy.Access) deploy.TestServer {
	t.Helper()
	data := federation.Vitals(40, 1)
	init := federation.MLP{In: data.Features, Out: 2}.Init(1)
	h, err := federation.NewHub(federation.HubConfig{
		DataDir: dir, Listen: "127.0.0.1:0", Access: acc, Secret: fleetSecret, Initial: &init,
		Rounds: 2, MinDevices: len(acc.Devices), Deadline: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	hs := &hubServer{h: h, want: len(acc.Devices)}
	t.Cleanup(func() {
		defer h.Shutdown()
		hs.mu.Lock()
		all := hs.devices == hs.want
		hs.mu.Unlock()
		if !all || t.Failed() {
			return
		}
		// Every device trained while it received modules.
		select {
		case <-h.Done():
			if err := h.Err(); err != nil {
				t.Errorf("hub: %v", err)
			}
			if reps := h.Reports(); len(reps) < 2 || reps[len(reps)-1].Received != hs.want {
				t.Errorf("hub round reports %+v", reps)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the hub's training rounds did not complete: %+v", h.Reports())
		}
	})
	return hs
}

func (s *hubServer) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(s.h.Server())}, opts...)...)
}

func (s *hubServer) ClientURL() string { return s.h.ClientURL() }

// Device starts the device's federated training on its connection.
func (s *hubServer) Device(t *testing.T, id string, nc *nats.Conn) {
	t.Helper()
	data := federation.Vitals(40, uint64(len(id)))
	a, err := federation.NewAgent(federation.AgentConfig{Conn: nc, ID: id, Key: federation.DeviceKey(fleetSecret, id),
		Trainer: federation.MLP{In: data.Features, Out: 2}, Data: data.TrainDataset(false), Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("device %s joins the federation: %v", id, err)
	}
	t.Cleanup(a.Close)
	s.mu.Lock()
	s.devices++
	s.mu.Unlock()
}
