package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

// badBoxClient is a malicious device's side of secagg: the honest protocol
// code, except that every share box it sends is garbage.
type badBoxClient struct{ *modes.Client }

func (c badBoxClient) Handle(ctx context.Context, round uint64, step string, data []byte) ([]byte, error) {
	out, err := c.Client.Handle(ctx, round, step, data)
	if err != nil || step != "sa.share" {
		return out, err
	}
	var m secagg.SharesMsg
	if err := model.UnmarshalLoose(out, &m); err != nil {
		return nil, err
	}
	for i := range m.Shares {
		b := append([]byte(nil), m.Shares[i].Box...)
		b[len(b)-1] ^= 1
		m.Shares[i].Box = b
	}
	return model.Marshal(m)
}

// A real hub in secagg mode with three honest agents and one that sends bad
// share boxes in every round: the rounds complete with the honest quorum
// (before, every honest device aborted and no round completed), and the
// hub's mode status names the culprit by device id.
func TestSecAggHostileDeviceCannotAbortRounds(t *testing.T) {
	ids := []string{"dev-0", "dev-1", "dev-2", "dev-3"}
	evil := "dev-3"
	mh, err := modes.NewHub("secagg", modes.Config{Population: ids})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan hub.Report, 16)
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 2, MinDevices: 4, Deadline: 2 * time.Second,
		Mode: "secagg", ModeHub: mh, OnRound: func(r hub.Report) { reports <- r }})
	t.Cleanup(h.Shutdown)
	for i, id := range ids {
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data:      sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20, i + 30}),
			Heartbeat: 200 * time.Millisecond,
			NewMode: func(m string) (hook.ClientTransform, error) {
				c, err := modes.NewClient(m, id, modes.Config{})
				if err != nil || id != evil {
					return c, err
				}
				return badBoxClient{c}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(a.Close)
	}
	// Each report is the first try of a round: a failed round would be
	// retried (and the federation stalled while the device is sampled).
	for r := 1; r <= 2; r++ {
		select {
		case rep := <-reports:
			if rep.Status != "completed" {
				t.Fatalf("round %d: %s (%s)", rep.Round, rep.Status, rep.Error)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no round report in 30s (version %d, reports %+v)", h.Version(), h.Reports())
		}
	}
	st := mh.Status()
	if st.Contributors != 3 || st.Culprits[evil] < 1 {
		t.Fatalf("mode status %+v: want 3 contributors and %s named", st, evil)
	}
}
