package main

import (
	"context"
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

	"github.com/fennec-edge/fennec/internal/testutil"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestVitalsOverMQTT is the worked case's transport end to end: an agent
// serving vitals-preprocess on an MQTT binding, `fennec vitals --publish`
// sending N readings over MQTT, and a NATS subscriber on alerts.> seeing
// one result per reading.
func TestVitalsOverMQTT(t *testing.T) {
	dir := t.TempDir()
	preprocessModule(t, dir)
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
[[binding]]
name = "bedside"
module = "vitals-preprocess"
entry = "process"
source = "mqtt"
topic = "vitals/bed/+"
format = "json"
queue = 256
publish = "alerts.{device}.{3}"
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
	for i := 0; i < n; i++ {
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("alert %d of %d: %v\n%s", i, n, err, out.String())
		}
		if msg.Subject != "alerts.w3.7" {
			t.Fatalf("subject %s", msg.Subject)
		}
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
