package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/cbor"
)

// `fennec hub --http` serves the dashboard; `fennec hub token` signs an
// operator in; without the token, or beyond loopback without --access,
// it refuses.
func TestHubDashboard(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "alice.nk")
	nk, err := deploy.GenerateNkey(seed)
	if err != nil {
		t.Fatal(err)
	}
	acc := filepath.Join(dir, "access.toml")
	if err := os.WriteFile(acc, []byte("[[operator]]\nname = \"alice\"\nnkey = \""+nk+"\"\nrole = \"read\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runPrivacy(t, "hub", "--data", filepath.Join(dir, "h0"), "--listen", freeAddr(t), "--http", "0.0.0.0:0", "--init-mlp", "7,1"); err == nil ||
		!strings.Contains(err.Error(), "needs an access file") {
		t.Fatalf("--http 0.0.0.0 without --access: %v %s", err, out)
	}
	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out, wait := background(ctx, "hub", "--data", filepath.Join(dir, "hub"), "--listen", freeAddr(t), "--access", acc,
		"--init-mlp", "7,1", "--http", httpAddr)
	defer func() { cancel(); wait() }()
	testutil.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "dashboard at http://"+httpAddr+"/") {
			return fmt.Errorf("hub output: %s", out.String())
		}
		return nil
	})
	tok, err := runPrivacy(t, "hub", "token", "--nkey", seed, "--operator", "alice", "--ttl", "1h")
	if err != nil {
		t.Fatal(err)
	}
	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/session", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(strings.TrimSpace(tok)); code != 200 || !strings.Contains(body, `"operator":"alice","role":"read","can_deploy":false`) {
		t.Errorf("signed in: %d %s", code, body)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if _, err := runPrivacy(t, "hub", "token", "--nkey", seed, "--operator", "alice", "--ttl", "48h"); err == nil {
		t.Error("a 48h token was signed")
	}
}

// `fennec demo --http` serves the demo hub's rounds, and keeps serving
// them after the demo until interrupted.
func TestDemoDashboard(t *testing.T) {
	needGuests(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	model := filepath.Join(t.TempDir(), "risk.cbor")
	out, wait := background(ctx, "demo", "--devices", "3", "--rounds", "2", "--patients", "4", "--http", addr, "--save-model", model)
	defer func() { cancel(); wait() }()
	testutil.CheckFor(t, 5*time.Minute, 50*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "dashboard still at http://"+addr+"/") {
			return fmt.Errorf("demo output so far: %.2000s", out.String())
		}
		return nil
	})
	res, err := http.Get("http://" + addr + "/api/v1/training")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, want := range []string{`"name":"demo"`, `"total_rounds":2`, `"round":2,`, `"auroc":`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("training view lacks %s: %.1000s", want, b)
		}
	}
	// --save-model wrote the released model as risk-infer takes it.
	var m sdk.Model
	if b, err := os.ReadFile(model); err != nil || cbor.Unmarshal(b, &m) != nil || len(m.Tensors) == 0 {
		t.Errorf("--save-model: %v, %d tensors", err, len(m.Tensors))
	}
	// After training the demo rolls risk-infer out to its devices, canary
	// first; the dashboard shows the group complete, both steps in its
	// history, and every device running the deployed module.
	if !strings.Contains(out.String(), "rollout   risk-infer 1.0.0 (signed bundle") {
		t.Errorf("no rollout line in the demo's output: %.3000s", out.String())
	}
	for path, wants := range map[string][]string{
		"/api/v1/rollouts": {`"group":"ward"`, `"phase":"complete"`, `"module":"risk-infer"`, `"canary":25,`, `"canary":100,`, `"done":3,`},
		"/api/v1/fleet":    {`"id":"device-0002","group":"ward","online":true`, `"module":"risk-infer","version":"1.0.0"`},
	} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %s: %.1500s", path, want, b)
			}
		}
	}
}
