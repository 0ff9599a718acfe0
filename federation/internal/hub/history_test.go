package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
)

// syncBuf is a log sink safe for the hub's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The round history outlives the hub: a hub on the same store reads the
// reports of the rounds an earlier one ran, with their figures, and then
// its own. A stored report that is corrupt, or names another round than
// its key, is logged and left out; the others are still read.
func TestHistoryAcrossRestartAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	h := newHub(t, hub.Config{DataDir: dir, Rounds: 4, MinDevices: 3, Deadline: 5 * time.Second, Evaluator: heldOut{data.Test()}})
	for i := 0; i < 3; i++ {
		startAgent(t, h, "", i, nil)
	}
	wait(t, h, 30*time.Second)
	first := h.Reports()
	h.Shutdown()
	if len(first) != 4 {
		t.Fatalf("%d reports", len(first))
	}

	var log syncBuf
	h2 := newHub(t, hub.Config{DataDir: dir, Rounds: 4, Deadline: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	defer h2.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := h2.History(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("history of %d rounds, want 4: %+v", len(got), got)
	}
	for i, r := range got {
		w := first[i]
		if r.Round != w.Round || r.Version != w.Version || r.Status != "completed" || r.Received != 3 || len(r.Participants) != 3 ||
			!r.HasEval || r.EvalLoss != w.EvalLoss || r.EvalAccuracy != w.EvalAccuracy || r.BytesIn != w.BytesIn || r.BytesOut != w.BytesOut ||
			r.Time.Unix() != w.Time.Unix() {
			t.Fatalf("round %d read back as %+v, was %+v", i, r, w)
		}
	}

	// Corrupt round 2 (not CBOR) and relabel round 3 (a valid report of
	// another round under its key).
	js, err := jetstream.New(h2.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "fennec_default_state")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "round.2", []byte("\xff\x00not a report")); err != nil {
		t.Fatal(err)
	}
	other := first[0]
	other.Round = 9
	b, _ := model.Marshal(other)
	if _, err := kv.Put(ctx, "round.3", b); err != nil {
		t.Fatal(err)
	}
	got, err = h2.History(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Round != 1 || got[1].Round != 4 {
		t.Fatalf("history with corrupt records: %+v", got)
	}
	out := log.String()
	for _, want := range []string{"round.2", "round.3", "names round 9", "left out of the history"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not say %q:\n%s", want, out)
		}
	}
	// The bound: the last n rounds.
	if got, err = h2.History(ctx, 1); err != nil || len(got) != 1 || got[0].Round != 4 {
		t.Fatalf("History(1) = %+v, %v", got, err)
	}
}

// oldReport is a round report as hubs stored it before EvalMetrics,
// Privacy and Time.
type oldReport struct {
	Round        uint64   `cbor:"round"`
	Version      uint64   `cbor:"version"`
	Status       string   `cbor:"status"`
	Sampled      int      `cbor:"sampled"`
	Available    int      `cbor:"available"`
	Received     int      `cbor:"received"`
	Participants []string `cbor:"participants,omitempty"`
	Refused      int      `cbor:"refused"`
	Duration     int64    `cbor:"duration"`
	HasEval      bool     `cbor:"has_eval"`
	EvalLoss     float64  `cbor:"eval_loss,omitempty"`
	BytesIn      uint64   `cbor:"bytes_in"`
	BytesOut     uint64   `cbor:"bytes_out"`
}

func TestDecodeReport(t *testing.T) {
	old, _ := model.Marshal(oldReport{Round: 3, Version: 2, Status: "completed", Sampled: 3, Available: 4, Received: 3,
		Participants: []string{"a", "b", "c"}, Duration: 5e6, HasEval: true, EvalLoss: 0.5, BytesIn: 10, BytesOut: 20})
	r, err := hub.DecodeReport(old)
	if err != nil {
		t.Fatalf("an old report: %v", err)
	}
	if r.Round != 3 || r.Received != 3 || r.EvalLoss != 0.5 || r.Duration != 5*time.Millisecond || !r.Time.IsZero() || r.Privacy != nil {
		t.Fatalf("old report read as %+v", r)
	}
	full := hub.Report{Round: 7, Version: 7, Status: "completed", Sampled: 2, Available: 2, Received: 2, Participants: []string{"a", "b"},
		HasEval: true, EvalLoss: 0.25, EvalAccuracy: 0.9, EvalMetrics: map[string]float64{"auroc": 0.8},
		Privacy: &modes.Status{Mode: "dp", Releases: 7, Epsilon: 1.5, Delta: 1e-5}, Time: time.Unix(1700000000, 0).UTC()}
	b, _ := model.Marshal(full)
	if r, err = hub.DecodeReport(b); err != nil || r.Privacy == nil || r.Privacy.Epsilon != 1.5 || r.EvalMetrics["auroc"] != 0.8 || !r.Time.Equal(full.Time) {
		t.Fatalf("full report read as %+v, %v", r, err)
	}
	for name, bad := range map[string]any{
		"no round":        hub.Report{Status: "completed"},
		"bad status":      hub.Report{Round: 1, Status: "won"},
		"negative":        hub.Report{Round: 1, Status: "failed", Refused: -1},
		"too many":        hub.Report{Round: 1, Status: "completed", Sampled: 1, Available: 1, Received: 2},
		"listed":          hub.Report{Round: 1, Status: "completed", Sampled: 1, Available: 1, Participants: []string{"a", "b"}},
		"privacy":         hub.Report{Round: 1, Status: "completed", Privacy: &modes.Status{Releases: -2}},
		"not a map":       []int{1, 2, 3},
		"a report inside": map[string]any{"round": map[string]any{"round": 1}},
	} {
		b, _ := model.Marshal(bad)
		if _, err := hub.DecodeReport(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := hub.DecodeReport(make([]byte, hub.MaxReportBytes+1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("an oversized report: %v", err)
	}
}

// A privacy mode's status after each round is in the stored report, so
// the epsilon spent per round survives the hub.
func TestHistoryPrivacy(t *testing.T) {
	h, _ := modeFleet(t, "dp", false, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := h.History(ctx, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("%+v, %v", got, err)
	}
	for i, r := range got {
		if r.Privacy == nil || r.Privacy.Mode != "dp" || r.Privacy.Releases != i+1 || !(r.Privacy.Epsilon > 0) {
			t.Fatalf("round %d privacy %+v", r.Round, r.Privacy)
		}
	}
	if !(got[1].Privacy.Epsilon > got[0].Privacy.Epsilon) {
		t.Fatalf("epsilon did not grow: %v then %v", got[0].Privacy.Epsilon, got[1].Privacy.Epsilon)
	}
}

// FuzzDecodeReport: stored bytes never panic the decoder, and what it
// accepts is a report a hub writes and encodes back to one it accepts.
func FuzzDecodeReport(f *testing.F) {
	for _, r := range []any{
		hub.Report{Round: 1, Status: "completed", Sampled: 3, Available: 3, Received: 3, Participants: []string{"a", "b", "c"},
			HasEval: true, EvalLoss: 0.5, EvalMetrics: map[string]float64{"auroc": 0.7}, Privacy: &modes.Status{Mode: "dp", Epsilon: 1},
			Rejected: map[string]string{"d": "not finite"}, Time: time.Unix(1, 0)},
		hub.Report{Round: 2, Status: "failed", Error: "quorum not reached", Sampled: 2, Available: 5, Dropped: []string{"x"}},
		oldReport{Round: 3, Status: "completed", Sampled: 1, Available: 1, Received: 1},
	} {
		b, _ := model.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x65, 'r', 'o', 'u', 'n', 'd', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // an array claiming 2^64-1 items
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := hub.DecodeReport(b)
		if err != nil {
			return
		}
		if r.Round == 0 || (r.Status != "completed" && r.Status != "failed") || r.Received > r.Sampled || len(r.Participants) > r.Sampled {
			t.Fatalf("accepted %+v", r)
		}
		again, err := model.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.DecodeReport(again); err != nil {
			t.Fatalf("re-encoded report refused: %v", err)
		}
	})
}

// BenchmarkHistory is the cost of reading the last 500 round reports of
// 1,000 participants each back from the hub's store (what a dashboard
// does once when it starts): a hub runs 500 real rounds with one device,
// then each stored report is replaced by one of 1,000 participants in a
// dp round.
func BenchmarkHistory(b *testing.B) {
	const rounds, devices = 500, 1000
	h := newHub(b, hub.Config{DataDir: b.TempDir(), Rounds: rounds, Deadline: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(h.Shutdown)
	startAgent(b, h, "", 0, nil)
	wait(b, h, 5*time.Minute)
	ctx := context.Background()
	js, err := jetstream.New(h.Conn())
	if err != nil {
		b.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "fennec_default_state")
	if err != nil {
		b.Fatal(err)
	}
	parts := make([]string, devices)
	for i := range parts {
		parts[i] = fmt.Sprintf("dev-%04d", i)
	}
	var size int
	for r := uint64(1); r <= rounds; r++ {
		rep := hub.Report{Round: r, Version: r, Status: "completed", Sampled: devices, Available: devices, Received: devices,
			Participants: parts, HasEval: true, EvalLoss: 0.5, EvalAccuracy: 0.8, EvalMetrics: map[string]float64{"auroc": 0.9},
			BytesIn: 5000, BytesOut: 5000, Duration: 100 * time.Millisecond, Time: time.Now().UTC(),
			Privacy: &modes.Status{Mode: "dp", Releases: int(r), Epsilon: 0.01 * float64(r), Delta: 1e-5, Contributors: devices}}
		v, _ := model.Marshal(rep)
		size = len(v)
		if _, err := kv.Put(ctx, fmt.Sprintf("round.%d", r), v); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		got, err := h.History(ctx, rounds)
		if err != nil || len(got) != rounds {
			b.Fatal(len(got), err)
		}
	}
	b.ReportMetric(float64(size), "report-bytes")
}

// metricsEval reports loss, accuracy and other metrics, some of which a
// report cannot carry.
type metricsEval struct{ heldOut }

func (e metricsEval) EvaluateMetrics(ctx context.Context, m model.Model) (map[string]float64, error) {
	loss, acc, err := e.Evaluate(ctx, m)
	out := map[string]float64{"loss": loss, "accuracy": acc, "auroc": 0.75, "nan": math.NaN(), "inf": math.Inf(1)}
	for i := 0; i < 20; i++ {
		out[fmt.Sprintf("m%02d", i)] = float64(i)
	}
	return out, err
}

// A MetricsEvaluator's other metrics reach the report (an AUROC a plain
// hub's evaluation gives), finite and at most MaxEvalMetrics.
func TestEvalMetrics(t *testing.T) {
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Rounds: 1, Deadline: 5 * time.Second, Evaluator: metricsEval{heldOut{data.Test()}}})
	defer h.Shutdown()
	startAgent(t, h, "", 0, nil)
	wait(t, h, 20*time.Second)
	r := h.Reports()[0]
	if !r.HasEval || r.EvalMetrics["auroc"] != 0.75 || len(r.EvalMetrics) != hub.MaxEvalMetrics || r.EvalLoss == 0 {
		t.Fatalf("report %+v", r)
	}
	for _, k := range []string{"loss", "accuracy", "nan", "inf"} {
		if _, ok := r.EvalMetrics[k]; ok {
			t.Errorf("eval metrics carry %s: %v", k, r.EvalMetrics)
		}
	}
}
