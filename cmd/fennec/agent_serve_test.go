package main

import (
	"bytes"
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

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/serve"
)

func TestDeviceConfigExample(t *testing.T) {
	dc, err := serve.ReadDeviceConfig("testdata/device/device.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.Bindings) != 3 || dc.Bindings[2].NATSSubject() != "vitals.bed.*" || dc.Bindings[2].Carry != "state" ||
		len(dc.Bindings[2].Then) != 1 || dc.Bindings[2].Then[0].Inject["model"] != "risk.cbor" {
		t.Fatalf("bindings %+v", dc.Bindings)
	}
}

// TestAgentServes runs `fennec agent --device-config` with no hub: it
// serves vitals-preprocess over HTTP and NATS, with /metrics and /readyz.
func TestAgentServes(t *testing.T) {
	dir := t.TempDir()
	preprocessModule(t, dir)
	cfg := `device = "t1"
[nats]
dir = "nats"
[[module]]
name = "vitals-preprocess"
wasm = "pre.wasm"
[[binding]]
name = "pre"
module = "vitals-preprocess"
entry = "process"
source = "http"
[[binding]]
name = "pre-nats"
module = "vitals-preprocess"
entry = "process"
source = "nats"
subject = "vitals.process"
`
	os.WriteFile(filepath.Join(dir, "device.toml"), []byte(cfg), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"agent", "--device-config", filepath.Join(dir, "device.toml"), "--http", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	re := regexp.MustCompile(`serving http://(\S+) `)
	var addr string
	testutil.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("agent ended: %v\n%s", err, out.String())
		default:
		}
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			return nil
		}
		return fmt.Errorf("not serving yet: %s", out.String())
	})
	resp, err := http.Post("http://"+addr+"/v1/modules/vitals-preprocess/process", "application/json",
		bytes.NewReader([]byte(`{"records": [{"patient": "a", "t": 0, "hr": 80}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"records"`) {
		t.Fatalf("call: %d %s", resp.StatusCode, b)
	}
	for path, want := range map[string]string{"/readyz": "ready", "/metrics": `fennec_module_calls_total{entry="process",module="vitals-preprocess",outcome="ok"} 1`} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d, want %q in\n%s", path, resp.StatusCode, want, b)
		}
	}
}

func TestAgentDeviceConfigErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nqueue = -3\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "missing.toml"), []byte("[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\n"), 0o644)
	for file, want := range map[string]string{
		"bad.toml":     `bad.toml:5: field "binding[0].queue": -3 is outside 0..4096`,
		"missing.toml": `module "m" is neither a [[module]] of the device config nor deployed`,
	} {
		out, code := runFennec(t, dir, "agent", "--device-config", file)
		if code != exitBadInput || !strings.Contains(out, want) {
			t.Errorf("%s: %d %q, want %q", file, code, out, want)
		}
	}
}
