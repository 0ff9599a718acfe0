package hubdash_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/dashboard"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/hubdash"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// fleet runs a dp hub on dir with three in-process agents until rounds
// are complete. Its OnRound goes to late (nil: nowhere), then to
// afterRound when set (in the hub's round loop).
func fleet(t *testing.T, dir string, rounds int, late *hubdash.Late, afterRound func(h *federation.Hub, r federation.RoundReport)) (*federation.Hub, []federation.RoundReport) {
	t.Helper()
	data := federation.Vitals(60, 1)
	init := federation.MLP{In: data.Features, Out: 2}.Init(1)
	mh, err := federation.NewHubPrivacy("dp", federation.ModeConfig{NoiseMultiplier: 1, Clip: 1})
	if err != nil {
		t.Fatal(err)
	}
	var h *federation.Hub
	h, err = federation.NewHub(federation.HubConfig{
		DataDir: dir, Listen: "-", Secret: secret, Initial: &init, Rounds: rounds, MinDevices: 3, Deadline: 10 * time.Second,
		Privacy: mh, Logger: slog.New(slog.DiscardHandler),
		Evaluator: federation.DatasetEvaluator(withAUROC{federation.MLP{In: data.Features, Out: 2}}, data.Test(), "held-out"),
		OnRound: func(r federation.RoundReport) {
			if late != nil {
				late.Round(r, nil, nil) // the report carries its privacy status
			}
			if afterRound != nil {
				afterRound(h, r)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Shutdown)
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("dev-%d", i)
		nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			t.Fatal(err)
		}
		a, err := federation.NewAgent(federation.AgentConfig{Conn: nc, ID: id, Key: federation.DeviceKey(secret, id),
			Trainer: federation.MLP{In: data.Features, Out: 2}, Data: data.TrainDataset(false), Heartbeat: 200 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler),
			NewMode: func(mode string) (*federation.DevicePrivacy, error) {
				return federation.NewDevicePrivacy(mode, id, federation.ModeConfig{})
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(); nc.Close() })
	}
	select {
	case <-h.Done():
		if err := h.Err(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("rounds not complete: version %d", h.Version())
	}
	return h, h.Reports()
}

// withAUROC is an evaluate entrypoint that also reports an "auroc" (a
// stand-in figure), as a module's may: a plain hub's dashboard shows it.
type withAUROC struct{ federation.Evaluator }

func (e withAUROC) Evaluate(ctx context.Context, in federation.EvalInput) (federation.EvalOutput, error) {
	out, err := e.Evaluator.Evaluate(ctx, in)
	if err == nil {
		out.Metrics["auroc"] = 1 - out.Metrics["loss"]/10
	}
	return out, err
}

// A restarted hub's dashboard shows the rounds the earlier hub ran, with
// their figures (read from the hub's JetStream store: participants, bytes,
// held-out loss, accuracy and the evaluation's AUROC, epsilon), followed
// by the new hub's rounds, each once, epsilon going on from where it was: the dashboard starts while the new hub's rounds
// run, so rounds end while it reads the history.
func TestTrainingSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	h1, before := fleet(t, dir, 3, nil, nil)
	h1.Shutdown()
	if len(before) != 3 {
		t.Fatalf("%d rounds before the restart", len(before))
	}

	var late hubdash.Late
	t.Cleanup(late.Shutdown)
	started := make(chan error, 1)
	_, after := fleet(t, dir, 8, &late, func(h *federation.Hub, r federation.RoundReport) {
		if r.Round == 5 {
			// In the hub's round loop: round 5's report is stored, round 6
			// has not started; the dashboard starts in parallel with it.
			go func() {
				_, err := late.Start("127.0.0.1:0", h, nil, dashboard.Training{Name: "default", Strategy: "fedavg", Mode: "dp", Rounds: 8}, slog.New(slog.DiscardHandler))
				started <- err
			}()
		}
	})
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if len(after) != 5 || after[0].Round != 4 {
		t.Fatalf("rounds after the restart: %+v", after)
	}
	want := append(append([]federation.RoundReport{}, before...), after...)

	var tv dashboard.TrainingView
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(late.URL() + "api/v1/training")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%d %s", res.StatusCode, b)
		}
		tv = dashboard.TrainingView{}
		if err := json.Unmarshal(b, &tv); err != nil {
			t.Fatal(err)
		}
		if n := len(tv.Federations[0].Rounds); n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fv := tv.Federations[0]
	if len(fv.Rounds) != len(want) || fv.TotalRounds != len(want) {
		t.Fatalf("%d rounds shown (total %d), want %d: %+v", len(fv.Rounds), fv.TotalRounds, len(want), fv.Rounds)
	}
	for i, v := range fv.Rounds {
		w := want[i]
		if v.Round != w.Round || v.Version != w.Version || v.Status != w.Status || v.Participants != w.Received ||
			v.Dropouts != w.Sampled-w.Received || v.Stragglers != len(w.Dropped) || v.BytesIn != w.BytesIn || v.BytesOut != w.BytesOut ||
			!v.HasEval || v.Loss == nil || *v.Loss != w.EvalLoss || v.Accuracy == nil || *v.Accuracy != w.EvalAccuracy {
			t.Fatalf("round %d shown as %+v, the hub reported %+v", i, v, w)
		}
		if a, ok := w.EvalMetrics["auroc"]; !ok || v.AUROC == nil || *v.AUROC != a {
			t.Fatalf("round %d auroc %v, the hub's evaluation %v", v.Round, v.AUROC, w.EvalMetrics)
		}
		if w.Privacy == nil || v.Epsilon == nil || *v.Epsilon != w.Privacy.Epsilon {
			t.Fatalf("round %d epsilon %v, the hub reported %+v", v.Round, v.Epsilon, w.Privacy)
		}
		if i < len(before) && v.Time.Unix() != w.Time.Unix() {
			t.Fatalf("round %d time %v, ended %v", v.Round, v.Time, w.Time)
		}
	}
	// The hub's accountant goes on from what the first hub spent: the
	// epsilon curve does not drop at the restart.
	for i := 1; i < len(fv.Rounds); i++ {
		if !(*fv.Rounds[i].Epsilon > *fv.Rounds[i-1].Epsilon) {
			t.Fatalf("epsilon %v at round %d after %v", *fv.Rounds[i].Epsilon, fv.Rounds[i].Round, *fv.Rounds[i-1].Epsilon)
		}
	}
	last := want[len(want)-1].Privacy
	if fv.Privacy == nil || fv.Privacy.Epsilon != last.Epsilon || fv.Privacy.Releases != last.Releases {
		t.Fatalf("privacy %+v, the last round's %+v", fv.Privacy, last)
	}
}
