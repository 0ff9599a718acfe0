package hub_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
)

// The writes that run behind the round loop (old checkpoints deleted)
// have all landed when the hub is done: Keep checkpoints are left, every
// round has its report (written in line), and the state's next round is the
// one after the last (the last commit claims no round; the others claim
// the next, so a round after the first needs no claim of its own).
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
