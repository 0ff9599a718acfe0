package dashboard

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/testutil"
)

var endpoints = []struct{ method, path, body string }{
	{"GET", "/api/v1/session", ""},
	{"GET", "/api/v1/fleet", ""},
	{"GET", "/api/v1/devices/cam-1", ""},
	{"GET", "/api/v1/rollouts", ""},
	{"GET", "/api/v1/training", ""},
	{"GET", "/api/v1/events", ""},
	{"POST", "/api/v1/rollouts/cams/canary", `{"canary":50}`},
}

// forged returns tokens that must all be refused, by name.
func forged(t *testing.T, r *rig) map[string]string {
	stranger, _ := nkeys.CreateUser()
	now := time.Now()
	claims := func(op, aud string, iat, exp time.Time) TokenClaims {
		return TokenClaims{Operator: op, Audience: aud, IssuedAt: iat.Unix(), Expires: exp.Unix()}
	}
	aliceKP := must(nkeys.FromSeed(seedOf(t, r.seeds["alice"])))
	sign := func(kp nkeys.KeyPair, c TokenClaims) string { return must(signToken(kp, c)) }
	bob := r.token("bob")
	// bob's signature on a payload that names alice.
	_, bobSig, _ := strings.Cut(strings.TrimPrefix(bob, tokenPrefix), ".")
	alicePayload := base64.RawURLEncoding.EncodeToString(must(json.Marshal(claims("alice", Audience("default"), now, now.Add(time.Hour)))))
	return map[string]string{
		"a stranger's key claiming alice":   sign(stranger, claims("alice", Audience("default"), now, now.Add(time.Hour))),
		"bob's signature on alice's claims": tokenPrefix + alicePayload + "." + bobSig,
		"another dashboard's audience":      sign(aliceKP, claims("alice", Audience("other"), now, now.Add(time.Hour))),
		"expired":                           sign(aliceKP, claims("alice", Audience("default"), now.Add(-2*time.Hour), now.Add(-time.Hour))),
		"issued in the future":              sign(aliceKP, claims("alice", Audience("default"), now.Add(time.Hour), now.Add(2*time.Hour))),
		"a lifetime above a day":            sign(aliceKP, claims("alice", Audience("default"), now, now.Add(48*time.Hour))),
		"an operator not in the file":       sign(aliceKP, claims("mallory", Audience("default"), now, now.Add(time.Hour))),
		"garbage":                           "hello",
		"truncated":                         r.token("alice")[:40],
		"huge":                              tokenPrefix + strings.Repeat("A", 5000),
	}
}

func seedOf(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "SU") {
			return []byte(l)
		}
	}
	t.Fatal("no seed")
	return nil
}

// Every endpoint refuses a missing and a forged token, serves bob (role
// read) read-only, and lets alice (role deploy) deploy.
func TestAuthEveryEndpoint(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams", "cam-2": "cams"}, nil)
	mustPublish(t, r, "1.0.0", 10)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, ok := r.d.st.desiredOf("cams"); !ok {
			return fmt.Errorf("no desired state seen")
		}
		return nil
	})
	bad := forged(t, r)
	for _, e := range endpoints {
		for name, tok := range bad {
			if res := r.do(e.method, e.path, tok, e.body); res.code != http.StatusUnauthorized || !strings.Contains(res.body, "token not accepted") {
				t.Errorf("%s %s with %s: %d %s", e.method, e.path, name, res.code, res.body)
			}
		}
		if res := r.do(e.method, e.path, "", e.body); res.code != http.StatusUnauthorized || res.hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without a token: %d %s", e.method, e.path, res.code, res.body)
		}
		if res := r.do(e.method, e.path, "", e.body, "Authorization", "Basic YWxpY2U6eA=="); res.code != http.StatusUnauthorized {
			t.Errorf("%s %s with basic auth: %d", e.method, e.path, res.code)
		}
		if e.path == "/api/v1/events" {
			for _, op := range []string{"alice", "bob"} {
				c, stop := r.stream(r.token(op))
				next(t, c, "hello", nil)
				stop()
			}
			continue
		}
		want := map[string]int{"bob": http.StatusOK, "alice": http.StatusOK}
		if e.method == "POST" {
			want["bob"] = http.StatusForbidden
		}
		for _, op := range []string{"bob", "alice"} {
			res := r.do(e.method, e.path, r.token(op), e.body)
			if res.code != want[op] {
				t.Errorf("%s %s as %s: %d %s, want %d", e.method, e.path, op, res.code, res.body, want[op])
			}
			if strings.Contains(res.body, "SU") && strings.Contains(res.body, string(seedOf(t, r.seeds[op]))) || strings.Contains(res.body, "fennec1.") {
				t.Errorf("%s %s as %s renders a secret: %s", e.method, e.path, op, res.body)
			}
		}
	}
	var s session
	r.get("/api/v1/session", r.token("bob"), &s)
	if s.Operator != "bob" || s.Role != "read" || s.CanDeploy || !s.SignIn {
		t.Errorf("bob's session %+v", s)
	}
}

func mustPublish(t *testing.T, r *rig, version string, canary int) deploy.Desired {
	t.Helper()
	b, err := deploy.Pack([]byte(fmt.Sprintf("name = \"guest\"\nversion = %q\nentrypoints = [\"run\"]\n", version)), []byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := deploy.Publish(context.Background(), r.op, raw, "cams", canary, "alice")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGuardsAndHeaders(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams"}, nil)
	alice := r.token("alice")
	for _, path := range []string{"/", "/app.js", "/api/v1/fleet", "/api/v1/nothing"} {
		res := r.do("GET", path, alice, "")
		if got := res.hdr.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || strings.Contains(got, "unsafe") {
			t.Errorf("%s: CSP %q", path, got)
		}
		if res.hdr.Get("X-Content-Type-Options") != "nosniff" || res.hdr.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, res.hdr)
		}
	}
	if res := r.do("GET", "/api/v1/nothing", alice, ""); res.code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d", res.code)
	}
	// A page of another site that rebinds its name to 127.0.0.1.
	if res := r.do("GET", "/api/v1/fleet", alice, "", "Host", "evil.example:8080"); res.code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d %s", res.code, res.body)
	}
	if res := r.do("GET", "/", "", "", "Host", "localhost:1"); res.code != http.StatusOK {
		t.Errorf("localhost Host: %d", res.code)
	}
	mustPublish(t, r, "1.0.0", 10)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, ok := r.d.st.desiredOf("cams"); !ok {
			return fmt.Errorf("no desired state seen")
		}
		return nil
	})
	// The deploy endpoint refuses what a cross-site form could send, and
	// malformed or oversized bodies.
	for _, c := range []struct {
		name, body string
		hdr        []string
		want       int
	}{
		{"a form post", "canary=50", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"text/plain", `{"canary":50}`, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"a cross-site origin", `{"canary":50}`, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"unknown field", `{"canary":50,"bundle":"x"}`, nil, http.StatusBadRequest},
		{"canary 0", `{"canary":0}`, nil, http.StatusBadRequest},
		{"canary 101", `{"canary":101}`, nil, http.StatusBadRequest},
		{"trailing data", `{"canary":50}{}`, nil, http.StatusBadRequest},
		{"oversized", `{"canary":50,"x":"` + strings.Repeat("a", 10000) + `"}`, nil, http.StatusBadRequest},
	} {
		if res := r.do("POST", "/api/v1/rollouts/cams/canary", alice, c.body, c.hdr...); res.code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, res.code, res.body, c.want)
		}
	}
	if res := r.do("POST", "/api/v1/rollouts/a.b/canary", alice, `{"canary":50}`); res.code != http.StatusBadRequest {
		t.Errorf("bad group: %d", res.code)
	}
	if res := r.do("POST", "/api/v1/rollouts/gateways/canary", alice, `{"canary":50}`); res.code != http.StatusNotFound {
		t.Errorf("group without a rollout: %d", res.code)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?offset=-1", "?status=sleepy", "?group=a.b", "?q=" + strings.Repeat("a", 65)} {
		if res := r.do("GET", "/api/v1/fleet"+q, alice, ""); res.code != http.StatusBadRequest {
			t.Errorf("fleet%s: %d", q, res.code)
		}
	}
	if res := r.do("GET", "/api/v1/training?since=-1", alice, ""); res.code != http.StatusBadRequest {
		t.Errorf("training since=-1: %d", res.code)
	}
	if res := r.do("GET", "/api/v1/devices/nope", alice, ""); res.code != http.StatusNotFound {
		t.Errorf("unknown device: %d", res.code)
	}
	if res := r.do("GET", "/api/v1/devices/a%20b", alice, ""); res.code != http.StatusBadRequest {
		t.Errorf("bad device id: %d", res.code)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Hub is required"},
		{Config{Hub: &fakeHub{}, Addr: "0.0.0.0:8080"}, "needs an access file"},
		{Config{Hub: &fakeHub{}, Addr: "nonsense"}, "Addr"},
		{Config{Hub: &fakeHub{}, MaxDevices: -1}, "MaxDevices"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// Without an access file the dashboard is read-only to all on loopback.
func TestNoAccessReadOnly(t *testing.T) {
	h := &fakeHub{}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: h, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	r := &rig{t: t, url: strings.TrimSuffix(d.URL(), "/"), d: d}
	var s session
	r.get("/api/v1/session", "", &s)
	if s.SignIn || s.CanDeploy {
		t.Errorf("session %+v", s)
	}
	if res := r.do("POST", "/api/v1/rollouts/cams/canary", "", `{"canary":50}`); res.code != http.StatusForbidden || !strings.Contains(res.body, "read-only") {
		t.Errorf("deploy without access: %d %s", res.code, res.body)
	}
	var rv RolloutsView
	r.get("/api/v1/rollouts", "", &rv)
	if rv.Enabled || len(rv.Groups) != 0 {
		t.Errorf("rollouts %+v", rv)
	}
}

// A device going offline turns red: the stream says so within the
// dashboard's interval after the hub stops hearing it.
func TestFleetLiveness(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams", "cam-2": "cams", "gw-1": "gateways"}, nil)
	tok := r.token("bob")
	c, stop := r.stream(tok)
	defer stop()
	next(t, c, "hello", nil)
	now := time.Now()
	for _, id := range []string{"cam-1", "cam-2", "gw-1"} {
		r.hub.set(id, now, true)
	}
	var fv FleetView
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r.get("/api/v1/fleet", tok, &fv)
		if fv.Online != 3 {
			return fmt.Errorf("fleet %+v", fv)
		}
		return nil
	})
	r.hub.set("cam-2", now, false)
	next(t, c, "device", func(s string) bool { return strings.Contains(s, `"id":"cam-2","group":"cams","online":false`) })
	r.get("/api/v1/fleet?status=offline", tok, &fv)
	if fv.Matched != 1 || fv.Devices[0].ID != "cam-2" || fv.Devices[0].LastSeen.IsZero() {
		t.Errorf("offline: %+v", fv)
	}
	for q, want := range map[string][]string{
		"?group=cams":             {"cam-1", "cam-2"},
		"?q=GW":                   {"gw-1"},
		"?status=online&q=cam":    {"cam-1"},
		"?limit=1&offset=1":       {"cam-2"},
		"?group=gateways&q=cam-1": {},
	} {
		r.get("/api/v1/fleet"+q, tok, &fv)
		var got []string
		for _, d := range fv.Devices {
			got = append(got, d.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || fv.Total != 3 {
			t.Errorf("fleet%s: %v (total %d), want %v", q, got, fv.Total, want)
		}
	}
	if len(fv.Groups) != 2 || fv.Groups[0] != (GroupCount{"cams", 2, 1}) {
		t.Errorf("groups %+v", fv.Groups)
	}
	var dd DeviceDetail
	r.get("/api/v1/devices/cam-2", tok, &dd)
	if len(dd.Events) < 2 || dd.Events[0].Kind != "offline" || dd.Events[1].Kind != "online" {
		t.Errorf("cam-2 events %+v", dd.Events)
	}
}

// Rounds reach the training view and the stream; since pages them.
func TestTraining(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams", "cam-2": "cams"}, nil)
	tok := r.token("bob")
	c, stop := r.stream(tok)
	defer stop()
	next(t, c, "hello", nil)
	for i := uint64(1); i <= 3; i++ {
		rep := federation.RoundReport{Round: i, Version: i, Status: "completed", Sampled: 2, Available: 2, Received: 1,
			Participants: []string{"cam-1"}, Dropped: []string{"cam-2"}, HasEval: true, EvalLoss: 1 / float64(i), EvalAccuracy: 0.5,
			BytesIn: 100, BytesOut: 200, Duration: time.Second}
		r.d.Round(rep, &federation.ModeStatus{Mode: "dp", Epsilon: 0.5 * float64(i)}, map[string]float64{"auroc": 0.7})
	}
	ev := next(t, c, "round", func(s string) bool { return strings.Contains(s, `"round":3`) })
	if !strings.Contains(ev, `"epsilon":1.5`) || !strings.Contains(ev, `"auroc":0.7`) {
		t.Errorf("round event %s", ev)
	}
	var tv TrainingView
	r.get("/api/v1/training?since=1", tok, &tv)
	f := tv.Federations[0]
	if len(f.Rounds) != 2 || f.Rounds[0].Round != 2 || f.TotalRounds != 3 || f.Mode != "dp" || f.TargetEpsilon != 3 || f.Privacy.Epsilon != 1.5 {
		t.Errorf("training %+v", f)
	}
	if r0 := f.Rounds[0]; r0.Participants != 1 || r0.Stragglers != 1 || r0.Dropouts != 1 || *r0.Loss != 0.5 || r0.StragglerIDs[0] != "cam-2" {
		t.Errorf("round %+v", r0)
	}
	var dd DeviceDetail
	r.get("/api/v1/devices/cam-1", tok, &dd)
	if dd.ModelVersion != 3 || dd.Rounds != 3 || dd.LastRound != 3 {
		t.Errorf("cam-1 %+v", dd.DeviceView)
	}
	r.get("/api/v1/devices/cam-2", tok, &dd)
	if len(dd.Events) != 3 || dd.Events[0].Kind != "straggler" {
		t.Errorf("cam-2 events %+v", dd.Events)
	}
}

// A rollout's state follows the devices' reports; alice promotes the
// canary; a device cannot speak for another and a malformed report is
// not shown.
func TestRollouts(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams", "cam-2": "cams", "cam-3": "cams"}, nil)
	tok := r.token("alice")
	c, stop := r.stream(tok)
	defer stop()
	next(t, c, "hello", nil)
	d := mustPublish(t, r, "1.0.0", 100)
	next(t, c, "rollout", func(s string) bool { return strings.Contains(s, `"phase":"rolling"`) })
	cam1, cam2 := r.connect("cam-1", "cam-1"), r.connect("cam-2", "cam-2")
	r.report(cam1, deploy.DeviceStatus{Device: "cam-1", Group: "cams", Module: "guest", Version: "1.0.0", Digest: d.Digest, Healthy: true, State: deploy.StateRunning, Rollout: d.ID})
	r.report(cam2, deploy.DeviceStatus{Device: "cam-2", Group: "cams", State: deploy.StateRefused, Reason: "unsigned: no trusted publisher signed it", Rollout: d.ID})
	ev := next(t, c, "rollout", func(s string) bool { return strings.Contains(s, `"failed":1`) })
	var g GroupView
	json.Unmarshal([]byte(ev), &g)
	if g.Phase != "failing" || g.Done != 1 || g.Selected != 3 || g.Versions["1.0.0"] != 1 || len(g.Problems) != 1 ||
		g.Problems[0].Device != "cam-2" || !strings.Contains(g.Problems[0].Reason, "unsigned") || g.Desired.Operator != "alice" {
		t.Errorf("group %+v", g)
	}
	// cam-2 writes garbage to its own key; the dashboard keeps its last good report.
	r.report(cam2, deploy.DeviceStatus{Device: "cam-2", Group: "cams", State: deploy.StateRefused, Reason: strings.Repeat("x", 100), Rollout: d.ID})
	putRaw(t, cam2, "cams.cam-2", []byte(`{"device":"cam-2","group":"cams","state":"running","evil":1}`))
	// Promote from the dashboard: bob may not, alice may.
	if res := r.do("POST", "/api/v1/rollouts/cams/canary", r.token("bob"), `{"canary":50}`); res.code != http.StatusForbidden || !strings.Contains(res.body, "does not allow deploys") {
		t.Errorf("bob promotes: %d %s", res.code, res.body)
	}
	mustPublish(t, r, "1.1.0", 10)
	next(t, c, "rollout", func(s string) bool { return strings.Contains(s, `"phase":"canary"`) })
	res := r.do("POST", "/api/v1/rollouts/cams/canary", tok, `{"canary":100}`, "Origin", r.url)
	if res.code != http.StatusOK {
		t.Fatalf("alice promotes: %d %s", res.code, res.body)
	}
	var rv RolloutsView
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r.get("/api/v1/rollouts", tok, &rv)
		if len(rv.Groups) != 1 || len(rv.Groups[0].History) != 3 || rv.Groups[0].History[0].Canary != 100 || rv.Groups[0].History[0].Version != "1.1.0" {
			return fmt.Errorf("rollouts %+v", rv)
		}
		return nil
	})
	if !rv.Enabled || rv.Events[0].Kind != "deploy" || rv.Events[0].Who != "alice" {
		t.Errorf("events %+v", rv.Events)
	}
	var dd DeviceDetail
	// The reports arrive through a KV watcher: poll for the last good one.
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r.get("/api/v1/devices/cam-2", tok, &dd)
		if dd.State != deploy.StateRefused || dd.Reason != strings.Repeat("x", 100) {
			return fmt.Errorf("cam-2 after a malformed report: %+v", dd.DeviceView)
		}
		return nil
	})
}

func putRaw(t *testing.T, nc interface{ Publish(string, []byte) error }, key string, b []byte) {
	t.Helper()
	if err := nc.Publish("$KV."+deploy.BucketStatus+"."+key, b); err != nil {
		t.Fatal(err)
	}
}

// The stream count is bounded; a stream that falls behind is closed.
func TestStreamLimits(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams"}, func(c *Config) { c.MaxStreams = 2 })
	tok := r.token("bob")
	c1, stop1 := r.stream(tok)
	defer stop1()
	next(t, c1, "hello", nil)
	c2, stop2 := r.stream(tok)
	next(t, c2, "hello", nil)
	if res := r.do("GET", "/api/v1/events", tok, ""); res.code != http.StatusServiceUnavailable {
		t.Errorf("third stream: %d", res.code)
	}
	stop2()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if c := r.do("GET", "/api/v1/session", tok, ""); c.code != 200 {
			return fmt.Errorf("%d", c.code)
		}
		r.d.bc.mu.Lock()
		n := len(r.d.bc.subs)
		r.d.bc.mu.Unlock()
		if n != 1 {
			return fmt.Errorf("%d streams", n)
		}
		return nil
	})
	// A subscriber that reads nothing is dropped once its queue is full.
	sub := r.d.bc.subscribe()
	for i := 0; i < streamQueue+1; i++ {
		r.d.bc.publish("x", i)
	}
	n := 0
	for range sub {
		n++
	}
	if n != streamQueue {
		t.Errorf("a stalled stream got %d messages before it was closed", n)
	}
}

func TestSignToken(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "op.nk")
	nk, _ := deploy.GenerateNkey(seed)
	acc := &deploy.Access{Operators: []deploy.OperatorAccess{{Name: "op", Nkey: nk}}}
	now := time.Now()
	tok, err := SignToken(seed, "op", Audience("x"), time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if op, err := verifyToken(acc, Audience("x"), tok, now); err != nil || op.Name != "op" {
		t.Fatalf("%v %v", op, err)
	}
	if _, err := verifyToken(acc, Audience("x"), tok, now.Add(time.Hour)); err == nil {
		t.Error("accepted at its expiry")
	}
	if _, err := SignToken(seed, "op", Audience("x"), 25*time.Hour, now); err == nil {
		t.Error("signed a 25h token")
	}
	os.Chmod(seed, 0o644)
	if _, err := SignToken(seed, "op", Audience("x"), time.Hour, now); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Errorf("world-readable seed: %v", err)
	}
}

// FuzzVerifyToken: the token is the first thing the dashboard parses from
// a stranger.
func FuzzVerifyToken(f *testing.F) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	acc := &deploy.Access{Operators: []deploy.OperatorAccess{{Name: "op", Nkey: pub}}}
	now := time.Unix(1_800_000_000, 0)
	good, _ := signToken(kp, TokenClaims{Operator: "op", Audience: "a", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	f.Add(good)
	f.Add("fennec1..")
	f.Add("fennec1.e30." + strings.Repeat("A", 86))
	f.Fuzz(func(t *testing.T, tok string) {
		// Only the token op signed verifies: the fuzzer cannot forge one,
		// nor re-encode it (strict base64, Ed25519's strict verification).
		if op, err := verifyToken(acc, "a", tok, now); err == nil && (op.Name != "op" || tok != good) {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// A live stream outlives the server's read timeout (were it cut, the page
// would reconnect, and reload every view, every 30 seconds).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	h := &fakeHub{}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: h, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.readTimeout = 100 * time.Millisecond
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	r := &rig{t: t, url: strings.TrimSuffix(d.URL(), "/"), d: d}
	c, stop := r.stream("")
	defer stop()
	next(t, c, "hello", nil)
	for i := uint64(1); i <= 6; i++ { // 600 ms: six read timeouts
		time.Sleep(100 * time.Millisecond)
		d.Round(federation.RoundReport{Round: i, Status: "completed"}, nil, nil)
		next(t, c, "round", func(s string) bool { return strings.Contains(s, fmt.Sprintf(`"round":%d,`, i)) })
	}
}

// A flood of device ids (a hub without an access file hears any id its
// fleet secret derives a key for) is bounded by MaxDevices.
func TestMaxDevices(t *testing.T) {
	h := &fakeHub{}
	now := time.Now()
	for i := 0; i < 50; i++ {
		h.set(fmt.Sprintf("d-%02d", i), now, true)
	}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: h, Interval: 10 * time.Millisecond, MaxDevices: 20, MaxRounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	for i := uint64(1); i <= 5; i++ {
		d.Round(federation.RoundReport{Round: i, Status: "completed", Participants: []string{fmt.Sprintf("new-%d", i)}}, nil, nil)
	}
	r := &rig{t: t, url: strings.TrimSuffix(d.URL(), "/"), d: d}
	var fv FleetView
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		r.get("/api/v1/fleet", "", &fv)
		if fv.Total != 20 || fv.Ignored < 30 {
			return fmt.Errorf("fleet total %d, ignored %d", fv.Total, fv.Ignored)
		}
		return nil
	})
	var tv TrainingView
	r.get("/api/v1/training", "", &tv)
	if f := tv.Federations[0]; len(f.Rounds) != 3 || f.Rounds[0].Round != 3 {
		t.Errorf("rounds kept: %+v", f.Rounds)
	}
}

// Shutdown ends the live streams and waits for every goroutine the
// dashboard started: the poll loop, the bucket watchers, the server.
func TestShutdownWaits(t *testing.T) {
	r := newRig(t, map[string]string{"cam-1": "cams"}, nil)
	c, stop := r.stream(r.token("bob"))
	defer stop()
	next(t, c, "hello", nil)
	mustPublish(t, r, "1.0.0", 100)
	next(t, c, "rollout", nil)
	r.d.Shutdown()
	for _, fn := range []string{"dashboard.(*state).run", "dashboard.(*state).watch", "dashboard.(*Dashboard).getEvents", "net/http.(*Server).Serve"} {
		testutil.NoGoroutine(t, fn)
	}
	r.d.Shutdown() // twice is fine
}
