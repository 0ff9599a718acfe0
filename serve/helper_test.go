package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/runtime"
)

var (
	engMu  sync.Mutex
	engine *runtime.Engine
	mods   = map[string]*runtime.Module{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if engine != nil {
		engine.Close(context.Background())
	}
	os.Exit(code)
}

// probeManifest serves the probe guest's echo (tiny), spin (runs into its
// deadline), crash (traps) and fail (returns an error status).
var probeManifest = runtime.Manifest{Name: "probe", Version: "1.0.0",
	Entrypoints:  []string{"echo", "spin", "crash", "fail"},
	Capabilities: []string{"tensor"},
	Limits:       runtime.Limits{CallTimeout: runtime.Duration{Duration: 300 * time.Millisecond}, Instances: 4}}

// module builds (once, cached by source hash) and compiles a guest.
func module(t testing.TB, name string) *runtime.Module {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs wasm guests; skipped with -short")
	}
	engMu.Lock()
	defer engMu.Unlock()
	if m, ok := mods[name]; ok {
		return m
	}
	ctx := context.Background()
	if engine == nil {
		var err error
		engine, err = runtime.New(ctx, runtime.Config{CacheDir: filepath.Join(os.TempDir(), "fennec-test-wazero-cache"),
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
	}
	wasm, man, err := guests.Load(ctx, name)
	if errors.Is(err, guests.ErrNoSource) {
		t.Skipf("guest %s: %v", name, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if name == "probe" {
		man = probeManifest
	}
	m, err := engine.Compile(ctx, wasm, man)
	if err != nil {
		t.Fatal(err)
	}
	mods[name] = m
	return m
}

// natsServer starts an embedded nats-server with an MQTT listener and
// returns a client connection and the MQTT address.
func natsServer(t testing.TB) (*nats.Conn, *server.Server, string) {
	t.Helper()
	var opts *server.Options
	ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "serve-test", Dir: t.TempDir(), Listen: "127.0.0.1:0",
		Configure: func(o *server.Options) {
			opts = o
			o.MQTT.Host, o.MQTT.Port = "127.0.0.1", -1
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, ns, fmt.Sprintf("127.0.0.1:%d", opts.MQTT.Port)
}

// startServer parses src and serves it with mods on a loopback listener.
func startServer(t testing.TB, src string, mods map[string]Module, nc *nats.Conn) (*Server, *prometheus.Registry, string) {
	t.Helper()
	dc, err := ParseDeviceConfig([]byte(src), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	s, err := New(Config{Device: dc, Modules: mods, Conn: nc, Registerer: reg, Listener: ln, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.Ready(5 * time.Second) {
		t.Fatal("not ready")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error("shutdown:", err)
		}
	})
	return s, reg, "http://" + ln.Addr().String()
}

// metric returns the value of the counter or gauge name with labels.
func metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func post(t testing.TB, url, ctype string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
