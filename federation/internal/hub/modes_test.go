package hub_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// seen is a mode's hub side that records what each update carried on the
// wire (its metrics) before the mode's own aggregation.
type seen struct {
	*modes.Hub
	mu      sync.Mutex
	metrics []map[string]float64
}

func (s *seen) PreAggregate(ctx context.Context, info hook.RoundInfo, ups []strategy.ModelUpdate) ([]strategy.ModelUpdate, error) {
	s.mu.Lock()
	for _, u := range ups {
		s.metrics = append(s.metrics, u.Metrics)
	}
	s.mu.Unlock()
	return s.Hub.PreAggregate(ctx, info, ups)
}

type heldOut struct{ d train.Dataset }

func (e heldOut) Evaluate(ctx context.Context, m model.Model) (float64, float64, error) {
	o, err := net8.Evaluate(ctx, train.EvalInput{Model: m, Data: e.d})
	return o.Metrics["loss"], o.Metrics["accuracy"], err
}

// modeFleet runs a hub in mode with 3 agents that learn the mode from the
// hub (agent.Config.NewMode) and serve its steps, with or without access
// control, until rounds complete.
func modeFleet(t *testing.T, mode string, access bool, rounds int) (*hub.Hub, *seen) {
	t.Helper()
	ids := []string{"dev-0", "dev-1", "dev-2"}
	cfg := hub.Config{DataDir: t.TempDir(), Rounds: rounds, MinDevices: 3, Deadline: 10 * time.Second,
		Evaluator: heldOut{data.Test()}}
	var seeds map[string]string
	if access {
		cfg.Access, seeds = accessFleet(t, ids...)
		cfg.Listen = "127.0.0.1:0"
	}
	var rec *seen
	if mode != "" {
		mh, err := modes.NewHub(mode, modes.Config{NoiseMultiplier: 0.5, Clip: 1, Population: ids})
		if err != nil {
			t.Fatal(err)
		}
		rec = &seen{Hub: mh}
		cfg.Mode, cfg.ModeHub = mode, rec
	}
	h := newHub(t, cfg)
	t.Cleanup(h.Shutdown)
	for i, id := range ids {
		opts := []nats.Option{nats.InProcessServer(h.Server())}
		if access {
			co, err := deploy.ConnectOptions(seeds[id], id)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, co...)
		}
		nc, err := nats.Connect("", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data:      sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20, i + 30}),
			Heartbeat: 200 * time.Millisecond,
			NewMode: func(m string) (hook.ClientTransform, error) {
				return modes.NewClient(m, id, modes.Config{})
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(a.Close)
	}
	wait(t, h, 60*time.Second)
	return h, rec
}

// In every mode but plain, devices send no training metrics (the mode does
// not protect them) and the hub reports only its own held-out evaluation.
func TestModeDeviceMetrics(t *testing.T) {
	for _, mode := range []string{"", "dp", "secagg"} {
		t.Run(fmt.Sprintf("mode=%q", mode), func(t *testing.T) {
			h, rec := modeFleet(t, mode, false, 1)
			rep := h.Reports()[0]
			if rep.Status != "completed" || rep.Received != 3 || !rep.HasEval {
				t.Fatalf("report %+v", rep)
			}
			if mode == "" {
				if _, ok := rep.DeviceMetrics["loss"]; !ok {
					t.Fatalf("plain round reports no device loss: %+v", rep)
				}
				return
			}
			if rep.DeviceMetrics != nil {
				t.Errorf("mode %s reports device metrics %v", mode, rep.DeviceMetrics)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.metrics) != 3 {
				t.Fatalf("%d updates recorded", len(rec.metrics))
			}
			for i, m := range rec.metrics {
				if m != nil {
					t.Errorf("update %d carried metrics %v in mode %s", i, m, mode)
				}
			}
		})
	}
}

// A hub and 3 agents complete rounds in secagg (protocol steps over the
// step link) and dp, with and without access control: with it, each
// device may receive its own steps and answer the hub's requests only.
func TestModeRounds(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		access bool
	}{{"secagg", false}, {"dp", false}, {"secagg", true}, {"dp", true}} {
		t.Run(fmt.Sprintf("%s/access=%v", tc.mode, tc.access), func(t *testing.T) {
			h, rec := modeFleet(t, tc.mode, tc.access, 2)
			reps := h.Reports()
			if len(reps) != 2 || h.Version() != 2 {
				t.Fatalf("version %d, reports %+v", h.Version(), reps)
			}
			for _, r := range reps {
				if r.Status != "completed" || r.Received != 3 {
					t.Fatalf("report %+v", r)
				}
			}
			st := rec.Status()
			if st.Releases != 2 || st.Contributors != 3 {
				t.Fatalf("mode status %+v", st)
			}
			if tc.mode == "secagg" && st.StepBytes == 0 {
				t.Fatalf("secagg ran no steps: %+v", st)
			}
			if tc.mode == "dp" && !(st.Epsilon > 0) {
				t.Fatalf("dp spent no epsilon: %+v", st)
			}
		})
	}
}

// With access control a device cannot listen to another device's steps nor
// publish into the hub's inbox except in answer to a request.
func TestAccessModeSteps(t *testing.T) {
	acc, seeds := accessFleet(t, "dev-0", "dev-1")
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Access: acc, Rounds: 1, MinDevices: 3})
	defer h.Shutdown()
	v := make(violations, 16)
	opts, err := deploy.ConnectOptions(seeds["dev-0"], "dev-0")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(h.ClientURL(), append(opts, nats.ErrorHandler(v.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Allowed: its own step subject.
	own, err := nc.SubscribeSync(hook.StepSubject("default", "dev-0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-v:
		t.Fatalf("own step subject refused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_ = own.Unsubscribe()
	v.mustDeny(t, "subscribe to another device's steps", func(ctx context.Context) error {
		s, err := nc.SubscribeSync(hook.StepSubject("default", "dev-1"))
		if err != nil {
			return err
		}
		_, err = s.NextMsgWithContext(ctx)
		return err
	})
	v.mustDeny(t, "publish into the hub's inbox unasked", func(ctx context.Context) error {
		if err := nc.Publish(hub.HubInboxPrefix+".x.y", []byte("forged")); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
}

// The DP accountant charges each release at the rate the hub sampled its
// round at (sampled/available), not at the configured fraction, with the
// bound for sampling without replacement: with 10 devices, Fraction 0.1
// and MinDevices 2 the hub samples 2 of 10, and the accountant must charge
// q = 0.2.
func TestAccountedRateIsSampledRate(t *testing.T) {
	const n, rounds = 10, 2
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%d", i)
	}
	// SamplingRate 0.1 is what a planner reading only the fraction would
	// configure (and what `fennec hub --fraction 0.1` did).
	mh, err := modes.NewHub("dp", modes.Config{NoiseMultiplier: 1, SamplingRate: 0.1, Population: ids})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		rates []float64 // accountant's rate after each round
	)
	cfg := hub.Config{DataDir: t.TempDir(), Rounds: rounds, Fraction: 0.1, MinDevices: 2, Deadline: 10 * time.Second,
		Mode: "dp", ModeHub: mh, OnRound: func(hub.Report) {
			mu.Lock()
			rates = append(rates, mh.Status().SamplingRate)
			mu.Unlock()
		}}
	h := newHub(t, cfg)
	t.Cleanup(h.Shutdown)
	for i, id := range ids {
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data:      sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20}),
			Heartbeat: 200 * time.Millisecond,
			NewMode:   func(m string) (hook.ClientTransform, error) { return modes.NewClient(m, id, modes.Config{}) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	wait(t, h, 60*time.Second)
	reps := h.Reports()
	if len(reps) != rounds {
		t.Fatalf("reports %+v", reps)
	}
	acc, err := dp.NewAccountant(nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range reps {
		if r.Status != "completed" || r.Available < 2 || r.Sampled != hub.SampleSize(0.1, 2, r.Available) {
			t.Fatalf("report %+v", r)
		}
		observed := float64(r.Sampled) / float64(r.Available)
		if rates[i] != observed {
			t.Errorf("round %d: accountant charged q=%v, the hub sampled %d of %d (rate %v)", r.Round, rates[i], r.Sampled, r.Available, observed)
		}
		if err := acc.ComposeSampledWithoutReplacementGaussian(observed, 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if got := mh.Status().Epsilon; math.Abs(got-want) > 1e-12*want {
		t.Errorf("epsilon %v, want %v at the sampled rates", got, want)
	}
}

func TestSampleSize(t *testing.T) {
	for _, tc := range []struct {
		f         float64
		min, n, k int
	}{
		{0.1, 2, 10, 2}, {0.1, 1, 10, 1}, {0.25, 1, 10, 3}, {1, 1, 7, 7}, {0.5, 5, 4, 4}, {0.01, 1, 1000, 10},
	} {
		if k := hub.SampleSize(tc.f, tc.min, tc.n); k != tc.k {
			t.Errorf("SampleSize(%v, %d, %d) = %d, want %d", tc.f, tc.min, tc.n, k, tc.k)
		}
		if q, want := hub.SamplingRate(tc.f, tc.min, tc.n), float64(tc.k)/float64(tc.n); q != want {
			t.Errorf("SamplingRate(%v, %d, %d) = %v, want %v", tc.f, tc.min, tc.n, q, want)
		}
	}
}
