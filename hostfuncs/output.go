package hostfuncs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fennec-edge/fennec/internal/config"
)

// OutputLimits bound what one guest instance may put into the host's log.
// Its three streams (fennec.log records and the lines it writes to stdout
// and stderr) draw on one token bucket of lines and one of bytes; a line
// for which either bucket lacks tokens is dropped and counted, and one
// record per Window says how many were dropped. Zero fields take the
// defaults below.
type OutputLimits struct {
	LinesPerSecond float64       // sustained lines per second
	BytesPerSecond float64       // sustained bytes per second (of the kept text)
	BurstLines     int           // lines that may be written at once
	BurstBytes     int           // bytes that may be written at once (at least MaxLine)
	MaxLine        int           // longer lines are cut here and marked as truncated
	Window         time.Duration // at most one "dropped" record per window
}

// Defaults for OutputLimits: a chatty guest is never throttled in normal
// use, a flooding one costs the host at most about 64 KiB and 100 records
// a second (plus the burst) per instance.
const (
	DefaultLogLinesPerSecond = 100
	DefaultLogBytesPerSecond = 64 << 10
	DefaultLogBurstLines     = 1000
	DefaultLogBurstBytes     = 256 << 10
	DefaultMaxLogLine        = maxMessage
	DefaultLogWindow         = time.Second
)

// withDefaults fills the zero fields; a negative one is an error naming it.
func (l OutputLimits) withDefaults() (OutputLimits, error) {
	err := errors.Join(
		config.Default("hostfuncs: OutputLimits.LinesPerSecond", &l.LinesPerSecond, DefaultLogLinesPerSecond),
		config.Default("hostfuncs: OutputLimits.BytesPerSecond", &l.BytesPerSecond, DefaultLogBytesPerSecond),
		config.Default("hostfuncs: OutputLimits.BurstLines", &l.BurstLines, DefaultLogBurstLines),
		config.Default("hostfuncs: OutputLimits.MaxLine", &l.MaxLine, DefaultMaxLogLine),
		config.Default("hostfuncs: OutputLimits.BurstBytes", &l.BurstBytes, DefaultLogBurstBytes),
		config.Default("hostfuncs: OutputLimits.Window", &l.Window, DefaultLogWindow),
	)
	l.BurstBytes = max(l.BurstBytes, l.MaxLine)
	return l, err
}

// OutputStats counts an instance's log output since it was created.
type OutputStats struct {
	Lines        int64 // lines written to the host log
	Bytes        int64 // bytes of those lines (as kept)
	DroppedLines int64 // lines dropped by the rate limit
	DroppedBytes int64 // bytes of the dropped lines (as the guest wrote them)
	Truncated    int64 // lines cut at MaxLine
}

// outputLimiter is an instance's rate limit on its log output. It is safe
// for concurrent use (WASI writes and host calls come from the guest's
// goroutine, but the runtime may close an instance from another).
type outputLimiter struct {
	mu          sync.Mutex
	lim         OutputLimits
	lines       *rate.Limiter
	bytes       *rate.Limiter
	now         func() time.Time
	stats       OutputStats
	pendLines   int64 // dropped since the last report
	pendBytes   int64
	windowStart time.Time // first drop not yet reported
}

// newOutputLimiter applies l, whose defaults NewInstance filled.
func newOutputLimiter(l OutputLimits, now func() time.Time) *outputLimiter {
	if now == nil {
		now = time.Now
	}
	return &outputLimiter{
		lim:   l,
		lines: rate.NewLimiter(rate.Limit(l.LinesPerSecond), l.BurstLines),
		bytes: rate.NewLimiter(rate.Limit(l.BytesPerSecond), l.BurstBytes),
		now:   now,
	}
}

// emit logs one line of guest output at level, if the rate limit allows;
// total is the length of the line as the guest wrote it (at least
// len(text): the caller may have kept only a prefix). Text beyond MaxLine is
// cut off and the record says so.
func (o *outputLimiter) emit(log *slog.Logger, level slog.Level, text []byte, total int, attrs ...any) {
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return
	}
	total = max(total, len(text))
	keep := min(len(text), o.lim.MaxLine)
	o.mu.Lock()
	now := o.now()
	allowed := o.lines.TokensAt(now) >= 1 && o.bytes.TokensAt(now) >= float64(keep)
	if allowed {
		o.lines.AllowN(now, 1)
		o.bytes.AllowN(now, keep)
		o.stats.Lines++
		o.stats.Bytes += int64(keep)
		if keep < total {
			o.stats.Truncated++
		}
	} else {
		o.stats.DroppedLines++
		o.stats.DroppedBytes += int64(total)
		if o.pendLines == 0 {
			o.windowStart = now
		}
		o.pendLines++
		o.pendBytes += int64(total)
	}
	var repLines, repBytes int64
	if o.pendLines > 0 && now.Sub(o.windowStart) >= o.lim.Window {
		repLines, repBytes = o.takePending()
	}
	o.mu.Unlock()
	if repLines > 0 {
		o.report(log, repLines, repBytes)
	}
	if !allowed {
		return
	}
	msg := string(text[:keep])
	if keep < total {
		msg = fmt.Sprintf("%s [truncated: %d of %d bytes kept]", msg, keep, total)
		attrs = append(attrs, "truncated", true)
	}
	log.Log(ctx, level, msg, attrs...)
}

func (o *outputLimiter) takePending() (lines, bytes int64) {
	lines, bytes = o.pendLines, o.pendBytes
	o.pendLines, o.pendBytes = 0, 0
	return lines, bytes
}

// flush reports drops not yet reported (at the end of a call and when the
// instance closes), so that no window's drops go unsaid.
func (o *outputLimiter) flush(log *slog.Logger) {
	o.mu.Lock()
	lines, bytes := o.takePending()
	o.mu.Unlock()
	if lines > 0 {
		o.report(log, lines, bytes)
	}
}

func (o *outputLimiter) report(log *slog.Logger, lines, bytes int64) {
	log.Warn(fmt.Sprintf("%d log lines dropped", lines), "source", "host", "dropped_lines", lines, "dropped_bytes", bytes,
		"limit", fmt.Sprintf("%g lines/s and %g bytes/s per instance (burst %d lines, %d bytes)",
			o.lim.LinesPerSecond, o.lim.BytesPerSecond, o.lim.BurstLines, o.lim.BurstBytes))
}

func (o *outputLimiter) snapshot() OutputStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// GuestOutput logs one line the guest wrote to stream ("stdout" or
// "stderr") through the instance's rate limit, the one fennec.log uses.
// total is the line's full length when the caller kept only a prefix of it
// (0: len(line)). The runtime's WASI writers call it.
func (in *Instance) GuestOutput(level slog.Level, stream string, line []byte, total int) {
	in.out.emit(in.log, level, line, total, "stream", stream)
}

// OutputStats reports the instance's log output and what its rate limit
// dropped.
func (in *Instance) OutputStats() OutputStats { return in.out.snapshot() }
