package hub_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
)

// The writes that run behind the round loop (old checkpoints deleted)
// have all landed when the hub is done: Keep checkpoints are left, every
// round has its report, and the state's next round is the one after the
// last (the commits claim the ids ahead of them, as many as rounds are
// left to run, so a round after the first needs no claim of its own).
// A hub started on the store again begins at that round.
func TestBackgroundWritesSettle(t *testing.T) {
	dir := t.TempDir()
	h := newHub(t, hub.Config{DataDir: dir, Rounds: 8, Keep: 3, Deadline: 5 * time.Second})
	for i := 0; i < 3; i++ {
		startAgent(t, h, "", i, nil)
	}
	wait(t, h, 30*time.Second)
	for i, r := range h.Reports() {
		if r.Round != uint64(i+1) || r.Status != "completed" || r.Phases == nil {
			t.Fatalf("report %d: round %d %s, phases %v", i, r.Round, r.Status, r.Phases)
		}
		if i > 0 && r.Phases.Claim != 0 {
			t.Errorf("round %d claimed its id itself (%v); the previous commit should have", r.Round, r.Phases.Claim)
		}
	}
	js, err := jetstream.New(h.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := js.ObjectStore(ctx, "fennec_default_models")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := obs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	if want := []string{"model-6", "model-7", "model-8"}; !slices.Equal(names, want) {
		t.Errorf("checkpoints %v, want %v", names, want)
	}
	kv, err := js.KeyValue(ctx, "fennec_default_state")
	if err != nil {
		t.Fatal(err)
	}
	for r := 1; r <= 8; r++ {
		if _, err := kv.Get(ctx, fmt.Sprintf("round.%d", r)); err != nil {
			t.Errorf("round %d's report: %v", r, err)
		}
	}
	e, err := kv.Get(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	var st hub.State
	if err := model.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	if st.NextRound != 9 || st.Version != 8 {
		t.Errorf("state: next round %d, version %d; want 9 and 8", st.NextRound, st.Version)
	}
	h.Shutdown()

	h2 := newHub(t, hub.Config{DataDir: dir, Rounds: 9, Deadline: 5 * time.Second})
	defer h2.Shutdown()
	for i := 0; i < 3; i++ {
		startAgent(t, h2, "", i, nil)
	}
	wait(t, h2, 30*time.Second)
	if reps := h2.Reports(); len(reps) != 1 || reps[0].Round != 9 || reps[0].Phases.Claim == 0 {
		t.Fatalf("resumed hub's rounds: %+v", reps)
	}
}

// A commit written behind the round (the next round already announced
// with its model) that fails reports its round failed, and the global
// model goes back to the stored one: no round is reported completed with
// a model the store does not hold. The failure here is another writer of
// the state (its revision moved), which fails every later commit too.
func TestPipelinedCommitFails(t *testing.T) {
	var (
		h       *hub.Hub
		mu      sync.Mutex
		reports []hub.Report
		failed  = make(chan struct{})
	)
	h = newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 50, Deadline: 5 * time.Second,
		OnRound: func(r hub.Report) {
			mu.Lock()
			reports = append(reports, r)
			n := len(reports)
			mu.Unlock()
			if n == 2 {
				js, _ := jetstream.New(h.Conn())
				kv, err := js.KeyValue(context.Background(), "fennec_default_state")
				if err == nil {
					var e jetstream.KeyValueEntry
					if e, err = kv.Get(context.Background(), "state"); err == nil {
						_, err = kv.Put(context.Background(), "state", e.Value())
					}
				}
				if err != nil {
					t.Error(err)
				}
			}
			if r.Status == "failed" {
				select {
				case <-failed:
				default:
					close(failed)
				}
			}
		}})
	defer h.Shutdown()
	for i := 0; i < 3; i++ {
		startAgent(t, h, "", i, nil)
	}
	select {
	case <-failed:
	case <-time.After(30 * time.Second):
		t.Fatal("no round failed after the state was written by another")
	}
	h.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	stored := h.Version()
	for _, r := range reports {
		if r.Status == "completed" && r.Version > stored {
			t.Errorf("round %d reported completed at version %d; the store holds version %d", r.Round, r.Version, stored)
		}
	}
	if g := h.Global().Version; g != stored {
		t.Errorf("global model at version %d, the stored one is %d", g, stored)
	}
	var fail hub.Report
	for _, r := range reports {
		if r.Status == "failed" {
			fail = r
			break
		}
	}
	if !strings.Contains(fail.Error, "write round state") {
		t.Errorf("failed round's error %q, want the state write's", fail.Error)
	}
}
