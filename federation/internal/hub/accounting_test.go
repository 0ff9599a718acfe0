package hub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// dpHub runs a dp hub on dir with 3 agents for rounds (0: until stopped),
// with noise multiplier 0.5 and target; its reports go to reps.
func dpHub(t *testing.T, dir string, rounds int, target float64, reps chan<- hub.Report) *hub.Hub {
	t.Helper()
	ids := []string{"dev-0", "dev-1", "dev-2"}
	mh, err := modes.NewHub("dp", modes.Config{NoiseMultiplier: 0.5, Clip: 1, TargetEpsilon: target, Rounds: 100})
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, hub.Config{DataDir: dir, Rounds: rounds, MinDevices: 3, Deadline: 10 * time.Second, Mode: "dp", ModeHub: mh,
		OnRound: func(r hub.Report) {
			select {
			case reps <- r:
			default:
			}
		}})
	t.Cleanup(h.Shutdown)
	for i, id := range ids {
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20}), Heartbeat: 200 * time.Millisecond,
			NewMode: func(m string) (hook.ClientTransform, error) { return modes.NewClient(m, id, modes.Config{}) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	return h
}

// A restarted hub's DP accountant goes on from what the store says was
// spent: its epsilon continues, and the target caps the releases of both
// runs together (here 3: the fourth release is refused after a restart
// after the second).
func TestAccountingSurvivesRestart(t *testing.T) {
	acc, _ := dp.NewAccountant(nil)
	if err := acc.ComposeSampledWithoutReplacementGaussian(1, 0.5, 3); err != nil {
		t.Fatal(err)
	}
	eps3, _, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	target := eps3 * 1.0001
	dir := t.TempDir()
	reps := make(chan hub.Report, 64)
	h := dpHub(t, dir, 2, target, reps)
	wait(t, h, 60*time.Second)
	first := h.Reports()
	h.Shutdown()
	if len(first) != 2 || first[1].Privacy == nil || first[1].Privacy.Releases != 2 {
		t.Fatalf("first run %+v", first)
	}

	h2 := dpHub(t, dir, 0, target, reps)
	defer h2.Shutdown()
	for len(reps) > 0 {
		<-reps
	}
	var got []hub.Report
	timeout := time.After(60 * time.Second)
	for len(got) < 2 {
		select {
		case r := <-reps:
			if r.Round > 2 {
				got = append(got, r)
			}
		case <-timeout:
			t.Fatalf("rounds after the restart: %+v", got)
		}
	}
	r3, r4 := got[0], got[1]
	if r3.Status != "completed" || r3.Privacy == nil || r3.Privacy.Releases != 3 || !(r3.Privacy.Epsilon > first[1].Privacy.Epsilon) ||
		r3.Privacy.Epsilon > target {
		t.Fatalf("round 3 after the restart %+v (privacy %+v), before it %+v", r3, r3.Privacy, first[1].Privacy)
	}
	if d := r3.Privacy.Epsilon - eps3; d > 1e-9 || d < -1e-9 {
		t.Errorf("epsilon after 3 releases across a restart %v, one accountant's %v", r3.Privacy.Epsilon, eps3)
	}
	if r4.Status != "failed" || !strings.Contains(r4.Error, "privacy budget") {
		t.Fatalf("the release beyond the target across the restart: %+v", r4)
	}
}

// Restore refuses accounting that is not this mode's, is over other
// orders, is malformed, or comes after a release.
func TestRestoreAccounting(t *testing.T) {
	mh, err := modes.NewHub("dp", modes.Config{NoiseMultiplier: 1, Clip: 1})
	if err != nil {
		t.Fatal(err)
	}
	good := *mh.Accounting()
	good.Releases, good.SamplingRate = 2, 0.5
	for i := range good.RDP {
		good.RDP[i] = 0.01 * float64(i+1)
	}
	bad := func(f func(a *modes.Accounting)) modes.Accounting {
		a := good
		a.RDP, a.Orders = append([]float64{}, good.RDP...), append([]float64{}, good.Orders...)
		f(&a)
		return a
	}
	for name, a := range map[string]modes.Accounting{
		"mode":     bad(func(a *modes.Accounting) { a.Mode = "ldp" }),
		"orders":   bad(func(a *modes.Accounting) { a.Orders = a.Orders[1:]; a.RDP = a.RDP[1:] }),
		"short":    bad(func(a *modes.Accounting) { a.RDP = a.RDP[1:] }),
		"negative": bad(func(a *modes.Accounting) { a.RDP[3] = -1 }),
		"nan":      bad(func(a *modes.Accounting) { a.RDP[3] = nan() }),
		"inf":      bad(func(a *modes.Accounting) { a.RDP[3] = inf() }),
		"releases": bad(func(a *modes.Accounting) { a.Releases = -1 }),
		"rate":     bad(func(a *modes.Accounting) { a.SamplingRate = 2 }),
	} {
		if err := mh.Restore(a); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	if err := mh.Restore(good); err != nil {
		t.Fatal(err)
	}
	if st := mh.Status(); st.Releases != 2 || !(st.Epsilon > 0) || st.SamplingRate != 0.5 {
		t.Fatalf("status after restore %+v", st)
	}
	if err := mh.Restore(good); err == nil {
		t.Error("restored twice")
	}
	sa, _ := modes.NewHub("secagg", modes.Config{})
	if sa.Accounting() != nil || sa.Restore(good) == nil {
		t.Error("secagg keeps no accountant")
	}
}

func nan() float64 { var z float64; return z / z }
func inf() float64 { var z float64; return 1 / z }

// A store whose accounting the hub's mode cannot go on from (here: dp's
// accounting, a hub now running ldp) stops the hub with ErrAccounting
// rather than letting its accountant count from zero; with
// ResetAccounting the operator starts a new budget deliberately.
func TestUnusableAccountingRefused(t *testing.T) {
	dir := t.TempDir()
	reps := make(chan hub.Report, 64)
	h := dpHub(t, dir, 1, 0, reps)
	wait(t, h, 60*time.Second)
	h.Shutdown()
	start := func(reset bool) (*hub.Hub, error) {
		mh, err := modes.NewHub("ldp", modes.Config{NoiseMultiplier: 1, Clip: 1, Rounds: 10})
		if err != nil {
			t.Fatal(err)
		}
		init := net8.Init(1)
		h, err := hub.New(hub.Config{DataDir: dir, Listen: "-", Initial: &init, Secret: secret, Rounds: 10, MinDevices: 3,
			Mode: "ldp", ModeHub: mh, ResetAccounting: reset})
		if err != nil {
			t.Fatal(err)
		}
		return h, h.Start()
	}
	h2, err := start(false)
	if !errors.Is(err, hub.ErrAccounting) || !strings.Contains(err.Error(), "ResetAccounting") || !strings.Contains(err.Error(), "1 releases stored") {
		t.Fatalf("a store with dp's accounting under an ldp hub: %v", err)
	}
	h2.Shutdown()
	h3, err := start(true)
	if err != nil {
		t.Fatalf("with ResetAccounting: %v", err)
	}
	h3.Shutdown()
}
