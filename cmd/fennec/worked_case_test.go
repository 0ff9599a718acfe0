package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/cbor"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// riskModule writes risk-infer as risk.wasm with its manifest risk.toml,
// and a risk model (logistic regression over its 14 features) as
// risk.cbor, the file a binding injects.
func riskModule(t *testing.T, dir string) {
	t.Helper()
	wasm, _, err := guests.Load(context.Background(), "risk-infer")
	if err != nil {
		t.Skipf("cannot build guest modules here: %v", err)
	}
	root, _ := guests.Root()
	toml, err := os.ReadFile(filepath.Join(root, "modules/risk-infer/fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "risk.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "risk.toml"), toml, 0o644)
	w := []float32{0.9, -0.4, -0.1, -0.8, 0.9, 0.5, 0.1, 0.6, 0.7, 0.5, -0.3, -0.4, 0.4, 0.2}
	m := sdk.Model{Name: "risk", Version: 1, Tensors: []sdk.TensorData{sdk.F32Data("0.weight", []int{14, 1}, w), sdk.F32Data("0.bias", []int{1}, []float32{-2})}}
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "risk.cbor"), b, 0o644)
}

// TestVitalsOverMQTT is the worked case end to end over real protocols:
// an agent whose MQTT binding runs vitals-preprocess then risk-infer (the
// model injected from a file, each bed's state carried), `fennec vitals
// --publish` sending N readings over MQTT, and a NATS subscriber on
// alerts.> seeing one risk score per reading, which moves as the
// patients' readings do.
func TestVitalsOverMQTT(t *testing.T) {
	dir := t.TempDir()
	preprocessModule(t, dir)
	riskModule(t, dir)
	np, mp := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`device = "w3"
[nats]
listen = "127.0.0.1:%d"
dir = "nats"
[mqtt]
listen = "127.0.0.1:%d"
[[module]]
name = "vitals-preprocess"
wasm = "pre.wasm"
[[module]]
name = "risk-infer"
wasm = "risk.wasm"
[[binding]]
name = "bedside"
module = "vitals-preprocess"
entry = "process"
source = "mqtt"
topic = "vitals/bed/+"
format = "json"
queue = 256
publish = "alerts.{device}.{3}"
carry = "state"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = "risk.cbor" }
`, np, mp)
	os.WriteFile(filepath.Join(dir, "device.toml"), []byte(cfg), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"agent", "--device-config", filepath.Join(dir, "device.toml")})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testutil.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("agent ended: %v\n%s", err, out.String())
		default:
		}
		if regexp.MustCompile(`serves \d+ bindings`).MatchString(out.String()) {
			return nil
		}
		return fmt.Errorf("not serving yet: %s", out.String())
	})
	nc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(np))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("alerts.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	// The nurse station: fennec alerts --follow --json, in-process.
	actx, acancel := context.WithCancel(context.Background())
	var aout testutil.Buffer
	aroot := newRoot()
	aroot.SetOut(&aout)
	aroot.SetErr(&aout)
	aroot.SetArgs([]string{"alerts", "--follow", "--json", "--nats", "nats://127.0.0.1:" + strconv.Itoa(np)})
	adone := make(chan error, 1)
	go func() { adone <- aroot.ExecuteContext(actx) }()
	defer func() {
		acancel()
		if err := <-adone; err != nil {
			t.Error(err)
		}
	}()
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if !strings.Contains(aout.String(), "following alerts.>") {
			return fmt.Errorf("alerts not following: %s", aout.String())
		}
		return nil
	})
	const n = 50
	pout, code := runFennec(t, dir, "vitals", "--patients", "2", "--hours", "2", "--rate", "0", "--count", strconv.Itoa(n),
		"--publish", fmt.Sprintf("mqtt://127.0.0.1:%d/vitals/bed/7", mp))
	if code != 0 {
		t.Fatalf("publish: %d %s", code, pout)
	}
	t.Log(pout)
	scores := map[float64]bool{}
	for i := 0; i < n; i++ {
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("alert %d of %d: %v\n%s", i, n, err, out.String())
		}
		if msg.Subject != "alerts.w3.7" {
			t.Fatalf("subject %s", msg.Subject)
		}
		var r struct {
			Scores   []float64 `json:"scores"`
			Patients []string  `json:"patients"`
		}
		if err := json.Unmarshal(msg.Data, &r); err != nil || len(r.Scores) != 1 || len(r.Patients) != 1 || r.Scores[0] <= 0 || r.Scores[0] >= 1 {
			t.Fatalf("alert %d: %s (%v)", i, msg.Data, err)
		}
		scores[r.Scores[0]] = true
	}
	// Carried state: each reading is normalised against its bed's history,
	// so the scores differ (alone, every first reading z-scores to 0).
	if len(scores) < n/2 {
		t.Fatalf("only %d distinct scores in %d readings", len(scores), n)
	}
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if got := strings.Count(aout.String(), `{"subject":"alerts.w3.7","data":{`); got != n {
			return fmt.Errorf("alerts printed %d lines, want %d", got, n)
		}
		return nil
	})
	if msg, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatalf("more than %d results: %s", n, msg.Data)
	}
}
