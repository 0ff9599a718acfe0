package serve

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLimiterStandingQueue: a queue that bursts takes up to its capacity;
// one that has not emptied for the standing time takes only conc waiting
// requests (ShedOverload beyond), until a request finds a free run slot.
func TestLimiterStandingQueue(t *testing.T) {
	now := time.Unix(1000, 0)
	g := func() prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}) }
	l := newLimiter(2, 8, time.Second, 100*time.Millisecond, g(), g())
	l.now = func() time.Time { return now }
	l.lastEmpty.Store(now.UnixNano())
	ctx := context.Background()
	for i := 0; i < 2; i++ { // both run slots, taken at once
		if shed := l.wait(ctx); shed != "" {
			t.Fatalf("run %d: %s", i, shed)
		}
	}
	for i := 0; i < 8; i++ { // a burst fills the queue (admitted, not yet running)
		if shed := l.tryAdmit(); shed != "" {
			t.Fatalf("burst %d: %s", i, shed)
		}
	}
	if shed := l.tryAdmit(); shed != ShedQueueFull {
		t.Fatalf("full: %q, want %s", shed, ShedQueueFull)
	}
	for i := 0; i < 6; i++ { // 2 left waiting
		l.leave()
	}
	now = now.Add(150 * time.Millisecond) // no request found a free slot since
	if shed := l.tryAdmit(); shed != ShedOverload {
		t.Fatalf("standing queue, %d waiting: %q, want %s", len(l.admit)-len(l.run), shed, ShedOverload)
	}
	l.leave() // 1 waiting: fewer than conc may still wait
	if shed := l.tryAdmit(); shed != "" {
		t.Fatalf("standing queue, 1 waiting: %q, want admitted", shed)
	}
	if shed := l.tryAdmit(); shed != ShedOverload {
		t.Fatalf("standing queue, 2 waiting: %q, want %s", shed, ShedOverload)
	}
	// The queue drains and a request finds a run slot free: while requests
	// were shed within the standing interval, that is the shedding at
	// work, not the end of the overload.
	l.leave()
	l.leave()
	l.done()
	if shed := l.wait(ctx); shed != "" {
		t.Fatalf("free slot: %s", shed)
	}
	l.tryAdmit()
	l.tryAdmit()
	if shed := l.tryAdmit(); shed != ShedOverload {
		t.Fatalf("queue emptied right after shedding: %q, want still %s", shed, ShedOverload)
	}
	l.leave()
	l.leave()
	l.done()
	now = now.Add(150 * time.Millisecond) // no shedding since
	if shed := l.wait(ctx); shed != "" {
		t.Fatalf("free slot: %s", shed)
	}
	for i := 0; i < 8; i++ {
		if shed := l.tryAdmit(); shed != "" {
			t.Fatalf("after the queue emptied, burst %d: %s", i, shed)
		}
	}
}

// TestLimiterOverloaded: a call yields (overloaded) once the queue has not
// emptied for the standing time, or, with standing_queue set, while
// requests were shed for overload within it; nats and mqtt bindings
// (standing 0) yield after DefaultStandingQueue and never shed for
// overload.
func TestLimiterOverloaded(t *testing.T) {
	g := func() prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}) }
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name      string
		standing  time.Duration
		sinceRan  time.Duration // since a request last found the binding idle
		sinceShed time.Duration // since the last ShedOverload; 0: never
		want      bool
	}{
		{"http idle", 100 * time.Millisecond, 10 * time.Millisecond, 0, false},
		{"http burst", 100 * time.Millisecond, 100 * time.Millisecond, 0, false},
		{"http standing", 100 * time.Millisecond, 101 * time.Millisecond, 0, true},
		{"http shedding", 100 * time.Millisecond, time.Millisecond, 50 * time.Millisecond, true},
		{"http shed long ago", 100 * time.Millisecond, time.Millisecond, 200 * time.Millisecond, false},
		{"nats idle", 0, 50 * time.Millisecond, 0, false},
		{"nats standing", 0, DefaultStandingQueue + time.Millisecond, 0, true},
		{"custom standing", 20 * time.Millisecond, 30 * time.Millisecond, 0, true},
	} {
		l := newLimiter(2, 8, time.Second, tc.standing, g(), g())
		now := t0.Add(time.Hour)
		l.now = func() time.Time { return now }
		l.lastEmpty.Store(now.Add(-tc.sinceRan).UnixNano())
		if tc.sinceShed > 0 {
			l.lastShed.Store(now.Add(-tc.sinceShed).UnixNano())
		}
		if got := l.overloaded(); got != tc.want {
			t.Errorf("%s: overloaded %v, want %v", tc.name, got, tc.want)
		}
	}
	// A nats binding's queue never sheds for overload, standing or not.
	l := newLimiter(1, 4, time.Second, 0, g(), g())
	now := t0
	l.now = func() time.Time { return now }
	l.lastEmpty.Store(now.UnixNano())
	if shed := l.wait(context.Background()); shed != "" {
		t.Fatal(shed)
	}
	now = now.Add(time.Second)
	for i := 0; i < 4; i++ {
		if shed := l.tryAdmit(); shed != "" {
			t.Fatalf("nats queue %d: %s", i, shed)
		}
	}
	if !l.overloaded() {
		t.Error("nats binding with a queue standing 1 s: not overloaded")
	}
}
