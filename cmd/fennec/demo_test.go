package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
)

func needGuests(t *testing.T) {
	t.Helper()
	if _, _, err := guests.Load(context.Background(), "risk-train"); errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guests.ErrNoSource) {
		t.Skipf("cannot build guest modules here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestDemo runs a small demo end to end: preprocessing, federated training
// through the Wasm modules on the embedded hub, and live predictions.
func TestDemo(t *testing.T) {
	needGuests(t)
	out, code := runFennec(t, ".", "demo", "--devices", "3", "--rounds", "3", "--patients", "4", "--json")
	if code != exitOK {
		t.Fatalf("demo: exit %d\n%s", code, out)
	}
	var res demoResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	if len(res.PerRound) != 3 || res.Accuracy <= 0.5 || res.ReferenceAccuracy <= 0.5 || res.Live == nil || res.Live.Predictions == 0 || res.Preprocess.Readings == 0 {
		t.Fatalf("demo result: %+v", res)
	}
	for _, r := range res.PerRound {
		if r.Updates != 3 {
			t.Fatalf("round %d had %d updates, want 3", r.Round, r.Updates)
		}
	}
}

func TestDemoOnCSV(t *testing.T) {
	needGuests(t)
	wdbc := filepath.Join("..", "..", "..", "shared", "data", "wdbc.csv")
	if _, err := os.Stat(wdbc); err != nil {
		t.Skipf("../shared/data/wdbc.csv not present: %v", err)
	}
	out, code := runFennec(t, ".", "demo", "--data", wdbc, "--devices", "4", "--rounds", "5")
	if code != exitOK || !strings.Contains(out, "30 features") || !strings.Contains(out, "summary") {
		t.Fatalf("demo --data: exit %d\n%s", code, out)
	}
	out, code = runFennec(t, ".", "demo", "--data", "no-such.csv")
	if code != exitBadInput {
		t.Fatalf("missing CSV: exit %d\n%s", code, out)
	}
	out, code = runFennec(t, ".", "demo", "--strategy", "magic")
	if code != exitUsage || !strings.Contains(out, "fedavg") {
		t.Fatalf("bad strategy: exit %d\n%s", code, out)
	}
}

// TestDemoPrivacyModes runs the demo in each kind of privacy round mode.
func TestDemoPrivacyModes(t *testing.T) {
	needGuests(t)
	for _, mode := range []string{"dp", "secagg", "he"} {
		t.Run(mode, func(t *testing.T) {
			out, code := runFennec(t, ".", "demo", "--devices", "3", "--rounds", "2", "--patients", "3", "--mode", mode, "--json")
			if code != exitOK {
				t.Fatalf("demo --mode %s: exit %d\n%s", mode, code, out)
			}
			var res demoResult
			if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
				t.Fatal(err)
			}
			if res.Mode != mode || len(res.PerRound) != 2 {
				t.Fatalf("%+v", res)
			}
			if mode == "dp" && (res.Epsilon <= 0 || res.Epsilon > 3.0001) {
				t.Fatalf("dp: epsilon %v, want in (0, 3]", res.Epsilon)
			}
		})
	}
	out, code := runFennec(t, ".", "demo", "--mode", "telepathy")
	if code != exitUsage || !strings.Contains(out, "secagg") {
		t.Fatalf("bad mode: %d %s", code, out)
	}
}
