package serve

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/guests"
)

// TestIdleTrim: a module idle past its IdleTimeout loses its warm
// instances (the pool goes to 0 and AfterTrim runs); the next call starts
// one again and succeeds; a module with no IdleTimeout keeps its own.
func TestIdleTrim(t *testing.T) {
	module(t, "probe") // builds the guest and the engine once
	ctx := context.Background()
	wasm, _, err := guests.Load(ctx, "probe")
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *Compiled { // its own pool (the compiled code is shared)
		m, err := engine.Compile(ctx, wasm, probeManifest)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(context.Background()) })
		return NewCompiled(ctx, m, time.Second)
	}
	idle, warm := fresh(), fresh()
	idle.IdleTimeout = 100 * time.Millisecond
	src := `
[[binding]]
module = "idle"
entry = "echo"
source = "http"
[[binding]]
module = "warm"
entry = "echo"
source = "http"
`
	dc, err := ParseDeviceConfig([]byte(src), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var trims atomic.Int32
	s, err := New(Config{Device: dc, Modules: map[string]Module{"idle": idle, "warm": warm}, Listener: ln,
		Logger: slog.New(slog.DiscardHandler), AfterTrim: func() { trims.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(ctx)
	url := "http://" + ln.Addr().String() + "/v1/modules/"
	for _, m := range []string{"idle", "warm"} {
		if code, b := post(t, url+m+"/echo", "application/json", []byte(`{"a":1}`)); code != 200 {
			t.Fatalf("%s: %d %s", m, code, b)
		}
	}
	if n := idle.Mod.Stats().Idle; n != 1 {
		t.Fatalf("idle module: %d warm instances after a call, want 1", n)
	}
	// Each accepted call is in the admission-wait histogram.
	if n := metric(t, s.cfg.Gatherer, "fennec_binding_admission_wait_seconds", "binding", "idle-echo-0"); n != 1 {
		t.Fatalf("fennec_binding_admission_wait_seconds{binding=idle-echo-0}: %v samples, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle.Mod.Stats().Idle != 0 || trims.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not trimmed 5 s after a 100 ms idle timeout: %d warm instances, %d trims", idle.Mod.Stats().Idle, trims.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := warm.Mod.Stats().Idle; n != 1 {
		t.Fatalf("module without an idle timeout: %d warm instances, want 1", n)
	}
	before := idle.Mod.Stats().Instantiations
	if code, b := post(t, url+"idle/echo", "application/json", []byte(`{"a":1}`)); code != 200 {
		t.Fatalf("first call after the trim: %d %s", code, b)
	}
	if got := idle.Mod.Stats().Instantiations; got != before+1 {
		t.Fatalf("instantiations %d -> %d, want one more", before, got)
	}
}

func TestModuleIdleTimeoutConfig(t *testing.T) {
	dc, err := ParseDeviceConfig([]byte("[[module]]\nname = \"a\"\nwasm = \"a.wasm\"\n[[module]]\nname = \"b\"\nwasm = \"b.wasm\"\nidle_timeout = \"5m\"\n[[module]]\nname = \"c\"\nwasm = \"c.wasm\"\nkeep_warm = true\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{DefaultModuleIdleTimeout, 5 * time.Minute, 0} {
		if got := dc.Modules[i].IdleTimeout.Duration; got != want {
			t.Errorf("module %s: idle_timeout %v, want %v", dc.Modules[i].Name, got, want)
		}
	}
	for _, bad := range []string{"idle_timeout = \"-1s\"", "idle_timeout = \"1s\"\nkeep_warm = true"} {
		if _, err := ParseDeviceConfig([]byte("[[module]]\nname = \"a\"\nwasm = \"a.wasm\"\n"+bad+"\n"), "t.toml"); err == nil {
			t.Errorf("%q: accepted", bad)
		} else {
			t.Log(err)
		}
	}
}

func TestStandingQueueDefault(t *testing.T) {
	dc, err := ParseDeviceConfig([]byte("[nats]\nlisten = \"127.0.0.1:0\"\n[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"x\"\n[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"y\"\nstanding_queue = \"50ms\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{DefaultStandingQueue, 0, 50 * time.Millisecond} {
		if got := dc.Bindings[i].StandingQueue.Duration; got != want {
			t.Errorf("binding %d (%s): standing_queue %v, want %v", i, dc.Bindings[i].Source, got, want)
		}
	}
}
