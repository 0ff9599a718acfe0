package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/demo"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
)

// The demo's results as --json prints them.
type (
	demoResult = demo.Result
	demoRound  = demo.Round
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
	if res.NEWS2 == nil || res.Model == nil || res.NEWS2.Threshold != 5 || res.NEWS2.AUROC <= 0.5 || res.ReferenceAUROC == 0 {
		t.Fatalf("NEWS2 baseline: %+v, model %+v, reference AUROC %v", res.NEWS2, res.Model, res.ReferenceAUROC)
	}
	for _, r := range res.PerRound {
		if r.Updates != 3 {
			t.Fatalf("round %d had %d updates, want 3", r.Round, r.Updates)
		}
		if r.AUROC <= 0 || r.AUPRC <= 0 {
			t.Fatalf("round %d: AUROC %v AUPRC %v not reported", r.Round, r.AUROC, r.AUPRC)
		}
	}
}

// TestDemoLearnsAndBeatsNEWS2 checks the worked case's claims by their
// direction, not exact figures: over the rounds the held-out loss falls,
// AUROC rises, early stopping on the devices' validation readings picks a
// round, and the chosen model ranks the held-out readings better than
// NEWS2 does on the same readings (by a margin well inside the ~0.05-0.13
// measured over seeds; BENCHMARKS.md). Smaller than the default demo (5
// devices, 8 rounds) to stay quick.
func TestDemoLearnsAndBeatsNEWS2(t *testing.T) {
	needGuests(t)
	if testing.Short() {
		t.Skip("trains 5 devices for 8 rounds; skipped with -short")
	}
	out, code := runFennec(t, ".", "demo", "--devices", "5", "--rounds", "8", "--json")
	if code != exitOK {
		t.Fatalf("demo: exit %d\n%s", code, out)
	}
	var res demoResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	first, last := res.PerRound[0], res.PerRound[len(res.PerRound)-1]
	t.Logf("loss %.4f -> %.4f (central %.4f), AUROC %.3f -> %.3f (central %.3f), NEWS2 %.3f",
		first.Loss, last.Loss, res.ReferenceLoss, first.AUROC, last.AUROC, res.ReferenceAUROC, res.NEWS2.AUROC)
	if last.Loss >= first.Loss || last.AUROC <= first.AUROC {
		t.Errorf("did not learn: loss %.4f -> %.4f, AUROC %.3f -> %.3f", first.Loss, last.Loss, first.AUROC, last.AUROC)
	}
	if res.StoppedAt < 2 || res.StoppedAt > len(res.PerRound) || res.PerRound[res.StoppedAt-1].ValidationLoss == 0 {
		t.Errorf("early stopping chose round %d of %d", res.StoppedAt, len(res.PerRound))
	}
	if res.Loss >= first.Loss || res.Loss > 1.1*res.ReferenceLoss {
		t.Errorf("chosen model's loss %.4f: not below round 1's %.4f, or more than 10%% above the central reference's %.4f", res.Loss, first.Loss, res.ReferenceLoss)
	}
	if res.AUROC < res.NEWS2.AUROC+0.02 {
		t.Errorf("model AUROC %.3f does not beat NEWS2's %.3f by 0.02", res.AUROC, res.NEWS2.AUROC)
	}
	if res.AUPRC <= 2*res.PositiveRate || res.AUPRC <= res.NEWS2.AUPRC {
		t.Errorf("AUPRC %.3f (chance %.3f, NEWS2 %.3f)", res.AUPRC, res.PositiveRate, res.NEWS2.AUPRC)
	}
}

// TestDemoSummary: the one line that says whether the demo learnt and beat
// NEWS2.
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
	out, code = runFennec(t, ".", "demo", "--lr", "-0.1")
	if code != exitUsage || !strings.Contains(out, "--lr") {
		t.Fatalf("negative --lr: exit %d\n%s", code, out)
	}
}

// TestDemoPrivacyModes runs the demo in each kind of privacy round mode.
func TestDemoPrivacyModes(t *testing.T) {
	needGuests(t)
	for _, mode := range []string{"dp", "secagg", "he", "dpsgd", "secagg+dpsgd"} {
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
			if strings.HasSuffix(mode, "dpsgd") {
				// Every device reports its own per-patient epsilon each
				// round, rising to the target after the planned rounds.
				for i, r := range res.PerRound {
					if len(r.DeviceEpsilon) != 3 || r.Epsilon <= 0 || r.Epsilon > 3*(1+1e-9) {
						t.Fatalf("%s round %d: epsilon %v, devices %v", mode, i+1, r.Epsilon, r.DeviceEpsilon)
					}
				}
				if math.Abs(res.Epsilon-3) > 1e-6 || len(res.DeviceDelta) != 3 || res.Delta > 1e-5 || res.Delta > 1.0/3 {
					t.Fatalf("%s: epsilon %v at delta %v (devices %v)", mode, res.Epsilon, res.Delta, res.DeviceDelta)
				}
				// The hosts charged their ledgers what the devices report.
				for d, e := range res.DeviceEpsilon {
					if l, ok := res.LedgerEpsilon[d]; !ok || math.Abs(l-e) > 1e-6 {
						t.Fatalf("%s: %s reports epsilon %v, its ledger %v", mode, d, e, l)
					}
				}
			}
		})
	}
	out, code := runFennec(t, ".", "demo", "--mode", "telepathy")
	if code != exitUsage || !strings.Contains(out, "secagg") {
		t.Fatalf("bad mode: %d %s", code, out)
	}
}

// TestDemoLR: the default learning rate follows the data's size per device.
// TestDemoWDBCDPSGD: WDBC (each row its own patient) with patient-level
// DP-SGD at epsilon 3 on the default 8 devices keeps at least 0.93
// held-out accuracy. The default suite runs seed 1; FENNEC_DPSGD_SEEDS=20
// runs seeds 1..20 and prints the table of BENCHMARKS.md:
//
//	FENNEC_DPSGD_SEEDS=20 go test ./cmd/fennec -run TestDemoWDBCDPSGD -v
//
// FENNEC_DPSGD_MODE=secagg+dpsgd runs that mode instead (distributed
// noise under secure aggregation), here and in TestDemoDPSGDVitals.
func TestDemoWDBCDPSGD(t *testing.T) {
	needGuests(t)
	wdbc := filepath.Join("..", "..", "..", "shared", "data", "wdbc.csv")
	if _, err := os.Stat(wdbc); err != nil {
		t.Skipf("../shared/data/wdbc.csv not present: %v", err)
	}
	seeds := 1
	if v := os.Getenv("FENNEC_DPSGD_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FENNEC_DPSGD_SEEDS=%q: want a positive count", v)
		}
		seeds = n
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| seed | accuracy | epsilon (worst device) | central non-private |\n|---|---|---|---|\n")
	worst := 1.0
	var accs []float64
	for seed := 1; seed <= seeds; seed++ {
		out, code := runFennec(t, ".", "demo", "--data", wdbc, "--mode", dpsgdMode(t), "--epsilon", "3", "--seed", strconv.Itoa(seed), "--json")
		if code != exitOK {
			t.Fatalf("seed %d: exit %d\n%s", seed, code, out)
		}
		var res demoResult
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&table, "| %d | %.4f | %.4f | %.4f |\n", seed, res.Accuracy, res.Epsilon, res.ReferenceAccuracy)
		worst = math.Min(worst, res.Accuracy)
		accs = append(accs, res.Accuracy)
		// The privacy bound holds on every run. The noise comes from the
		// crypto source, not the seed, so one run's accuracy varies: the
		// issue's 0.93 is a goal for the median over seeds (set
		// FENNEC_DPSGD_SEEDS=20; BENCHMARKS.md records it); a single run
		// only has to be far above the 0.63 of always answering benign
		// (the worst of 20 recorded runs at the default LR 0.1 was 0.929).
		if res.Epsilon > 3*(1+1e-9) || res.Delta > 1e-5 {
			t.Errorf("seed %d: epsilon %v, delta %v; want epsilon <= 3 at delta <= 1e-5", seed, res.Epsilon, res.Delta)
		}
		if res.Accuracy < 0.85 {
			t.Errorf("seed %d: accuracy %.4f at epsilon %v; want >= 0.85 on any run", seed, res.Accuracy, res.Epsilon)
		}
		// The central reference is the non-private model, trained at the
		// non-private learning rate (not the DP-SGD steps' --lr: Adam at
		// secagg+dpsgd's 5 left it at loss 9.2).
		if res.ReferenceLoss > 0.5 || res.ReferenceAccuracy < 0.9 {
			t.Errorf("seed %d: central non-private reference accuracy %.4f, loss %.4f; want >= 0.9 and <= 0.5", seed, res.ReferenceAccuracy, res.ReferenceLoss)
		}
	}
	slices.Sort(accs)
	median := accs[len(accs)/2]
	if seeds >= 5 && median < 0.93 {
		t.Errorf("median accuracy %.4f over %d seeds; want >= 0.93", median, seeds)
	}
	above := 0
	for _, a := range accs {
		if a >= 0.93-1e-9 {
			above++
		}
	}
	t.Logf("WDBC, %s at epsilon 3, 8 devices: median accuracy %.4f, worst %.4f, %d of %d seeds >= 0.93\n%s", dpsgdMode(t), median, worst, above, seeds, table.String())
}

// dpsgdMode is the DP-SGD mode the measurements run: FENNEC_DPSGD_MODE,
// dpsgd by default.
func dpsgdMode(t *testing.T) string {
	switch m := os.Getenv("FENNEC_DPSGD_MODE"); m {
	case "":
		return "dpsgd"
	case "dpsgd", "secagg+dpsgd":
		return m
	default:
		t.Fatalf("FENNEC_DPSGD_MODE=%q: want dpsgd or secagg+dpsgd", m)
		return ""
	}
}

// TestDemoDPSGDVitals measures the goal of issue #14 on the default demo
// (8 devices, 30 patients each, 15 rounds): with patient-level DP-SGD at
// epsilon 3 (delta 1e-5 <= 1/patients) the held-out AUROC stays within
// 0.03 of the non-private demo's and above NEWS2's, seed by seed. The runs
// alternate (plain, dpsgd, plain, ...) so that the machine's load falls on
// both. Eight devices for 15 rounds twice per seed take about a minute, so
// it runs only when asked:
//
//	FENNEC_DPSGD_SEEDS=5 go test ./cmd/fennec -run TestDemoDPSGDVitals -v
func TestDemoDPSGDVitals(t *testing.T) {
	seeds := 0
	if v := os.Getenv("FENNEC_DPSGD_SEEDS"); v != "" {
		seeds, _ = strconv.Atoi(v)
	}
	if seeds < 1 {
		t.Skip("set FENNEC_DPSGD_SEEDS=N to measure the default demo with and without DP-SGD over N seeds")
	}
	needGuests(t)
	run := func(seed int, mode string) demoResult {
		t.Helper()
		out, code := runFennec(t, ".", "demo", "--mode", mode, "--seed", strconv.Itoa(seed), "--json")
		if code != exitOK {
			t.Fatalf("seed %d %s: exit %d\n%s", seed, mode, code, out)
		}
		var res demoResult
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| seed | AUROC plain | AUROC %s | difference | NEWS2 | epsilon (worst device) | ledger epsilon (worst) |\n|---|---|---|---|---|---|---|\n", dpsgdMode(t))
	for seed := 1; seed <= seeds; seed++ {
		plain, private := run(seed, "plain"), run(seed, dpsgdMode(t))
		worst := 0.0
		for _, e := range private.LedgerEpsilon {
			worst = math.Max(worst, e)
		}
		fmt.Fprintf(&table, "| %d | %.4f | %.4f | %+.4f | %.4f | %.4f | %.4f |\n", seed, plain.AUROC, private.AUROC, private.AUROC-plain.AUROC, private.NEWS2.AUROC, private.Epsilon, worst)
		if private.AUROC < plain.AUROC-0.03 || private.AUROC <= private.NEWS2.AUROC || private.Epsilon > 3*(1+1e-9) {
			t.Errorf("seed %d: %s AUROC %.4f at epsilon %v, plain %.4f, NEWS2 %.4f", seed, dpsgdMode(t), private.AUROC, private.Epsilon, plain.AUROC, private.NEWS2.AUROC)
		}
	}
	t.Logf("default demo, %s at epsilon 3 vs plain:\n%s", dpsgdMode(t), table.String())
}
