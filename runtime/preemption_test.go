package runtime_test

// A guest that loops forever without host calls in a "host-calls" module
// is not tested here on purpose: nothing can stop it, and since Go cannot preempt a
// goroutine running compiled guest code, the test process's next garbage
// collection would wait for it forever. That is why the mode needs the
// operator's consent and suits trusted modules only (docs/RATIONALE.md).

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/runtime"
)

func TestHostCallPreemption(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{AllowHostCallPreemption: true})
	man := strings.Replace(probeManifest, "[limits]", "[limits]\npreemption = \"host-calls\"", 1)
	mod := compileProbe(t, eng, man)
	ctx := context.Background()

	// A loop that calls the host is trapped at its first host call after
	// the deadline.
	start := time.Now()
	_, err := mod.Call(ctx, "spinhost", nil)
	if !errors.Is(err, runtime.ErrDeadline) {
		t.Fatalf("spinhost: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("spinhost stopped after %v", d)
	}
	if out, err := mod.Call(ctx, "echo", []byte("x")); err != nil || string(out) != "x" {
		t.Fatalf("after spinhost: %q %v", out, err)
	}
	// Normal calls work and are not slowed by termination checks.
	if _, err := mod.Call(ctx, "count_loop", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}

	// A guest that runs past the deadline without host calls but does
	// finish is abandoned: the caller gets ErrDeadline after the grace
	// period, the module keeps serving on other instances, and the
	// abandoned instance is closed by its own goroutine when the guest
	// reaches its next host call.
	// A garbage collection starting meanwhile would wait for the runaway
	// (Go cannot preempt compiled guest code) and freeze the caller's
	// timers with it: keep the collector off for this part.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	short := strings.Replace(man, `"500ms"`, `"50ms"`, 1)
	mod2 := compileProbe(t, eng, short)
	start = time.Now()
	_, err = mod2.Call(ctx, "spinbrief", nil)
	if !errors.Is(err, runtime.ErrDeadline) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("spinbrief: %v after %v", err, time.Since(start))
	}
	if out, err := mod2.Call(ctx, "echo", []byte("z")); err != nil || string(out) != "z" {
		t.Fatalf("after abandoning: %q %v", out, err)
	}
	if s := mod2.Stats(); s.Abandoned != 1 || s.Deadlines != 1 {
		t.Fatalf("stats %+v", s)
	}
	mod2.Close(ctx) // must not disturb the runaway, which closes its own instance
	// The runaway reaches its host call, closes its instance and returns:
	// poll for its goroutine to be gone (the collector stays off till then).
	testutil.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if gs := testutil.Goroutines("runtime.(*Module).runCooperative.func"); len(gs) > 0 {
			return fmt.Errorf("the abandoned call still runs:\n%s", gs[0])
		}
		return nil
	})
}
