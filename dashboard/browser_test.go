package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/testutil"
	fruntime "github.com/fennec-edge/fennec/runtime"
)

// chromium finds a headless browser (Debian's chromium; FENNEC_CHROMIUM
// names another) or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FENNEC_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium for the browser test: apt-get install -y chromium (or set FENNEC_CHROMIUM)")
	return ""
}

// testOut is where the browser tests leave their screenshots
// (FENNEC_TEST_OUT, which CI keeps; else a directory under the temp dir).
func testOut(t *testing.T) string {
	dir := os.Getenv("FENNEC_TEST_OUT")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "fennec-test-out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// run runs the steps, bounded by a minute.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText.slice(0, 2000)`))
		t.Fatalf("%s: %v\npage text: %s", what, err, page)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var last string
	err := testutil.Poll(30*time.Second, 50*time.Millisecond, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			last, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText.slice(0, 2000)`))
			return fmt.Errorf("%s: not yet", what)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v; page text: %v", err, last)
	}
}

// TestBrowserFleet runs a real hub with access control, real agents
// training with it, and the dashboard, in headless Chromium: an operator
// signs in, sees the devices, watches a round land on the curve and a
// rollout go from rolling to complete, and a device turn offline.
func TestBrowserFleet(t *testing.T) {
	ctx := browser(t, 1280, 1000)
	dir := t.TempDir()
	ids := []string{"cam-1", "cam-2", "cam-3"}
	acc := &deploy.Access{}
	seeds := map[string]string{}
	for _, n := range append(ids, "alice") {
		seeds[n] = filepath.Join(dir, n+".nk")
		nk, err := deploy.GenerateNkey(seeds[n])
		if err != nil {
			t.Fatal(err)
		}
		if n == "alice" {
			acc.Operators = append(acc.Operators, deploy.OperatorAccess{Name: n, Nkey: nk})
		} else {
			acc.Devices = append(acc.Devices, deploy.DeviceAccess{ID: n, Group: "cams", Nkey: nk})
		}
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	data := federation.Vitals(40, 1)
	init := federation.MLP{In: data.Features, Out: 2}.Init(1)
	var dash *Dashboard
	h, err := federation.NewHub(federation.HubConfig{
		DataDir: filepath.Join(dir, "hub"), Listen: "-", Access: acc, Secret: secret, Initial: &init,
		Rounds: 3, MinDevices: 3, Deadline: 10 * time.Second, DeviceTTL: 2 * time.Second, Logger: slog.New(slog.DiscardHandler),
		Evaluator: federation.DatasetEvaluator(federation.MLP{In: data.Features, Out: 2}, data.Test(), "held-out"),
		OnRound:   func(r federation.RoundReport) { dash.Round(r, nil, nil) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dashboard exists before the first round (which needs all three devices).
	dash, err = New(Config{Addr: "127.0.0.1:0", Hub: h, Access: acc, Interval: 100 * time.Millisecond, StatusTTL: time.Second, Logger: slog.New(slog.DiscardHandler),
		Training: Training{Name: "default", Strategy: "fedavg", Rounds: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown()
	if err := dash.Start(); err != nil {
		t.Fatal(err)
	}
	defer dash.Shutdown()
	conns := map[string]*nats.Conn{}
	agents := map[string]*federation.Agent{}
	connect := func(name, device string) *nats.Conn {
		opts, err := deploy.ConnectOptions(seeds[name], device)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(h.Server())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	join := func(id string) {
		nc := connect(id, id)
		conns[id] = nc
		a, err := federation.NewAgent(federation.AgentConfig{Conn: nc, ID: id, Key: federation.DeviceKey(secret, id),
			Trainer: federation.MLP{In: data.Features, Out: 2}, Data: data.TrainDataset(false), Heartbeat: 200 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		agents[id] = a
		t.Cleanup(a.Close)
	}
	join("cam-1")
	join("cam-2")
	tok, err := SignToken(seeds["alice"], "alice", Audience("default"), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	run(t, ctx, "sign in",
		chromedp.Navigate(dash.URL()),
		chromedp.WaitVisible(chromedp.ID("#signin-form")),
		chromedp.SendKeys(chromedp.ID("#token"), tok),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="cam-1"]`)))
	t.Logf("signed in and fleet shown in %v", time.Since(start))
	waitJS(t, ctx, "cam-1 and cam-2 online, cam-3 offline",
		`["cam-1","cam-2"].every(id => document.querySelector('tr[data-device="'+id+'"]').dataset.online === "true") &&
		 document.querySelector('tr[data-device="cam-3"]').dataset.online === "false" &&
		 document.getElementById("live").textContent === "live"`)
	who := eval[string](t, ctx, `document.getElementById("who").textContent`)
	if !strings.Contains(who, "alice (deploy)") || strings.Contains(who, tok[:20]) {
		t.Errorf("header shows %q", who)
	}

	// The third device joins: rounds run, and the curve moves without a reload.
	run(t, ctx, "training tab", chromedp.Click(chromedp.ID("#tab-training")), chromedp.WaitVisible(chromedp.ID("#c-quality")))
	join("cam-3")
	waitJS(t, ctx, "round 1 on the curve and in the table",
		`fennecDash.charts.quality && fennecDash.charts.quality.data[0].length >= 1 && fennecDash.charts.quality.data[1][0] > 0 &&
		 document.querySelector('#round-rows tr[data-round="1"]') !== null`)
	caption := eval[string](t, ctx, `document.getElementById("c-quality-last").textContent`)
	if !strings.HasPrefix(caption, "Round ") || !strings.Contains(caption, "loss 0.") {
		t.Errorf("chart caption %q", caption)
	}

	// A deploy, as `fennec deploy` does it: the devices' rollout agents
	// fetch, verify, compile and health-check the bundle and report, and
	// the group's card goes from rolling to complete.
	run(t, ctx, "rollouts tab", chromedp.Click(chromedp.ID("#tab-rollouts")))
	raw := rolloutDevices(t, dir, ids, conns)
	if _, err := deploy.Publish(context.Background(), connect("alice", ""), raw, "cams", 100, "alice"); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the cams rollout at guest 1.0.0", `(document.querySelector('[data-group="cams"]')||{innerText:""}).innerText.includes("guest 1.0.0 at 100%")`)
	waitJS(t, ctx, "the cams rollout complete", `document.querySelector('[data-group="cams"]').innerText.includes("complete") &&
		document.querySelector('[data-group="cams"]').innerText.includes("3 of 3 selected")`)
	if got := eval[string](t, ctx, `fennecDash.groups.get("cams").desired.operator`); got != "alice" {
		t.Errorf("the rollout's operator: %q", got)
	}
	waitJS(t, ctx, "the deploy in the event list", `document.getElementById("rollout-events").innerText.includes("alice set guest 1.0.0 at 100%")`)
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(testOut(t), "dashboard-rollouts.png"), shot, 0o644)
	}

	// A device leaves: its row turns red within the TTL.
	run(t, ctx, "fleet tab", chromedp.Click(chromedp.ID("#tab-fleet")))
	left := time.Now()
	agents["cam-2"].Close()
	conns["cam-2"].Close()
	waitJS(t, ctx, "cam-2 offline", `document.querySelector('tr[data-device="cam-2"]').dataset.online === "false" &&
		document.querySelector('tr[data-device="cam-2"]').className === "offline"`)
	t.Logf("cam-2 shown offline %v after it left", time.Since(left))

	run(t, ctx, "training tab for the screenshot", chromedp.Click(chromedp.ID("#tab-training")),
		chromedp.WaitVisible(chromedp.ID("#c-quality")))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(testOut(t), "dashboard-training.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// rolloutDevices starts a rollout agent (deploy.Device: store, audit
// log, Deployer, agent) for each device on its connection, trusting a
// publisher key, and returns a bundle of deploy's test guest signed by it.
func rolloutDevices(t *testing.T, dir string, ids []string, conns map[string]*nats.Conn) []byte {
	t.Helper()
	ctx := context.Background()
	wasmPath, err := guestbuild.Go(ctx, "../deploy/testdata/guest", filepath.Join(os.TempDir(), "fennec-deploy-test-cache", "guests"))
	if errors.Is(err, guestbuild.ErrNoGo) {
		t.Skip("no Go toolchain to build deploy's test guest: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := deploy.GenerateKey("acme", deploy.RolePublisher)
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(dir, "trust.toml")
	if err := os.WriteFile(trust, []byte(fmt.Sprintf("[[publisher]]\nname = \"acme\"\nkey = %q\n", deploy.FormatKey(pub.Public().Key))), 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := fruntime.New(ctx, fruntime.Config{CacheDir: filepath.Join(os.TempDir(), "fennec-deploy-test-cache", "wazero"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	for _, id := range ids {
		dev, err := deploy.OpenDevice(ctx, deploy.DeviceConfig{Engine: eng, ID: id, Group: "cams", Dir: filepath.Join(dir, "devices", id),
			TrustFile: trust, Heartbeat: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- dev.Run(rctx, conns[id]) }()
		t.Cleanup(func() { cancel(); <-done; dev.Close() })
	}
	b, err := deploy.Pack([]byte("name = \"guest\"\nversion = \"1.0.0\"\nentrypoints = [\"health\", \"run\"]\ncapabilities = [\"wasi:env\"]\n\n[env]\nVERSION = \"1.0.0\"\n"), wasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(pub, false); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestBrowserScale loads the page with 1,000 devices and 500 rounds, and
// measures first paint, the time until every view is filled, and the cost
// of one live update in the page.
func TestBrowserScale(t *testing.T) {
	ctx := browser(t, 1280, 900)
	hub := &fakeHub{}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: hub, Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Training: Training{Name: "scale", Strategy: "fedavg", Mode: "dp", TargetEpsilon: 8, Delta: 1e-5, Rounds: 600}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	now := time.Now()
	for i := 0; i < 1000; i++ {
		hub.set(fmt.Sprintf("dev-%04d", i), now, true)
	}
	for i := 1; i <= 500; i++ {
		d.Round(syntheticRound(i, 1000), &federation.ModeStatus{Mode: "dp", Epsilon: 8 * float64(i) / 600}, map[string]float64{"auroc": 0.8})
	}
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if v := d.st.fleet(fleetQuery{limit: 1}); v.Online != 1000 {
			return fmt.Errorf("%d online", v.Online)
		}
		return nil
	})
	start := time.Now()
	run(t, ctx, "load", chromedp.Navigate(d.URL()+"#fleet"), chromedp.WaitVisible(chromedp.CSS(`tr[data-device="dev-0999"]`)))
	waitJS(t, ctx, "loaded", `performance.getEntriesByName("fennec-loaded").length > 0 && fennecDash.rounds.length === 500`)
	wall := time.Since(start)
	timing := eval[map[string]float64](t, ctx, `(() => {
		const p = performance.getEntriesByType("paint").find(e => e.name === "first-contentful-paint");
		return {fcp: p ? p.startTime : -1, loaded: performance.getEntriesByName("fennec-loaded")[0].startTime,
		        rows: document.querySelectorAll("#fleet-rows tr").length};
	})()`)
	res := eval[string](t, ctx, `performance.getEntriesByType("resource").filter(e => e.name.includes("/api/")).map(e => e.name.split("/api/v1/")[1] + " " + Math.round(e.startTime) + "+" + Math.round(e.duration) + "ms").join(", ")`)
	t.Logf("API requests (start+duration): %s", res)
	if timing["rows"] != 1000 {
		t.Fatalf("%v rows", timing["rows"])
	}
	// 100 live updates: 50 devices go offline, 50 rounds finish.
	for i := 0; i < 50; i++ {
		hub.set(fmt.Sprintf("dev-%04d", i), now, false)
	}
	for i := 501; i <= 550; i++ {
		d.Round(syntheticRound(i, 1000), &federation.ModeStatus{Mode: "dp", Epsilon: 8 * float64(i) / 600}, nil)
	}
	waitJS(t, ctx, "updates applied", `fennecDash.rounds.length === 550 && document.querySelectorAll('#fleet-rows tr.offline').length === 50`)
	upd := eval[map[string]float64](t, ctx, `({n: fennecDash.timing.updates, ms: fennecDash.timing.updateMS})`)
	t.Logf("page loaded and updated in %v", time.Since(start))
	t.Logf("1000 devices, 500 rounds: first contentful paint %.0f ms, every view filled at %.0f ms (%v wall from navigation); %v live updates (a round or a device going offline) cost %.2f ms each in the page",
		timing["fcp"], timing["loaded"], wall.Round(time.Millisecond), upd["n"], upd["ms"]/max(1, upd["n"]))
	// Phone width: the page fits 390 px without a horizontal scrollbar on the body.
	run(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	if eval[bool](t, ctx, `document.documentElement.scrollWidth > 390`) {
		t.Errorf("the page is wider than a 390 px phone")
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(testOut(t), "dashboard-phone.png"), shot, 0o644)
}

func syntheticRound(i, devices int) federation.RoundReport {
	parts := make([]string, 0, devices)
	for j := 0; j < devices; j++ {
		parts = append(parts, fmt.Sprintf("dev-%04d", j))
	}
	return federation.RoundReport{Round: uint64(i), Version: uint64(i), Status: "completed", Sampled: devices, Available: devices,
		Received: devices, Participants: parts, HasEval: true, EvalLoss: 1 / float64(i+1), EvalAccuracy: 1 - 1/float64(i+1),
		BytesIn: 5000, BytesOut: 5000, Duration: 100 * time.Millisecond}
}
