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
