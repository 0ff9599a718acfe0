package serve

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limiter bounds a binding: at most conc calls run, at most queue more
// wait, each for at most timeout. Both bounds are channel capacities, so
// nothing grows with the offered load. When the queue has not emptied for
// standing (a standing queue: the offered load exceeds what the binding
// serves, it is not a burst), only conc requests may wait, so an accepted
// request waits about one call, not queue/conc calls.
type limiter struct {
	admit    chan struct{} // cap conc+queue: requests admitted (running or waiting)
	run      chan struct{} // cap conc: requests running
	conc     int
	timeout  time.Duration
	standing time.Duration
	queued   prometheus.Gauge
	inFlight prometheus.Gauge
	now      func() time.Time // time.Now; a test's clock

	waiting   atomic.Int32 // requests waiting for a run slot
	lastEmpty atomic.Int64 // unix ns when a request last ran with none waiting
	lastShed  atomic.Int64 // unix ns of the last ShedOverload

	mu      sync.Mutex
	lastLog map[string]time.Time
}

func newLimiter(conc, queue int, timeout, standing time.Duration, queued, inFlight prometheus.Gauge) *limiter {
	l := &limiter{admit: make(chan struct{}, conc+queue), run: make(chan struct{}, conc), conc: conc,
		timeout: timeout, standing: standing, queued: queued, inFlight: inFlight, now: time.Now, lastLog: map[string]time.Time{}}
	l.lastEmpty.Store(l.now().UnixNano())
	return l
}

// tryAdmit takes an admission slot without waiting; "" means admitted (the
// request must call waitAdmitted next, or leave), else the reason it is
// shed: ShedQueueFull (concurrency and queue full) or ShedOverload (the
// queue has stood for standing and conc requests are already waiting or
// being read).
func (l *limiter) tryAdmit() string {
	if len(l.admit) == cap(l.admit) {
		return ShedQueueFull
	}
	if pending := len(l.admit) - len(l.run); pending >= l.conc && l.standing > 0 {
		if now := l.now().UnixNano(); now-l.lastEmpty.Load() > int64(l.standing) {
			l.lastShed.Store(now)
			return ShedOverload
		}
	}
	select {
	case l.admit <- struct{}{}:
		return ""
	default:
		return ShedQueueFull
	}
}

// overloaded reports whether the binding's queue is standing: it has not
// emptied (ran) for standing (DefaultStandingQueue where standing is 0,
// as on nats and mqtt bindings by default: there it only makes the calls
// yield, it sheds nothing), or requests were shed for overload within the
// last standing interval.
func (l *limiter) overloaded() bool {
	now := l.now().UnixNano()
	after := l.standing
	if after <= 0 {
		after = DefaultStandingQueue
	} else if now-l.lastShed.Load() <= int64(l.standing) {
		return true
	}
	return now-l.lastEmpty.Load() > int64(after)
}

// ran notes that a request found a run slot free with no other request
// admitted and not running (none waiting, none still being read): the
// binding had room, its queue is not standing. (A request that waited does
// not count: under overload the queue passes through empty at every
// hand-over.)
//
// Shedding keeps the queue short, so it empties under overload too: while
// requests were shed for overload within the last standing interval, an
// empty queue does not end the overload (else the whole queue would open,
// fill at once and stand again).
func (l *limiter) ran() {
	if l.waiting.Load() == 0 && len(l.admit)-len(l.run) == 0 {
		if now := l.now().UnixNano(); now-l.lastShed.Load() > int64(l.standing) {
			l.lastEmpty.Store(now)
		}
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
	if !admitted {
		if shed := l.tryAdmit(); shed != "" {
			return shed
		}
	}
	select {
	case l.run <- struct{}{}:
		l.inFlight.Inc()
		l.ran()
		return ""
	default:
	}
	l.queued.Inc()
	l.waiting.Add(1)
	defer l.queued.Dec()
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case l.run <- struct{}{}:
		l.waiting.Add(-1)
		l.inFlight.Inc()
		return ""
	case <-t.C:
		l.waiting.Add(-1)
		l.leave()
		return ShedQueueTimeout
	case <-ctx.Done():
		l.waiting.Add(-1)
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
