// Package testutil holds the helpers tests share: CheckFor polls a
// condition instead of sleeping, Buffer is a bytes.Buffer safe for
// concurrent writers (a child process's output, a logger), and
// NoGoroutine checks that no goroutine runs a given function.
package testutil

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// CheckFor calls cond every tick until it returns nil, and fails t with
// cond's last error if it has not within timeout (as nats-server's
// checkFor). cond is always called at least once.
func CheckFor(t testing.TB, timeout, tick time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, tick, cond); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// Poll calls cond every tick until it returns nil (Poll returns nil) or
// timeout passes (Poll returns cond's last error). For callers that cannot
// fail a test directly (helpers run in a child process).
func Poll(timeout, tick time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(tick)
	}
}

// Buffer is a bytes.Buffer that several goroutines may write and read.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Len returns the number of bytes written.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Bytes returns a copy of what was written.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns what was written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Goroutines returns the stacks of the running goroutines that have a frame
// whose function name contains fn (e.g. "deploy.(*Agent).watch").
func Goroutines(fn string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			// Frames are "pkg.fn(args)"; "created by pkg.fn in goroutine N"
			// names the creator, which is not running that function.
			if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "created by ") && strings.Contains(line, fn) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// NoGoroutine fails t if a goroutine is running a function whose name
// contains fn, showing its stack.
func NoGoroutine(t testing.TB, fn string) {
	t.Helper()
	if gs := Goroutines(fn); len(gs) > 0 {
		t.Fatalf("%d goroutine(s) still running %s:\n%s", len(gs), fn, strings.Join(gs, "\n\n"))
	}
}
