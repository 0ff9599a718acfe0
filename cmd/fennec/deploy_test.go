package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// background runs a long-lived fennec command (all paths absolute) until
// ctx ends; its output and exit error are returned by the function wait.
func background(ctx context.Context, args ...string) (out *testutil.Buffer, wait func() error) {
	out = &testutil.Buffer{}
	root := newRoot()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return out, func() error { return <-done }
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDeployHub runs the operator's commands against `fennec hub --access`:
// two `fennec agent` processes (in-process here), one connected to the
// hub's server and one through its own leaf node (--leaf), train with the
// hub and receive rollouts over their authenticated connections; `fennec deploy`
// rolls a signed bundle out and `fennec status` shows it; a device's
// credential cannot deploy, and a device cannot join as another.
func TestDeployHub(t *testing.T) {
	infer, _, err := guests.Load(context.Background(), "risk-infer")
	if errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guests.ErrNoSource) {
		t.Skip("cannot build the guest modules: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	train, _, err := guests.Load(context.Background(), "risk-train")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(p(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := guests.Root()
	for _, m := range []struct {
		name string
		wasm []byte
	}{{"risk-infer", infer}, {"risk-train", train}} {
		man, err := os.ReadFile(filepath.Join(root, "modules", m.name, "fennec.toml"))
		if err != nil {
			t.Fatal(err)
		}
		write(m.name+".toml", string(man))
		write(m.name+".wasm", string(m.wasm))
	}
	for i := 1; i <= 2; i++ { // 7 features and a label
		var b strings.Builder
		for n := range 60 {
			for f := range 7 {
				fmt.Fprintf(&b, "%.2f,", float64((n*(f+3)+i*7)%19)/9-1)
			}
			fmt.Fprintf(&b, "%d\n", n%2)
		}
		write(fmt.Sprintf("cam-%d.csv", i), b.String())
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, code := runFennec(t, dir, args...)
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("fennec %s: exit %d, want 0 and %q in:\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}
	must("publisher key acme", "module", "keygen", "acme")
	must("operator key ops", "module", "keygen", "ops", "--role", "operator")
	acme, _ := os.ReadFile(p("acme.pub"))
	ops, _ := os.ReadFile(p("ops.pub"))
	write("trust.toml", "[[publisher]]\n"+string(acme)+"\n[[operator]]\n"+string(ops))
	must("unsigned", "module", "pack", "--manifest", "risk-infer.toml", "--wasm", "risk-infer.wasm", "-o", "v1.fbundle")
	must("signed", "module", "sign", "v1.fbundle", "--key", "acme.key")
	nkeyLine := regexp.MustCompile(`(?m)^nkey = .*$`)
	access := "[[operator]]\nname = \"alice\"\n" + nkeyLine.FindString(must("nkey = ", "deploy", "nkey", "creds/alice.nk")) + "\n"
	for _, d := range []string{"cam-1", "cam-2"} {
		access += fmt.Sprintf("\n[[device]]\nid = %q\ngroup = \"cams\"\n%s\n", d, nkeyLine.FindString(must("nkey = ", "deploy", "nkey", "creds/"+d+".nk")))
	}
	write("access.toml", access)

	// From here on, commands run concurrently: absolute paths, no chdir.
	addr := freeAddr(t)
	url := "nats://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leafAddr := freeAddr(t)
	hubOut, hubWait := background(ctx, "hub", "--data", p("hub"), "--listen", addr, "--access", p("access.toml"), "--leaf-listen", leafAddr,
		"--init-mlp", "7,8,1", "--min-devices", "2", "--rounds", "2", "--deadline", "20s")
	var waits []func() error
	defer func() {
		cancel()
		for _, w := range waits {
			w()
		}
		hubWait()
	}()
	eventually := func(what string, ok func() bool) {
		t.Helper()
		testutil.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
			if !ok() {
				return fmt.Errorf("waiting for %s; hub output:\n%s", what, hubOut.String())
			}
			return nil
		})
	}
	eventually("the hub", func() bool { return strings.Contains(hubOut.String(), "serving rollouts") })
	var agents []*testutil.Buffer
	for _, d := range []string{"cam-1", "cam-2"} {
		creds := must("device credentials", "hub", "creds", "--secret", p("hub/fleet.secret"), "--id", d)
		write(d+".creds", creds)
		// cam-1 connects to the hub's server, cam-2 through its own leaf
		// node: both train and receive the rollout.
		link := []string{"--hub", url}
		if d == "cam-2" {
			link = []string{"--leaf", "nats-leaf://" + leafAddr, "--leaf-dir", p(d + "-leaf")}
		}
		out, w := background(ctx, append(append([]string{"agent"}, link...), "--creds", p(d+".creds"), "--nkey", p("creds/"+d+".nk"),
			"--module", p("risk-train.wasm"), "--data", p(d+".csv"),
			"--group", "cams", "--trust", p("trust.toml"), "--dir", p(d), "--heartbeat", "200ms")...)
		agents = append(agents, out)
		waits = append(waits, w)
	}
	status := []string{"status", "--nats", url, "--creds", p("creds/alice.nk")}
	eventually("both devices' reports", func() bool {
		out, _ := runFennec(t, dir, status...)
		return strings.Contains(out, "cam-1") && strings.Contains(out, "cam-2")
	})
	must("2/2 updated, 0 failed", "deploy", p("v1.fbundle"), "--group", "cams", "--nats", url, "--creds", p("creds/alice.nk"), "--wait", "30s")
	out := must("by alice", status...)
	t.Logf("fennec status:\n%s", out)
	if n := len(regexp.MustCompile(`cam-\d\s+risk-infer\s+1\.0\.0\s+-\s+ok\s+running`).FindAllString(out, -1)); n != 2 {
		t.Fatalf("status:\n%s", out)
	}
	// Both devices trained while they received the module.
	eventually("two training rounds", func() bool { return strings.Contains(hubOut.String(), "training rounds complete") })

	// A device's credential cannot deploy; a device cannot join as another.
	if out, code := runFennec(t, dir, "deploy", p("v1.fbundle"), "--group", "cams", "--nats", url, "--creds", p("creds/cam-1.nk")); code != exitFailure || !strings.Contains(out, "not allowed to deploy") {
		t.Fatalf("deploy with a device's credential: exit %d:\n%s", code, out)
	}
	out, code := runFennec(t, dir, "agent", "--hub", url, "--creds", p("cam-2.creds"), "--nkey", p("creds/cam-1.nk"),
		"--module", p("risk-train.wasm"), "--data", p("cam-1.csv"))
	if code != exitFailure || !strings.Contains(out, "refused device cam-2") || !strings.Contains(out, "permissions violation") {
		t.Fatalf("agent with another device's nkey: exit %d:\n%s", code, out)
	}
	// The hub logged both violations, naming the device.
	eventually("the hub's log of the violations", func() bool {
		s := hubOut.String()
		// The impostor fails at its first use of cam-2's subjects: its
		// subscriptions (tasks, mode steps) or its join.
		impersonated := strings.Contains(s, `Publish Violation - Subject \"fennec.default.join.cam-2\"`) ||
			strings.Contains(s, `Subscription Violation - Subject \"fennec.default.task.cam-2\"`) ||
			strings.Contains(s, `Subscription Violation - Subject \"fennec.default.mode.cam-2\"`)
		return impersonated && strings.Contains(s, `user="device cam-1"`)
	})
	for _, a := range agents {
		if s := a.String(); !strings.Contains(s, "receives the rollouts of group cams") {
			t.Errorf("agent output:\n%s", s)
		}
	}
}
