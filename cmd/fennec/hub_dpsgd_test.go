package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/privacy/budget"
)

// TestHubDPSGDAcrossProcesses runs `fennec hub --privacy-mode dpsgd` with
// access control and two `fennec agent`s, each with its own privacy
// ledger: the rounds complete, the hub reports each device's per-patient
// epsilon, and every device's ledger holds one composed charge per round
// that adds up to the target.
//
// secagg+dpsgd runs the same way: the agents' mode clients grant their hosts
// the round's noise share (one step a round, the sealed gradient sent under
// secure aggregation), and each ledger is charged the full-noise step.
func TestHubDPSGDAcrossProcesses(t *testing.T) {
	for _, mode := range []string{"dpsgd", "secagg+dpsgd"} {
		t.Run(mode, func(t *testing.T) { hubDPSGDAcrossProcesses(t, mode) })
	}
}

func hubDPSGDAcrossProcesses(t *testing.T, mode string) {
	dir, p := hubFixture(t)
	must := func(want string, args ...string) string {
		t.Helper()
		out, code := runFennec(t, dir, args...)
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("fennec %s: exit %d, want 0 and %q in:\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}
	nkeyLine := regexp.MustCompile(`(?m)^nkey = .*$`)
	access := "[[operator]]\nname = \"alice\"\n" + nkeyLine.FindString(must("nkey = ", "deploy", "nkey", p("creds/alice.nk"))) + "\n"
	devices := []string{"cam-1", "cam-2"}
	for _, d := range devices {
		access += fmt.Sprintf("\n[[device]]\nid = %q\ngroup = \"cams\"\n%s\n", d, nkeyLine.FindString(must("nkey = ", "deploy", "nkey", p("creds/"+d+".nk"))))
		must("budget epsilon 3", "privacy", "budget", "set", "--ledger", p(d+".ledger.json"), budget.DatasetAccount(d), "--epsilon", "3", "--delta", "1e-5")
	}
	if err := os.WriteFile(p("access.toml"), []byte(access), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	url := "nats://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hubOut, hubWait := background(ctx, "hub", "--data", p("hub"), "--listen", addr, "--access", p("access.toml"),
		"--init-mlp", "7,8,1", "--min-devices", "2", "--rounds", "2", "--deadline", "20s", "--lr", "0.01",
		"--privacy-mode", mode, "--target-epsilon", "3", "--clip", "1", "--patients-per-step", "10")
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
	eventually("the hub", func() bool { return strings.Contains(hubOut.String(), "serving rollouts") })
	for _, d := range devices {
		creds := must("device credentials", "hub", "creds", "--secret", p("hub/fleet.secret"), "--id", d)
		if err := os.WriteFile(p(d+".creds"), []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devices {
		_, w := background(ctx, "agent", "--hub", url, "--creds", p(d+".creds"), "--nkey", p("creds/"+d+".nk"),
			"--module", p("risk-train.wasm"), "--data", p(d+".csv"), "--ledger", p(d+".ledger.json"))
		waits = append(waits, w)
	}
	eventually("two dpsgd rounds", func() bool { return strings.Contains(hubOut.String(), "training rounds complete") })
	out := hubOut.String()
	t.Logf("hub output:\n%s", out)
	for _, want := range []string{
		"round 1 completed: version 1, 2/2 updates",
		"round 2 completed: version 2, 2/2 updates",
		mode + " per-patient epsilon 3.000 (the largest of 2 devices, delta 1e-05)",
		// The start line states the plan the mode runs: --rounds 2 (it
		// said "after 0 rounds", the flags before the hub planned them).
		"clip 1 per patient, 10 patients per step, epsilon 3 per device after 2 rounds",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hub output lacks %q", want)
		}
	}
	cancel()
	for _, w := range waits {
		w()
	}
	waits = nil
	// Each device's ledger: one charge per round, composed to the target.
	for _, d := range devices {
		js := must("spent_epsilon", "privacy", "budget", "show", "--ledger", p(d+".ledger.json"), "--json")
		var sts []budget.Status
		if err := json.Unmarshal([]byte(js), &sts); err != nil {
			t.Fatal(err)
		}
		if len(sts) != 1 || sts[0].Releases != 2 || math.Abs(sts[0].SpentEpsilon-3) > 1e-6 || !strings.Contains(sts[0].LastNote, "dp_sgd_begin") {
			t.Errorf("%s ledger: %+v", d, sts)
		}
	}
}
