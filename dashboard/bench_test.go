package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/natsembed"
)

// benchDevices and benchRounds are the size the issue asks the page to
// handle: 1,000 devices, 500 rounds.
const (
	benchDevices = 1000
	benchRounds  = 500
)

// benchFleet is a dashboard (no access file: the benchmark measures the
// views, not the sign-in) on an embedded NATS server whose status bucket
// holds a report from each of benchDevices devices, and which has seen
// benchRounds rounds of all of them. It returns the dashboard, its
// handler and the connection the reference reads with.
func benchFleet(b *testing.B) (*Dashboard, http.Handler, *nats.Conn) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := natsembed.Start(ctx, natsembed.Config{Name: "bench", Dir: b.TempDir(), Listen: "-"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := deploy.EnsureBuckets(ctx, js); err != nil {
		b.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, deploy.BucketStatus)
	if err != nil {
		b.Fatal(err)
	}
	hub := &fakeHub{nc: nc}
	now := time.Now()
	for i := 0; i < benchDevices; i++ {
		id, g := fmt.Sprintf("dev-%04d", i), fmt.Sprintf("group-%d", i%4)
		st := deploy.DeviceStatus{Device: id, Group: g, Module: "risk-infer", Version: "1.2.0", Digest: fmt.Sprintf("%064x", 1),
			Healthy: true, State: deploy.StateRunning, LastSeen: now.UTC()}
		val, _ := json.Marshal(st)
		if _, err := kv.Put(ctx, g+"."+id, val); err != nil {
			b.Fatal(err)
		}
		hub.set(id, now, true)
	}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: hub, Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Training: Training{Name: "bench", Strategy: "fedavg", Mode: "dp", TargetEpsilon: 8}})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Shutdown)
	for i := 1; i <= benchRounds; i++ {
		d.Round(syntheticRound(i, benchDevices), &federation.ModeStatus{Mode: "dp", Epsilon: float64(i) / 100}, map[string]float64{"auroc": 0.8})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := d.st.fleet(fleetQuery{q: "risk-infer", limit: 1})
		if v.Matched == benchDevices && v.Online == benchDevices {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the dashboard saw %d reports, %d online", v.Matched, v.Online)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d, d.handler(), nc
}

func serve(b *testing.B, h http.Handler, path string) int {
	req := httptest.NewRequest("GET", path, nil)
	req.Host = "127.0.0.1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
	}
	return w.Body.Len()
}

// BenchmarkFleet compares the dashboard's fleet answer (from memory,
// kept current by watching the status bucket) with deploy.Status, the
// read of the status bucket that `fennec status` does, at 1,000 devices.
func BenchmarkFleet(b *testing.B) {
	_, h, nc := benchFleet(b)
	b.Run("dashboard-api", func(b *testing.B) {
		var n int
		for b.Loop() {
			n = serve(b, h, "/api/v1/fleet")
		}
		b.ReportMetric(float64(n), "resp-bytes")
	})
	b.Run("deploy-status", func(b *testing.B) {
		for b.Loop() {
			gs, err := deploy.Status(context.Background(), nc, "")
			if err != nil || len(gs) != 4 {
				b.Fatal(len(gs), err)
			}
		}
	})
}

// BenchmarkTraining measures the training view at 500 rounds (first
// load) and the page's update request after one more round (since=N).
func BenchmarkTraining(b *testing.B) {
	_, h, _ := benchFleet(b)
	for _, c := range []struct{ name, path string }{
		{"all-500-rounds", "/api/v1/training"},
		{"since-last-round", fmt.Sprintf("/api/v1/training?since=%d", benchRounds-1)},
		{"device-detail", "/api/v1/devices/dev-0500"},
		{"rollouts-4-groups", "/api/v1/rollouts"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				n = serve(b, h, c.path)
			}
			b.ReportMetric(float64(n), "resp-bytes")
		})
	}
}

// BenchmarkTrainingFromHistory is the cost of starting the training view
// with 500 stored rounds of 1,000 participants (the reports as
// federation.Hub.History returns them; BenchmarkHistory in
// federation/internal/hub reads them from the store), and
// BenchmarkTraining's first load after it, beside the same answer for
// 500 rounds passed live, in one process.
func BenchmarkTrainingFromHistory(b *testing.B) {
	var reps []federation.RoundReport
	for i := 1; i <= benchRounds; i++ {
		r := syntheticRound(i, benchDevices)
		r.EvalMetrics = map[string]float64{"auroc": 0.8}
		r.Privacy = &federation.ModeStatus{Mode: "dp", Epsilon: float64(i) / 100}
		r.Time = time.Now().UTC()
		reps = append(reps, r)
	}
	mk := func(hub Hub) *Dashboard {
		d, err := New(Config{Addr: "127.0.0.1:0", Hub: hub, Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
			Training: Training{Name: "bench", Strategy: "fedavg", Mode: "dp", TargetEpsilon: 8}})
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.Run("load-500-rounds", func(b *testing.B) {
		for b.Loop() {
			if d := mk(&histHub{reps: reps}); !d.st.loadHistory(context.Background()) {
				b.Fatal("history not loaded")
			}
		}
	})
	hist := mk(&histHub{reps: reps})
	if !hist.st.loadHistory(context.Background()) {
		b.Fatal("history not loaded")
	}
	live := mk(&fakeHub{})
	for _, r := range reps {
		live.Round(r, nil, nil)
	}
	for _, c := range []struct {
		name string
		d    *Dashboard
	}{{"from-history", hist}, {"live", live}} {
		h := c.d.handler()
		b.Run(c.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				n = serve(b, h, "/api/v1/training")
			}
			b.ReportMetric(float64(n), "resp-bytes")
		})
	}
}

// BenchmarkRound is the dashboard's cost of one finished round of 1,000
// participants, with one live stream listening.
func BenchmarkRound(b *testing.B) {
	d, _, _ := benchFleet(b)
	sub := d.bc.subscribe()
	done := make(chan struct{})
	go func() {
		for range sub {
		}
		close(done)
	}()
	rep := syntheticRound(benchRounds+1, benchDevices)
	ps := &federation.ModeStatus{Mode: "dp", Epsilon: 1}
	for b.Loop() {
		d.Round(rep, ps, nil)
	}
	d.bc.unsubscribe(sub)
	<-done
}
