package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/internal/testutil"
)

type fleet struct {
	t       *testing.T
	dir     string
	srv     TestServer
	op      *nats.Conn
	pub     *PrivateKey
	ops     *PrivateKey
	access  *Access
	seeds   map[string]string
	devices map[string]*testDevice
	// rigMod, when set, configures each device's Deployer further (a
	// model set, for bundles that carry models).
	rigMod func(*DeployerConfig)
}

type testDevice struct {
	id, group string
	rig       *rig
	agent     *Agent
	nc        *nats.Conn
	cancel    context.CancelFunc
	done      chan error
}

// TestServer is what the fleet tests run against: deploy's own server
// (StartServer) or a federation hub serving rollouts.
type TestServer interface {
	// Connect opens a client connection with opts (credentials).
	Connect(opts ...nats.Option) (*nats.Conn, error)
	ClientURL() string
	// Device is called with each device's connection once its rollout
	// agent runs (a hub's test starts the device's training on it too).
	Device(t *testing.T, id string, nc *nats.Conn)
}

// StartHub starts a federation hub that serves rollouts with access acc
// (and data under dir). It is set by hub_test.go, an external test package
// (package federation imports deploy, so this package cannot import it).
var StartHub func(t *testing.T, dir string, acc *Access) TestServer

type deployServer struct{ *Server }

func (deployServer) Device(*testing.T, string, *nats.Conn) {}

// servers runs fn against deploy's own server and against a federation hub.
func servers(t *testing.T, fn func(t *testing.T, on string)) {
	for _, on := range []string{"server", "hub"} {
		t.Run(on, func(t *testing.T) { fn(t, on) })
	}
}

// newFleet starts a NATS server with per-device credentials for the given
// devices (id -> group) and one operator.
func newFleet(t *testing.T, devices map[string]string) *fleet {
	t.Helper()
	return newFleetOn(t, "server", devices)
}

// newFleetOn is newFleet on deploy's own server ("server") or on a
// federation hub ("hub").
func newFleetOn(t *testing.T, on string, devices map[string]string) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir(), seeds: map[string]string{}, devices: map[string]*testDevice{}, access: &Access{},
		pub: mustKey(t, "acme", RolePublisher), ops: mustKey(t, "ops", RoleOperator)}
	for id, g := range devices {
		seed := filepath.Join(f.dir, "creds", id+".nk")
		nk, err := GenerateNkey(seed)
		if err != nil {
			t.Fatal(err)
		}
		f.seeds[id] = seed
		f.access.Devices = append(f.access.Devices, DeviceAccess{ID: id, Group: g, Nkey: nk})
	}
	opSeed := filepath.Join(f.dir, "creds", "alice.nk")
	nk, err := GenerateNkey(opSeed)
	if err != nil {
		t.Fatal(err)
	}
	f.seeds["alice"] = opSeed
	f.access.Operators = append(f.access.Operators, OperatorAccess{Name: "alice", Nkey: nk})
	// viewer may only read (role "read").
	viewSeed := filepath.Join(f.dir, "creds", "viewer.nk")
	vk, err := GenerateNkey(viewSeed)
	if err != nil {
		t.Fatal(err)
	}
	f.seeds["viewer"] = viewSeed
	f.access.Operators = append(f.access.Operators, OperatorAccess{Name: "viewer", Nkey: vk, Role: RoleRead})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch on {
	case "server":
		srv, err := StartServer(ctx, ServerConfig{Dir: filepath.Join(f.dir, "hub"), Listen: "127.0.0.1:0", Access: f.access})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		f.srv = deployServer{srv}
	case "hub":
		if StartHub == nil {
			t.Fatal("StartHub is not set (hub_test.go)")
		}
		f.srv = StartHub(t, filepath.Join(f.dir, "hub"), f.access)
	default:
		t.Fatalf("unknown server %q", on)
	}
	f.op = f.connect("alice", "")
	return f
}

func (f *fleet) connect(seedName, device string, extra ...nats.Option) *nats.Conn {
	f.t.Helper()
	opts, err := ConnectOptions(f.seeds[seedName], device)
	if err != nil {
		f.t.Fatal(err)
	}
	opts = append(opts, extra...)
	if len(extra) == 0 {
		opts = append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	}
	nc, err := f.srv.Connect(opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(nc.Close)
	return nc
}

// startDevice runs an agent for device id with its own store and deployer.
func (f *fleet) startDevice(id, group string) *testDevice {
	f.t.Helper()
	dir := filepath.Join(f.dir, "devices", id)
	for _, k := range []*PrivateKey{f.pub, f.ops} {
		if _, _, err := WriteKeyFiles(mkdir(f.t, dir), k); err != nil {
			f.t.Fatal(err)
		}
	}
	var agent atomic.Pointer[Agent]
	r := newRig(f.t, dir, func(c *DeployerConfig) {
		c.Device = id
		c.CrashLoopFailures = 3
		if f.rigMod != nil {
			f.rigMod(c)
		}
		inner := c.OnEvent
		c.OnEvent = func(e Event) {
			inner(e)
			if a := agent.Load(); a != nil {
				a.Notify(e)
			}
		}
	})
	d := &testDevice{id: id, group: group, rig: r, nc: f.connect(id, id), done: make(chan error, 1)}
	a, err := NewAgent(AgentConfig{Conn: d.nc, Device: id, Group: group, Deployer: r.d, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	agent.Store(a)
	d.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- a.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-d.done })
	f.devices[id] = d
	f.srv.Device(f.t, id, d.nc)
	return d
}

func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := osMkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (f *fleet) deploy(raw []byte, group string, canary int) Desired {
	f.t.Helper()
	d, err := Publish(context.Background(), f.op, raw, group, canary, "alice")
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// waitGroup polls the group's state until ok holds.
func (f *fleet) waitGroup(group string, what string, ok func(GroupState) bool) GroupState {
	f.t.Helper()
	var last GroupState
	testutil.CheckFor(f.t, 60*time.Second, 50*time.Millisecond, func() error {
		gs, err := Status(context.Background(), f.op, group)
		if err != nil {
			return err
		}
		if len(gs) == 1 {
			last = gs[0]
			if ok(last) {
				return nil
			}
		}
		js, _ := json.MarshalIndent(last, "", "  ")
		return fmt.Errorf("waiting for %s; last state:\n%s", what, js)
	})
	return last
}

func versions(g GroupState) map[string]string {
	m := map[string]string{}
	for _, d := range g.Devices {
		m[d.Device] = d.Version + "/" + d.State
	}
	return m
}

// TestRolloutFleet runs a full rollout on several agents against deploy's
// server and against a federation hub (where the devices also train):
// first install, a canary, promotion to the whole group, a bundle that
// fails its health check (every device stays on the good version), an
// unsigned bundle and a downgrade refused, an operator-signed rollback,
// and a group that is not touched.
func TestRolloutFleet(t *testing.T) { servers(t, testRolloutFleet) }

func testRolloutFleet(t *testing.T, on string) {
	devs := map[string]string{"cam-1": "cams", "cam-2": "cams", "cam-3": "cams", "cam-4": "cams", "gw-1": "gateways"}
	f := newFleetOn(t, on, devs)
	for id, g := range devs {
		f.startDevice(id, g)
	}
	allOn := func(version string) func(GroupState) bool {
		return func(g GroupState) bool {
			if len(g.Devices) != 4 {
				return false
			}
			for _, d := range g.Devices {
				if d.Version != version || d.State != StateRunning || !d.Healthy {
					return false
				}
			}
			return true
		}
	}

	v1Raw := guestBundle(t, f.pub, "1.0.0")
	v1 := f.deploy(v1Raw, "cams", 100)
	g := f.waitGroup("cams", "1.0.0 on every camera", allOn("1.0.0"))
	if sel, done, failed := g.Progress(); sel != 4 || done != 4 || failed != 0 {
		t.Fatalf("progress %d/%d/%d", sel, done, failed)
	}
	if g.Desired.Digest != v1.Digest || g.Desired.Operator != "alice" {
		t.Fatalf("desired %+v", g.Desired)
	}

	// Canary: only the selected devices move.
	c := f.deploy(guestBundle(t, f.pub, "1.1.0"), "cams", 50)
	var inCanary int
	for id, grp := range devs {
		if grp == "cams" && c.InCanary(id) {
			inCanary++
		}
	}
	g = f.waitGroup("cams", "the 50% canary", func(g GroupState) bool {
		n := 0
		for _, d := range g.Devices {
			switch {
			case c.InCanary(d.Device) && d.Version == "1.1.0" && d.State == StateRunning:
				n++
			case !c.InCanary(d.Device) && d.Version == "1.0.0" && d.State == StateNotCanary:
				n++
			}
		}
		return n == 4
	})
	if sel, done, _ := g.Progress(); sel != inCanary || done != inCanary {
		t.Fatalf("canary progress %d/%d, want %d selected: %v", done, sel, inCanary, versions(g))
	}

	// Promote to the whole group.
	f.deploy(guestBundle(t, f.pub, "1.1.0"), "cams", 100)
	f.waitGroup("cams", "1.1.0 everywhere", allOn("1.1.0"))

	// A version whose health check fails: every device refuses to switch.
	bad := f.deploy(guestBundle(t, f.pub, "1.2.0", "HEALTH", "fail"), "cams", 100)
	g = f.waitGroup("cams", "failed health everywhere", func(g GroupState) bool {
		for _, d := range g.Devices {
			if d.Version != "1.1.0" || d.State != StateFailed || d.Rollout != bad.ID {
				return false
			}
		}
		return len(g.Devices) == 4
	})
	if _, _, failed := g.Progress(); failed != 4 || !strings.Contains(g.Devices[0].Reason, "health check failed") {
		t.Fatalf("failed health: %+v", g.Devices[0])
	}

	// An unsigned bundle is refused by every device.
	f.deploy(guestBundle(t, nil, "1.3.0"), "cams", 100)
	f.waitGroup("cams", "refusal of an unsigned bundle", func(g GroupState) bool {
		for _, d := range g.Devices {
			if d.State != StateRefused || !strings.Contains(d.Reason, "(unsigned)") || d.Version != "1.1.0" {
				return false
			}
		}
		return len(g.Devices) == 4
	})

	// Going back to 1.0.0 is a downgrade: refused...
	f.deploy(v1Raw, "cams", 100)
	f.waitGroup("cams", "refusal of a downgrade", func(g GroupState) bool {
		for _, d := range g.Devices {
			if d.State != StateRefused || !strings.Contains(d.Reason, "(downgrade)") || d.Version != "1.1.0" {
				return false
			}
		}
		return len(g.Devices) == 4
	})
	// ...until an operator signs the same bundle as a rollback.
	rb, _ := DecodeBundle(v1Raw, Limits{})
	rb.Sign(f.ops, true)
	rbRaw, _ := rb.Encode()
	f.deploy(rbRaw, "cams", 100)
	f.waitGroup("cams", "operator rollback to 1.0.0", allOn("1.0.0"))

	// The other group was never touched.
	f.waitGroup("gateways", "gateway idle", func(g GroupState) bool {
		return len(g.Devices) == 1 && g.Devices[0].State == StateIdle && g.Desired == nil
	})
	// Audit lines on a device: every decision is there.
	recs, err := ReadAudit(f.devices["cam-1"].rig.audit)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, r := range recs {
		decisions = append(decisions, r.Version+":"+r.Decision)
	}
	want := "1.0.0:accept 1.1.0:accept 1.2.0:fail 1.3.0:refuse 1.0.0:refuse 1.0.0:accept"
	if got := strings.Join(decisions, " "); got != want {
		t.Fatalf("audit decisions %q, want %q", got, want)
	}
}

// TestRolloutCrashLoopReported: a version that passes its health check but
// then crash-loops is rolled back on the device, which reports it.
func TestRolloutCrashLoopReported(t *testing.T) { servers(t, testRolloutCrashLoop) }

func testRolloutCrashLoop(t *testing.T, on string) {
	f := newFleetOn(t, on, map[string]string{"d1": "g"})
	d := f.startDevice("d1", "g")
	f.deploy(guestBundle(t, f.pub, "1.0.0"), "g", 100)
	f.waitGroup("g", "1.0.0", func(g GroupState) bool { return len(g.Devices) == 1 && g.Devices[0].Version == "1.0.0" })
	f.deploy(guestBundle(t, f.pub, "2.0.0", "RUN", "trap"), "g", 100)
	f.waitGroup("g", "2.0.0", func(g GroupState) bool { return len(g.Devices) == 1 && g.Devices[0].Version == "2.0.0" })
	for range 3 {
		callRun(t, d.rig.d)
	}
	g := f.waitGroup("g", "rollback report", func(g GroupState) bool {
		s := g.Devices[0]
		return s.Version == "1.0.0" && s.State == StateRolledBk && strings.Contains(s.Reason, "crash loop")
	})
	if _, _, failed := g.Progress(); failed != 1 {
		t.Fatalf("a rolled-back device counts as failed in progress: %+v", g)
	}
}

// TestAccessControl shows that the server (deploy's, or a federation hub)
// enforces per-device permissions: a device cannot impersonate another,
// read another group's state, or deploy; an unknown key cannot connect.
func TestAccessControl(t *testing.T) { servers(t, testAccessControl) }

func testAccessControl(t *testing.T, on string) {
	f := newFleetOn(t, on, map[string]string{"cam-1": "cams", "cam-2": "cams", "gw-1": "gateways"})
	f.deploy(guestBundle(t, f.pub, "1.0.0"), "cams", 100)
	f.deploy(guestBundle(t, f.pub, "1.0.0"), "gateways", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server reports a permissions violation asynchronously; collect
	// them to tell a refusal from a slow server.
	violations := make(chan error, 16)
	nc := f.connect("cam-1", "cam-1", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case violations <- err:
			default:
			}
		}
	}))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	status, err := js.KeyValue(ctx, BucketStatus)
	if err != nil {
		t.Fatalf("device cannot open the status bucket: %v", err)
	}
	desired, err := js.KeyValue(ctx, BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	// Allowed: its own status, its own group's desired state, bundles.
	if _, err := status.Put(ctx, "cams.cam-1", []byte(`{}`)); err != nil {
		t.Fatalf("own status refused: %v", err)
	}
	if _, err := desired.Get(ctx, "cams"); err != nil {
		t.Fatalf("own group's state refused: %v", err)
	}
	w, err := desired.Watch(ctx, "cams")
	if err != nil {
		t.Fatalf("watching own group refused: %v", err)
	}
	if e := <-w.Updates(); e == nil || e.Key() != "cams" {
		t.Fatalf("watch: %v", e)
	}
	w.Stop()

	denied := []struct {
		name string
		do   func(context.Context) error
	}{
		{"status as another device", func(c context.Context) error { _, err := status.Put(c, "cams.cam-2", []byte(`{}`)); return err }},
		{"status in another group", func(c context.Context) error { _, err := status.Put(c, "gateways.cam-1", []byte(`{}`)); return err }},
		{"raw publish as another device", func(c context.Context) error {
			_, err := js.Publish(c, "$KV."+BucketStatus+".cams.cam-2", []byte(`{}`))
			return err
		}},
		{"read another group's state", func(c context.Context) error { _, err := desired.Get(c, "gateways"); return err }},
		{"watch another group", func(c context.Context) error {
			w, err := desired.Watch(c, "gateways")
			if err != nil {
				return err
			}
			defer w.Stop()
			select {
			case e := <-w.Updates():
				if e != nil {
					return nil // it read something: not denied
				}
				return nil
			case <-c.Done():
				return c.Err()
			}
		}},
		{"read other devices' status", func(c context.Context) error { _, err := status.Get(c, "cams.cam-2"); return err }},
		{"set a desired state (deploy)", func(c context.Context) error { _, err := desired.Put(c, "cams", []byte(`{}`)); return err }},
		{"upload a bundle", func(c context.Context) error {
			obs, err := js.ObjectStore(c, BucketBundles)
			if err != nil {
				return err
			}
			_, err = obs.PutBytes(c, "x", []byte("y"))
			return err
		}},
		{"deploy with Publish", func(c context.Context) error {
			_, err := Publish(c, nc, guestBundle(t, f.pub, "9.0.0"), "cams", 100, "cam-1")
			return err
		}},
		{"delete the desired bucket", func(c context.Context) error { return js.DeleteKeyValue(c, BucketDesired) }},
		{"listen on another device's inbox", func(c context.Context) error {
			sub, err := nc.SubscribeSync("_INBOX_cam-2.>")
			if err != nil {
				return err
			}
			defer sub.Unsubscribe()
			nc.Flush()
			return nc.LastError()
		}},
	}
	if on == "hub" {
		// The hub's federation subjects end with the device id.
		denied = append(denied, []struct {
			name string
			do   func(context.Context) error
		}{
			{"federation update as another device", func(c context.Context) error {
				_, err := nc.RequestWithContext(c, "fennec.default.update.cam-2", []byte{0xa0})
				return err
			}},
			{"federation join as another device", func(c context.Context) error {
				_, err := nc.RequestWithContext(c, "fennec.default.join.cam-2", []byte{0xa0})
				return err
			}},
			{"receive another device's training tasks", func(c context.Context) error {
				sub, err := nc.SubscribeSync("fennec.default.task.cam-2")
				if err != nil {
					return err
				}
				defer sub.Unsubscribe()
				nc.Flush()
				return nc.LastError()
			}},
		}...)
	}
	drain := func() {
		for {
			select {
			case <-violations:
			case <-time.After(20 * time.Millisecond):
				return
			}
		}
	}
	for _, d := range denied {
		drain()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		res := make(chan error, 1)
		go func() { res <- d.do(c) }()
		select {
		case v := <-violations:
			cancel()
			<-res
			t.Logf("%s: refused: %v", d.name, v)
		case err := <-res:
			cancel()
			if err == nil {
				t.Errorf("%s: allowed", d.name)
			} else if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "ermission") {
				t.Logf("%s: refused: %v", d.name, err)
			} else {
				t.Errorf("%s: failed without a permissions violation: %v", d.name, err)
			}
		}
	}
	// Another device still sees its own status untouched.
	opKV, _ := jetstream.New(f.op)
	st, _ := opKV.KeyValue(ctx, BucketStatus)
	if _, err := st.Get(ctx, "cams.cam-2"); err == nil {
		t.Fatal("a status for cam-2 exists although only cam-1 wrote")
	}
	// An unknown key cannot connect at all.
	stranger := filepath.Join(f.dir, "stranger.nk")
	GenerateNkey(stranger)
	opts, _ := ConnectOptions(stranger, "cam-2")
	start := time.Now()
	if nc, err := nats.Connect(f.srv.ClientURL(), append(opts, nats.Timeout(5*time.Second))...); err == nil {
		nc.Close()
		t.Fatal("an unknown nkey connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unknown nkey: %v, want an authorization violation", err)
	} else {
		t.Logf("unknown nkey refused after %v: %v", time.Since(start), err)
	}
}

// An operator of role "read" reads the fleet's state and deploys nothing.
func TestOperatorReadRole(t *testing.T) { servers(t, testOperatorReadRole) }

func testOperatorReadRole(t *testing.T, on string) {
	f := newFleetOn(t, on, map[string]string{"cam-1": "cams"})
	f.deploy(guestBundle(t, f.pub, "1.0.0"), "cams", 100)
	violated := make(chan error, 1)
	nc := f.connect("viewer", "", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case violated <- err:
			default:
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gs, err := Status(ctx, nc, "")
	if err != nil || len(gs) != 1 || gs[0].Desired == nil || gs[0].Desired.Version != "1.0.0" {
		t.Fatalf("a read operator's status: %+v %v", gs, err)
	}
	c, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	res := make(chan error, 1)
	go func() { _, err := Publish(c, nc, guestBundle(t, f.pub, "2.0.0"), "cams", 100, "viewer"); res <- err }()
	select {
	case v := <-violated:
		t.Logf("refused: %v", v)
		cancel2()
		<-res
	case err := <-res:
		if err == nil {
			t.Fatal("an operator of role read deployed")
		}
		t.Logf("refused: %v", err)
	}
	if gs, err := Status(ctx, f.op, "cams"); err != nil || gs[0].Desired.Version != "1.0.0" {
		t.Fatalf("the desired state changed: %+v %v", gs, err)
	}
}

func TestParseAccess(t *testing.T) {
	dir := t.TempDir()
	nk, _ := GenerateNkey(filepath.Join(dir, "a.nk"))
	nk2, _ := GenerateNkey(filepath.Join(dir, "b.nk"))
	good := fmt.Sprintf("[[device]]\nid = \"cam-1\"\ngroup = \"cams\"\nnkey = %q\n\n[[operator]]\nname = \"alice\"\nnkey = \"%s\"\n", nk, "UBAD")
	_, err := ParseAccess([]byte(good), "access.toml")
	if err == nil || !strings.Contains(err.Error(), "access.toml:8: operator[0].nkey") {
		t.Fatalf("got %v", err)
	}
	for _, c := range []struct{ src, want string }{
		{fmt.Sprintf("[[device]]\nid = \"a b\"\ngroup = \"g\"\nnkey = %q\n", nk), "access.toml:2: device[0].id"},
		{fmt.Sprintf("[[device]]\nid = \"a\"\ngroup = \"g\"\nnkey = %q\n[[device]]\nid = \"b\"\ngroup = \"g\"\nnkey = %q\n", nk, nk), "access.toml:8: device[1].nkey: already used"},
		{"[[device]]\nid = \"a\"\nrole = 1\n", "access.toml:3: unknown field \"device.role\""},
		{fmt.Sprintf("[[operator]]\nname = \"bob\"\nnkey = %q\nrole = \"admin\"\n", nk), `access.toml:4: operator[0].role: "admin": want "deploy" or "read"`},
		{fmt.Sprintf("[[operator]]\nname = \"bob\"\nnkey = %q\n[[operator]]\nname = \"bob\"\nnkey = %q\n", nk, nk2), `access.toml:5: operator[1].name: "bob" is listed twice`},
	} {
		if _, err := ParseAccess([]byte(c.src), "access.toml"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func FuzzParseDesired(f *testing.F) {
	f.Add([]byte(`{"id":"0123456789abcdef","bundle":"` + strings.Repeat("b", 64) + `","digest":"` + strings.Repeat("a", 64) + `","module":"m","version":"1.0.0","canary":100,"time":"2024-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseDesired(b)
		ParseDeviceStatus(b)
	})
}
