package hub_test

import (
	"github.com/fennec-edge/fennec/internal/bench"
	"sync"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/train"
)

// BenchmarkRound measures a hub's round with ten in-process agents
// training the small softmax regression of these tests (pure Go, so the
// round is almost all hub and messaging), a JetStream store on disk and a
// hub-side evaluation: the median interval between successive rounds'
// reports (what bench/flower times from the outside) and the median of
// each phase in the report (Report.Phases).
//
//	go test ./federation/internal/hub -run '^$' -bench Round -benchtime 100x
func BenchmarkRound(b *testing.B) {
	var (
		mu     sync.Mutex
		at     []time.Time
		phases []hub.Phases
	)
	test := sim.Dataset(data.TrainX, data.TrainY, data.Features, nil)
	h := newHub(b, hub.Config{DataDir: b.TempDir(), Rounds: b.N + 1, MinDevices: 10, Deadline: 10 * time.Second,
		Evaluator: train.DataEvaluator{E: net8, Data: test, Name: "the training rows"},
		OnRound: func(r hub.Report) {
			mu.Lock()
			defer mu.Unlock()
			at = append(at, time.Now())
			if r.Phases != nil {
				phases = append(phases, *r.Phases)
			}
		}})
	defer h.Shutdown()
	for i := 0; i < 10; i++ {
		startAgent(b, h, "", i, nil)
	}
	wait(b, h, time.Duration(b.N+10)*10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	var gaps []float64
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, float64(at[i].Sub(at[i-1]).Microseconds())/1000)
	}
	if len(gaps) == 0 {
		b.Fatalf("%d rounds reported", len(at))
	}
	b.ReportMetric(bench.Median(gaps), "ms/round")
	for _, p := range []struct {
		name string
		get  func(hub.Phases) time.Duration
	}{
		{"claim", func(p hub.Phases) time.Duration { return p.Claim }},
		{"gather", func(p hub.Phases) time.Duration { return p.Gather }},
		{"aggregate", func(p hub.Phases) time.Duration { return p.Aggregate }},
		{"commit", func(p hub.Phases) time.Duration { return p.Commit }},
		{"evaluate", func(p hub.Phases) time.Duration { return p.Evaluate }},
	} {
		var v []float64
		for _, ph := range phases[1:] {
			v = append(v, float64(p.get(ph).Microseconds())/1000)
		}
		b.ReportMetric(bench.Median(v), p.name+"-ms")
	}
}
