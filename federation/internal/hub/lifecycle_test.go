package hub_test

import (
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// TestAgentStopsItsGoroutines: Close and Kill return only once the
// agent's heartbeat and worker have exited, even while it trains.
func TestAgentStopsItsGoroutines(t *testing.T) {
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 1000, MinDevices: 2, Deadline: 5 * time.Second})
	defer h.Shutdown()
	started := make(chan uint64, 1)
	a := startAgent(t, h, "", 0, slowTrainer{Trainer: net8, delay: time.Second, started: started})
	b := startAgent(t, h, "", 1, nil)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no round started")
	}
	a.Kill() // in the middle of its training
	b.Close()
	for _, fn := range []string{"agent.(*Agent).heartbeat", "agent.(*Agent).work", "agent.(*Agent).runTask"} {
		testutil.NoGoroutine(t, fn)
	}
}
