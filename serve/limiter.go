package serve

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limiter bounds a binding: at most conc calls run, at most queue more
// wait, each for at most timeout. Both bounds are channel capacities, so
// nothing grows with the offered load.
type limiter struct {
	admit    chan struct{} // cap conc+queue: requests admitted (running or waiting)
	run      chan struct{} // cap conc: requests running
	timeout  time.Duration
	queued   prometheus.Gauge
	inFlight prometheus.Gauge

	mu      sync.Mutex
	lastLog map[string]time.Time
}

func newLimiter(conc, queue int, timeout time.Duration, queued, inFlight prometheus.Gauge) *limiter {
	return &limiter{admit: make(chan struct{}, conc+queue), run: make(chan struct{}, conc),
		timeout: timeout, queued: queued, inFlight: inFlight, lastLog: map[string]time.Time{}}
}

// tryAdmit takes an admission slot without waiting; false means the
// binding is full (shed with ShedQueueFull). An admitted request must call
// wait next (or leave).
func (l *limiter) tryAdmit() bool {
	select {
	case l.admit <- struct{}{}:
		return true
	default:
		return false
	}
}

// leave gives back an admission slot taken by tryAdmit when the request
// will not run.
func (l *limiter) leave() { <-l.admit }

// wait admits (if not yet) and waits for a run slot; it returns "" when
// the request may run (call done after), else the shed reason (the
// admission is given back).
func (l *limiter) wait(ctx context.Context) string {
	return l.waitAdmitted(ctx, false)
}

func (l *limiter) waitAdmitted(ctx context.Context, admitted bool) string {
	if !admitted && !l.tryAdmit() {
		return ShedQueueFull
	}
	select {
	case l.run <- struct{}{}:
		l.inFlight.Inc()
		return ""
	default:
	}
	l.queued.Inc()
	defer l.queued.Dec()
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case l.run <- struct{}{}:
		l.inFlight.Inc()
		return ""
	case <-t.C:
		l.leave()
		return ShedQueueTimeout
	case <-ctx.Done():
		l.leave()
		return ShedQueueTimeout
	}
}

// done ends a call that wait let run.
func (l *limiter) done() {
	l.inFlight.Dec()
	<-l.run
	<-l.admit
}

// logShed reports whether a shed with reason should be logged: once a
// second per reason, so that an overload does not flood the log (the
// counter has every one).
func (l *limiter) logShed(reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.lastLog[reason]) < time.Second {
		return false
	}
	l.lastLog[reason] = now
	return true
}
