package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/privacy/dp"
)

// hubFixture writes risk-train (with its manifest), two devices' CSVs and
// a held-out CSV into a temporary directory.
func hubFixture(t *testing.T) (dir string, p func(string) string) {
	t.Helper()
	train, _, err := guests.Load(context.Background(), "risk-train")
	if errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guests.ErrNoSource) {
		t.Skip("cannot build the guest modules: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	root, _ := guests.Root()
	man, err := os.ReadFile(filepath.Join(root, "modules", "risk-train", "fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	p = func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p(name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("risk-train.wasm", train)
	write("risk-train.toml", man)
	for i, name := range []string{"cam-1.csv", "cam-2.csv", "held-out.csv"} {
		var b strings.Builder
		for n := range 60 { // 7 features and a label
			for f := range 7 {
				fmt.Fprintf(&b, "%.2f,", float64((n*(f+3)+i*7)%19)/9-1)
			}
			fmt.Fprintf(&b, "%d\n", n%2)
		}
		write(name, []byte(b.String()))
	}
	return dir, p
}

// runHubRounds runs `fennec hub` with extra flags and two in-process
// agents (risk-train) for two rounds and returns the hub's output.
func runHubRounds(t *testing.T, dir string, p func(string) string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := append([]string{"hub", "--data", p("hub"), "--listen", addr, "--init-mlp", "7,8,1",
		"--min-devices", "2", "--rounds", "2", "--deadline", "20s"}, extra...)
	hubOut, hubWait := background(ctx, args...)
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
		testutil.CheckFor(t, 90*time.Second, 50*time.Millisecond, func() error {
			if !ok() {
				return fmt.Errorf("waiting for %s; hub output:\n%s", what, hubOut.String())
			}
			return nil
		})
	}
	eventually("the hub", func() bool { return strings.Contains(hubOut.String(), "ready at") })
	for _, d := range []string{"cam-1", "cam-2"} {
		creds, code := runFennec(t, dir, "hub", "creds", "--secret", p("hub/fleet.secret"), "--id", d)
		if code != exitOK {
			t.Fatalf("hub creds: exit %d:\n%s", code, creds)
		}
		if err := os.WriteFile(p(d+".creds"), []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"agent", "--hub", "nats://" + addr, "--creds", p(d + ".creds"),
			"--module", p("risk-train.wasm"), "--data", p(d + ".csv")}
		if d == "cam-2" {
			// One agent keeps its instance between rounds, one drains it.
			args = append(args, "--keep-warm")
		}
		_, w := background(ctx, args...)
		waits = append(waits, w)
	}
	eventually("two rounds", func() bool { return strings.Contains(hubOut.String(), "round 2 completed") })
	cancel()
	if err := hubWait(); err != nil {
		t.Fatalf("hub: %v\n%s", err, hubOut.String())
	}
	hubWait = func() error { return nil }
	return hubOut.String()
}

// TestHubEvalData: --eval-data with --eval-module reports the held-out
// loss and accuracy of every new global model; bad input names the file.
func TestHubEvalData(t *testing.T) {
	dir, p := hubFixture(t)
	out := runHubRounds(t, dir, p, "--eval-data", p("held-out.csv"), "--eval-module", p("risk-train.wasm"))
	t.Logf("hub output:\n%s", out)
	if !strings.Contains(out, "held-out evaluation on "+p("held-out.csv")) {
		t.Error("the hub does not name the held-out data")
	}
	for _, r := range []string{"1", "2"} {
		if !regexp.MustCompile(`(?m)^round ` + r + ` completed: version ` + r + `, 2/2 updates.*, eval loss \d+\.\d{4} acc [01]\.\d{4}$`).MatchString(out) {
			t.Errorf("round %s: no held-out evaluation in the hub output", r)
		}
	}

	os.WriteFile(p("bad.csv"), []byte("1,2,3\n1,x,0\n"), 0o644)
	os.WriteFile(p("wide.csv"), []byte(strings.Repeat("1,2,3,0\n", 20)), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--eval-data", p("held-out.csv")}, exitUsage, "--eval-data needs --eval-module"},
		{[]string{"--eval-module", p("risk-train.wasm")}, exitUsage, "--eval-module needs --eval-data"},
		{[]string{"--eval-data", p("missing.csv"), "--eval-module", p("risk-train.wasm")}, exitBadInput, "missing.csv"},
		{[]string{"--eval-data", p("bad.csv"), "--eval-module", p("risk-train.wasm")}, exitBadInput, "bad.csv:2: not numeric"},
		{[]string{"--eval-data", p("held-out.csv"), "--eval-module", p("missing.wasm")}, exitBadInput, "missing.wasm"},
		{[]string{"--eval-data", p("held-out.csv"), "--eval-module", p("risk-train.wasm"), "--eval-manifest", p("none.toml")}, exitBadInput, "none.toml"},
		{[]string{"--eval-data", p("wide.csv"), "--eval-module", p("risk-train.wasm")}, exitBadInput, "cannot evaluate the initial model"},
	} {
		args := append([]string{"hub", "--data", p("bad-hub"), "--listen", freeAddr(t), "--init-mlp", "7,8,1", "--rounds", "1"}, c.args...)
		out, code := runFennec(t, dir, args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("fennec %s: exit %d, want %d and %q in:\n%s", strings.Join(c.args, " "), code, c.code, c.want, out)
		}
	}
}

// TestHubStrategyModule: --strategy-module aggregates with a Go guest's
// `aggregate` (testdata/meanagg, the example-weighted mean).
func TestHubStrategyModule(t *testing.T) {
	dir, p := hubFixture(t)
	wasm, err := guestbuild.Go(context.Background(), "testdata/meanagg", guests.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile("testdata/meanagg/fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("meanagg.wasm"), b, 0o644)
	os.WriteFile(p("agg.toml"), man, 0o644) // not beside it by name: --strategy-manifest
	out := runHubRounds(t, dir, p, "--strategy-module", p("meanagg.wasm"), "--strategy-manifest", p("agg.toml"))
	t.Logf("hub output:\n%s", out)
	if !strings.Contains(out, "strategy wasm:meanagg from "+p("meanagg.wasm")) {
		t.Error("the hub does not name the Wasm strategy")
	}
	for _, r := range []string{"1", "2"} {
		if !strings.Contains(out, "round "+r+" completed: version "+r+", 2/2 updates") {
			t.Errorf("round %s did not complete with the Wasm strategy", r)
		}
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--strategy-module", p("meanagg.wasm"), "--strategy-manifest", p("agg.toml"), "--strategy", "median"}, exitUsage, "--strategy and --strategy-module are exclusive"},
		{[]string{"--strategy-module", p("meanagg.wasm")}, exitBadInput, "no manifest for " + p("meanagg.wasm")},
		{[]string{"--strategy-module", p("risk-train.wasm")}, exitBadInput, `declares no "aggregate" entrypoint`},
		{[]string{"--strategy-manifest", p("agg.toml")}, exitUsage, "--strategy-manifest needs --strategy-module"},
		// A privacy mode hands the strategy one aggregate: the hub's
		// validation refuses a module strategy, in its words.
		{[]string{"--strategy-module", p("meanagg.wasm"), "--strategy-manifest", p("agg.toml"), "--privacy-mode", "secagg", "--population", "a,b"}, exitUsage, "needs individual updates (a module strategy is handed each device's update), but mode secagg hands it one aggregate"},
	} {
		args := append([]string{"hub", "--data", p("bad-hub"), "--listen", freeAddr(t), "--init-mlp", "7,8,1", "--rounds", "1"}, c.args...)
		out, code := runFennec(t, dir, args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("fennec %s: exit %d, want %d and %q in:\n%s", strings.Join(c.args, " "), code, c.code, c.want, out)
		}
	}
}

// TestHubDPSampledRate: `fennec hub --privacy-mode dp` charges each release
// at the rate the hub sampled at. Two devices with --fraction 0.1 and
// --min-devices 2 are both sampled every round (rate 1, not 0.1), and the
// reported epsilon is the accountant's for two releases at q = 1.
func TestHubDPSampledRate(t *testing.T) {
	dir, p := hubFixture(t)
	out := runHubRounds(t, dir, p, "--fraction", "0.1", "--privacy-mode", "dp", "--noise-multiplier", "1")
	t.Logf("hub output:\n%s", out)
	acc, err := dp.NewAccountant(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.ComposeSubsampledGaussian(1, 1, 2); err != nil {
		t.Fatal(err)
	}
	eps, _, err := acc.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	want := "round 2 completed: version 2, 2/2 updates, 0 dropped"
	wantDP := fmt.Sprintf("dp epsilon %.3f (delta 1e-05, sampling rate 1)", eps)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, want) {
			if !strings.Contains(line, wantDP) {
				t.Fatalf("round 2: %q, want %q", line, wantDP)
			}
			return
		}
	}
	t.Fatalf("no %q line", want)
}

// TestHubModeStrategyRule: which strategies a privacy mode may feed is the
// hub's rule (one aggregate cannot feed a robust strategy); the command
// reports it as a usage error, in the hub's words.
func TestHubModeStrategyRule(t *testing.T) {
	dir := t.TempDir()
	out, code := runFennec(t, dir, "hub", "--data", filepath.Join(dir, "hub"), "--listen", "-", "--init-mlp", "7,1",
		"--privacy-mode", "secagg", "--strategy", "krum", "--min-devices", "5", "--population", "a,b,c,d,e")
	if code != exitUsage || !strings.Contains(out, "strategy krum needs 3 individual updates per round") || !strings.Contains(out, "mode secagg hands it one aggregate") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
