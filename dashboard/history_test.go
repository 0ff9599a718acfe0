package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation"
)

// histHub is a HistoryHub whose History waits for release (when set) and
// fails fails times first.
type histHub struct {
	fakeHub
	reps    []federation.RoundReport
	called  chan struct{}
	release chan struct{}
	fails   int
}

func (h *histHub) History(ctx context.Context, n int) ([]federation.RoundReport, error) {
	if h.fails > 0 {
		h.fails--
		return nil, errors.New("store unreachable")
	}
	if h.called != nil {
		close(h.called)
		<-h.release
	}
	return h.reps[max(0, len(h.reps)-n):], nil
}

func histRound(i uint64) federation.RoundReport {
	return federation.RoundReport{Round: i, Version: i, Status: "completed", Sampled: 2, Available: 2, Received: 2,
		Participants: []string{"cam-1", "cam-2"}, HasEval: true, EvalLoss: 1 / float64(i), EvalAccuracy: 0.5, BytesIn: 10 * i,
		Privacy: &federation.ModeStatus{Mode: "dp", Releases: int(i), Epsilon: 0.1 * float64(i)}, Time: time.Unix(1700000000+int64(i), 0).UTC()}
}

func startHist(t *testing.T, h *histHub, rounds int, before func(*Dashboard)) *rig {
	t.Helper()
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: h, Interval: 10 * time.Millisecond, HistoryRounds: rounds, Logger: slog.New(slog.DiscardHandler),
		Training: Training{Name: "default", Mode: "dp"}})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(d)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)
	return &rig{t: t, d: d, url: d.URL()[:len(d.URL())-1]}
}

func waitRounds(t *testing.T, r *rig, n int) FederationView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var tv TrainingView
		r.get("/api/v1/training", "", &tv)
		if f := tv.Federations[0]; len(f.Rounds) >= n || time.Now().After(deadline) {
			return f
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The training view starts with the hub's stored rounds, bounded by
// HistoryRounds; rounds that end while the history is read (live, and in
// it too) are shown once, as the live call passed them, and counted once
// for their devices; figures JSON cannot carry are left out.
func TestTrainingHistory(t *testing.T) {
	reps := []federation.RoundReport{histRound(1), histRound(2), histRound(3), histRound(4)}
	reps[1].EvalLoss = math.NaN()
	reps[2].EvalMetrics = map[string]float64{"auroc": 0.8}
	h := &histHub{reps: reps, called: make(chan struct{}), release: make(chan struct{}), fails: 2}
	r := startHist(t, h, 1000, nil)
	<-h.called
	// Round 4 ends and reaches the dashboard while History reads (its
	// report is in the history too), then round 5.
	live4 := histRound(4)
	r.d.Round(live4, &federation.ModeStatus{Mode: "dp", Releases: 4, Epsilon: 0.45}, map[string]float64{"auroc": 0.9})
	r.d.Round(histRound(5), nil, nil)
	close(h.release)
	f := waitRounds(t, r, 5)
	if len(f.Rounds) != 5 || f.TotalRounds != 5 {
		t.Fatalf("%d rounds: %+v", len(f.Rounds), f.Rounds)
	}
	for i, v := range f.Rounds {
		if v.Round != uint64(i+1) {
			t.Fatalf("round %d at %d: %+v", v.Round, i, f.Rounds)
		}
	}
	if v := f.Rounds[1]; v.Loss != nil || v.Accuracy == nil {
		t.Errorf("a NaN loss shown: %+v", v)
	}
	if v := f.Rounds[2]; v.AUROC == nil || *v.AUROC != 0.8 || v.Epsilon == nil || *v.Epsilon != reps[2].Privacy.Epsilon || !v.Time.Equal(reps[2].Time) || v.BytesIn != 30 {
		t.Errorf("round 3 from the history: %+v", v)
	}
	if v := f.Rounds[3]; v.AUROC == nil || *v.AUROC != 0.9 || *v.Epsilon != 0.45 {
		t.Errorf("round 4 is not the live one: %+v", v)
	}
	if f.Privacy == nil || f.Privacy.Releases != 5 {
		t.Errorf("privacy %+v, want round 5's", f.Privacy)
	}
	var dd DeviceDetail
	r.get("/api/v1/devices/cam-1", "", &dd)
	if dd.Rounds != 5 || dd.LastRound != 5 || dd.ModelVersion != 5 {
		t.Errorf("cam-1 %+v", dd.DeviceView)
	}
}

// A round whose stored report was read, and that then reaches the
// dashboard live (it ended while History read): shown once, as passed
// live, and counted once.
func TestTrainingHistoryThenLive(t *testing.T) {
	r := startHist(t, &histHub{reps: []federation.RoundReport{histRound(1), histRound(2)}}, 1000, nil)
	waitRounds(t, r, 2)
	r.d.Round(histRound(2), nil, map[string]float64{"auroc": 0.75})
	r.d.Round(histRound(3), nil, nil)
	f := waitRounds(t, r, 3)
	var dd DeviceDetail
	r.get("/api/v1/devices/cam-2", "", &dd)
	if len(f.Rounds) != 3 || f.Rounds[1].AUROC == nil || *f.Rounds[1].AUROC != 0.75 || dd.Rounds != 3 || dd.LastRound != 3 {
		t.Fatalf("%d rounds %+v, cam-2 %+v", len(f.Rounds), f.Rounds, dd.DeviceView)
	}
}

// Without live rounds, the privacy status is the last stored round's,
// and only the last HistoryRounds are read.
func TestTrainingHistoryBound(t *testing.T) {
	var reps []federation.RoundReport
	for i := uint64(1); i <= 30; i++ {
		reps = append(reps, histRound(i))
	}
	r := startHist(t, &histHub{reps: reps}, 10, nil)
	f := waitRounds(t, r, 10)
	if len(f.Rounds) != 10 || f.Rounds[0].Round != 21 || f.Privacy == nil || f.Privacy.Releases != 30 {
		t.Fatalf("%d rounds from %d, privacy %+v", len(f.Rounds), f.Rounds[0].Round, f.Privacy)
	}
}

func TestMergeRounds(t *testing.T) {
	v := func(ids ...uint64) []RoundView {
		var out []RoundView
		for _, id := range ids {
			out = append(out, RoundView{Round: id})
		}
		return out
	}
	got := mergeRounds(v(2, 4, 6), append(v(1, 4, 7), RoundView{Round: 8, Status: "x"}), 5)
	want := []uint64{4, 6, 7, 8}
	if len(got) != 5 || got[0].Round != 2 {
		t.Fatalf("%+v", got)
	}
	for i, w := range want {
		if got[i+1].Round != w {
			t.Fatalf("%+v", got)
		}
	}
}
