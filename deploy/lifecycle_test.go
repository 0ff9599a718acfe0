package deploy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/runtime"
)

// notBefore fails t if done is closed while a hook holds a goroutine in
// place (for window, long enough for an owner that does not wait to
// return), then releases the hook and waits (bounded) for done.
func notBefore(t *testing.T, what string, done <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	select {
	case <-done:
		close(release)
		t.Fatalf("%s returned while its goroutine was still running", what)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return after its goroutine was released", what)
	}
}

func waitClosed(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestDeployerCloseWaitsForCrashLoop: Close returns only after the
// crash-loop goroutine it started has finished, and no goroutine of the
// Deployer is left.
func TestDeployerCloseWaitsForCrashLoop(t *testing.T) {
	r := newRig(t, t.TempDir(), func(c *DeployerConfig) { c.CrashLoopFailures = 3 })
	entered, release := make(chan struct{}), make(chan struct{})
	r.d.testHookCrashLoop = func() { close(entered); <-release }
	r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
	r.mustInstall(t, guestBundle(t, r.pub, "1.1.0", "RUN", "trap"))
	for range 3 {
		if _, err := callRun(t, r.d); !errors.Is(err, runtime.ErrTrap) {
			t.Fatalf("want a trap, got %v", err)
		}
	}
	waitClosed(t, "the crash-loop goroutine", entered)
	closed := make(chan struct{})
	go func() { r.d.Close(context.Background()); close(closed) }()
	notBefore(t, "Close", closed, release)
	testutil.NoGoroutine(t, "deploy.(*Deployer)")
}

// TestDeployerEventsOutsideLocks: OnEvent runs with no Deployer lock held,
// so it may call the Deployer (here Install, from inside the callback),
// and events arrive in order.
func TestDeployerEventsOutsideLocks(t *testing.T) {
	var dp atomic.Pointer[Deployer]
	var kinds []string
	var problems []string
	var nested atomic.Bool
	var r *rig
	var v3 []byte
	r = newRig(t, t.TempDir(), func(c *DeployerConfig) {
		c.OnEvent = func(e Event) {
			d := dp.Load()
			if d == nil {
				return
			}
			unlocked := true
			if !d.swapMu.TryLock() {
				problems = append(problems, e.Kind+" delivered under swapMu")
				unlocked = false
			} else {
				d.swapMu.Unlock()
			}
			if !d.mu.TryLock() {
				problems = append(problems, e.Kind+" delivered under mu")
				unlocked = false
			} else {
				d.mu.Unlock()
			}
			kinds = append(kinds, e.Kind+" "+e.Version.Version)
			// The callback installs the next version itself (unless that
			// would deadlock on a lock held around the callback).
			if unlocked && e.Kind == EventFailed && nested.CompareAndSwap(false, true) {
				if _, err := d.Install(context.Background(), v3, "OnEvent"); err != nil {
					problems = append(problems, "Install from OnEvent: "+err.Error())
				}
			}
		}
	})
	dp.Store(r.d)
	v3 = guestBundle(t, r.pub, "3.0.0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.mustInstall(t, guestBundle(t, r.pub, "1.0.0"))
		r.d.Install(context.Background(), guestBundle(t, r.pub, "2.0.0", "HEALTH", "fail"), "test")
	}()
	waitClosed(t, "the installs (a callback that calls the Deployer must not deadlock)", done)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if got, want := fmt.Sprint(kinds), "[installed 1.0.0 failed 2.0.0 installed 3.0.0]"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

// TestAgentRunWaitsForWatch: Run returns only after its watch goroutine
// has exited.
func TestAgentRunWaitsForWatch(t *testing.T) {
	f := newFleet(t, map[string]string{"d1": "g"})
	r := newRig(t, mkdir(t, filepath.Join(f.dir, "devices", "d1")), func(c *DeployerConfig) { c.Device = "d1" })
	a, err := NewAgent(AgentConfig{Conn: f.connect("d1", "d1"), Device: "d1", Group: "g", Deployer: r.d, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	a.testHookWatchDone = func() { close(entered); <-release }
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	var runErr error
	go func() { runErr = a.Run(ctx); close(ran) }()
	// Run is under way once the agent's first report is in the bucket.
	testutil.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		gs, err := Status(context.Background(), f.op, "g")
		if err != nil || len(gs) != 1 || len(gs[0].Devices) != 1 {
			return fmt.Errorf("no report from d1 yet: %v %+v", err, gs)
		}
		return nil
	})
	cancel()
	waitClosed(t, "watch to end", entered)
	notBefore(t, "Run", ran, release)
	if !errors.Is(runErr, context.Canceled) {
		t.Fatalf("Run: %v", runErr)
	}
	testutil.NoGoroutine(t, "deploy.(*Agent)")
}
