package natsembed

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/testutil"
)

// A taken listen address fails the start at once, naming the address;
// the store directory is private (0700), an existing one tightened.
func TestBusyPortAndStoreMode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ns, err := Start(context.Background(), Config{Name: "t", Dir: dir, Listen: l.Addr().String()})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a port in use")
	}
	if !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not name the busy address: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("busy port took %v to report", d)
	}
	fi, err := os.Stat(filepath.Join(dir, "jetstream"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %04o, want 0700", fi.Mode().Perm())
	}

	ns, err = Start(context.Background(), Config{Name: "t", Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"-": true, "127.0.0.1:4222": true, "localhost:1": true, "[::1]:4222": true,
		"0.0.0.0:4222": false, ":4222": false, "[::]:4222": false, "10.0.0.5:4222": false, "bad": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A start that fails leaves none of its own goroutines behind: the
// readiness wait used to run in a goroutine that outlived the failed start
// by up to Config.Ready.
func TestFailedStartLeavesNoGoroutine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ns, err := Start(context.Background(), Config{Name: "t", Dir: t.TempDir(), Listen: l.Addr().String(), Ready: time.Minute})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a port in use")
	}
	testutil.NoGoroutine(t, "natsembed.Start.func")
}
