package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/serve"
)

// TestAgentLeafServes runs `fennec agent --leaf --device-config` against
// `fennec hub --leaf-listen`: the device's MQTT binding runs on its leaf
// node, so the scores it publishes on alerts.{device}.{3} are kept in the
// outbox and taken by the hub (fennec_leaf_outbox_* on the agent's
// /metrics), and [nats] listen opens the leaf's server to local clients.
func TestAgentLeafServes(t *testing.T) {
	dir, natsAddr, mqttAddr := leafDevice(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	ctx, cancel := context.WithCancel(context.Background())
	var waits []func() error // the agent first, then the hub
	defer func() {
		cancel()
		for i := len(waits) - 1; i >= 0; i-- {
			waits[i]()
		}
	}()
	leafAddr := freeAddr(t)
	// Two devices per round: this one joins, no round runs.
	hubOut, hubWait := background(ctx, "hub", "--data", p("hub"), "--listen", freeAddr(t), "--leaf-listen", leafAddr,
		"--init-mlp", "7,4,1", "--min-devices", "2", "--rounds", "1")
	waits = append(waits, hubWait)
	testutil.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(hubOut.String(), "leaf nodes connect at") {
			return fmt.Errorf("hub not ready:\n%s", hubOut.String())
		}
		return nil
	})
	creds, code := runFennec(t, dir, "hub", "creds", "--secret", p("hub/fleet.secret"), "--id", "ward3")
	if code != exitOK {
		t.Fatalf("hub creds: %d %s", code, creds)
	}
	os.WriteFile(p("ward3.creds"), []byte(creds), 0o600)
	args := []string{"agent", "--leaf", "nats-leaf://" + leafAddr, "--leaf-dir", p("leaf"), "--creds", p("ward3.creds"),
		"--module", p("risk-train.wasm"), "--data", p("ward3.csv"), "--device-config", p("device.toml"), "--http", "127.0.0.1:0"}

	agentOut, agentWait := background(ctx, args...)
	waits = append(waits, agentWait)
	re := regexp.MustCompile(`serving http://(\S+) `)
	var addr string
	testutil.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if m := re.FindStringSubmatch(agentOut.String()); m != nil {
			addr = m[1]
			return nil
		}
		return fmt.Errorf("agent not serving:\n%s", agentOut.String())
	})
	if !strings.Contains(agentOut.String(), "device ward3 serves local clients at nats://"+natsAddr) {
		t.Fatalf("the leaf's server does not listen on [nats] listen %s:\n%s", natsAddr, agentOut.String())
	}
	recs, err := vitals.Generate(vitals.Config{Patients: 1, Hours: 2})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	if err := publishVitals(ctx, publishOpts{url: "mqtt://" + mqttAddr + "/vitals/bed/7", count: n}, recs, io.Discard); err != nil {
		t.Fatal(err)
	}
	// The MQTT message stream is the leaf's own, in memory (not the hub's).
	lc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	ljs, _ := lc.JetStream()
	if si, err := ljs.StreamInfo(serve.MQTTMessagesStream); err != nil || si.Config.Storage != nats.MemoryStorage {
		t.Fatalf("the leaf's MQTT message stream: %+v, %v\n%s", si, err, agentOut.String())
	}
	metrics := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	testutil.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		m := metrics()
		for _, want := range []string{
			fmt.Sprintf(`fennec_module_calls_total{entry="process",module="vitals-preprocess",outcome="ok"} %d`, n),
			fmt.Sprintf("fennec_leaf_outbox_messages %d\n", n),
			"fennec_leaf_outbox_pending_messages 0\n",
			"fennec_leaf_hub_connected 1\n",
		} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("want %q in the agent's metrics:\n%s", want, grepLines(m, "fennec_leaf_", "fennec_module_calls"))
			}
		}
		return nil
	})

	// A device config that names another device is refused: its alerts
	// would miss the outbox. (Bounded: an agent that took it would serve
	// until interrupted.)
	other := strings.Replace(readFile(t, p("device.toml")), `device = "ward3"`, `device = "ward9"`, 1)
	other = strings.NewReplacer(natsAddr, freeAddr(t), mqttAddr, freeAddr(t)).Replace(other)
	os.WriteFile(p("other.toml"), []byte(other), 0o644)
	bad := append(append([]string{}, args[:len(args)-3]...), p("other.toml"))
	bad[4] = p("leaf-other") // --leaf-dir
	bctx, bcancel := context.WithTimeout(ctx, 20*time.Second)
	defer bcancel()
	out, wait := background(bctx, bad...)
	if err := wait(); !strings.Contains(fmt.Sprint(err), `set device = "ward3"`) {
		t.Fatalf("agent with device ward9's config: %v\n%s", err, out.String())
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// grepLines keeps the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// leafDevice writes what an agent with a leaf node and an MQTT binding
// needs into a new directory: the training module and its data (ward3.csv),
// pre.wasm (vitals-preprocess) and device.toml, which binds vitals/bed/+ on
// mqttAddr to vitals-preprocess and publishes on alerts.ward3.{3}, with
// [nats] listen natsAddr.
func leafDevice(t *testing.T) (dir, natsAddr, mqttAddr string) {
	t.Helper()
	dir = t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	preprocessModule(t, dir)
	train, _, err := guests.Load(context.Background(), "risk-train")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := guests.Root()
	man, err := os.ReadFile(filepath.Join(root, "modules", "risk-train", "fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("risk-train.wasm"), train, 0o644)
	os.WriteFile(p("risk-train.toml"), man, 0o644)
	var csv strings.Builder
	for n := range 20 {
		fmt.Fprintf(&csv, "0.1,0.2,0.3,0.4,0.5,0.6,%.1f,%d\n", float64(n%5)/5, n%2)
	}
	os.WriteFile(p("ward3.csv"), []byte(csv.String()), 0o644)
	natsAddr, mqttAddr = freeAddr(t), freeAddr(t)
	os.WriteFile(p("device.toml"), []byte(fmt.Sprintf(`device = "ward3"
[nats]
listen = %q
[mqtt]
listen = %q
[[module]]
name = "vitals-preprocess"
wasm = "pre.wasm"
[[binding]]
name = "bedside"
module = "vitals-preprocess"
entry = "process"
source = "mqtt"
topic = "vitals/bed/+"
format = "json"
publish = "alerts.{device}.{3}"
`, natsAddr, mqttAddr)), 0o644)
	return dir, natsAddr, mqttAddr
}

// TestAgentLeafServesOffline starts `fennec agent --leaf --device-config`
// with no hub to reach: the device serves at once, scores its MQTT
// readings and keeps what it publishes in the outbox (before, it waited
// for the hub before serving anything).
func TestAgentLeafServesOffline(t *testing.T) {
	dir, _, mqttAddr := leafDevice(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	secret := p("fleet.secret")
	os.WriteFile(secret, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	creds, code := runFennec(t, dir, "hub", "creds", "--secret", secret, "--id", "ward3")
	if code != exitOK {
		t.Fatalf("hub creds: %d %s", code, creds)
	}
	os.WriteFile(p("ward3.creds"), []byte(creds), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	out, wait := background(ctx, "agent", "--leaf", "nats-leaf://"+freeAddr(t), "--leaf-dir", p("leaf"), "--creds", p("ward3.creds"),
		"--module", p("risk-train.wasm"), "--data", p("ward3.csv"), "--device-config", p("device.toml"), "--http", "127.0.0.1:0")
	defer func() { cancel(); wait() }()
	re := regexp.MustCompile(`serving http://(\S+) `)
	var addr string
	testutil.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			return nil
		}
		return fmt.Errorf("agent not serving without its hub:\n%s", out.String())
	})
	recs, err := vitals.Generate(vitals.Config{Patients: 1, Hours: 2})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	if err := publishVitals(ctx, publishOpts{url: "mqtt://" + mqttAddr + "/vitals/bed/7", count: n}, recs, io.Discard); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := string(b)
		for _, want := range []string{
			fmt.Sprintf(`fennec_module_calls_total{entry="process",module="vitals-preprocess",outcome="ok"} %d`, n),
			fmt.Sprintf("fennec_leaf_outbox_pending_messages %d\n", n),
			"fennec_leaf_hub_connected 0\n",
		} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("want %q in the agent's metrics:\n%s", want, grepLines(m, "fennec_leaf_", "fennec_module_calls"))
			}
		}
		return nil
	})
}
