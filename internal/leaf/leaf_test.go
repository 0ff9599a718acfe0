package leaf

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/internal/tlsfiles"
	"github.com/fennec-edge/fennec/internal/tlsfiles/tlstest"
)

// testHub is a hub-like server: nkey users, a leaf listener, JetStream in
// HubDomain, and the uplink stream sourcing the devices' outboxes. It can
// be stopped and started again on the same ports and store.
type testHub struct {
	t        *testing.T
	dir      string
	port     int // client
	leafPort int
	users    []*server.NkeyUser
	devices  []string
	admin    nkeys.KeyPair
	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	tls      *tls.Config // the leaf listener's, when set
	errs     atomicCount // the hub's log lines of refused connections
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// device is a device's key and the hub-side user the test gives it:
// perms are its client permissions (without the leaf's).
type device struct {
	id string
	kp nkeys.KeyPair
}

func newDevice(t *testing.T, id string) device {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	return device{id, kp}
}

func newTestHub(t *testing.T, devs ...device) *testHub { return newTLSHub(t, nil, devs...) }

func newTLSHub(t *testing.T, tc *tls.Config, devs ...device) *testHub {
	h := &testHub{t: t, dir: t.TempDir(), port: freePort(t), leafPort: freePort(t), tls: tc}
	admin, _ := nkeys.CreateUser()
	h.admin = admin
	apub, _ := admin.PublicKey()
	h.users = append(h.users, &server.NkeyUser{Nkey: apub})
	for _, d := range devs {
		pub, _ := d.kp.PublicKey()
		p := Permissions(d.id)
		// The device's own client subjects, as a hub grants them.
		p.Publish.Allow = append(p.Publish.Allow, "fennec.default.join."+d.id)
		p.Subscribe.Allow = append(p.Subscribe.Allow, "fennec.default.task."+d.id, "_INBOX_"+d.id+".>")
		h.users = append(h.users, &server.NkeyUser{Nkey: pub, Permissions: p})
		h.devices = append(h.devices, d.id)
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *testHub) start() {
	t := h.t
	t.Helper()
	ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "hub", Dir: h.dir, Logger: tlog{t, &h.errs},
		Listen: "127.0.0.1:" + strconv.Itoa(h.port),
		Configure: func(o *server.Options) {
			o.Nkeys = h.users
			HubOptions(o)
			o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", h.leafPort
			if h.tls != nil {
				o.LeafNode.TLSConfig, o.LeafNode.TLSTimeout = h.tls, 5
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.ns = ns
	apub, _ := h.admin.PublicKey()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Nkey(apub, h.admin.Sign))
	if err != nil {
		t.Fatal(err)
	}
	h.nc = nc
	h.js, _ = jetstream.New(nc)
	cfg, err := UplinkConfig(h.devices, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

func (h *testHub) stop() {
	if h.ns == nil {
		return
	}
	h.nc.Close()
	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	h.ns = nil
}

func (h *testHub) leafURL() string { return "nats-leaf://127.0.0.1:" + strconv.Itoa(h.leafPort) }

func (h *testHub) uplinkMsgs() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, UplinkStream)
	if err != nil {
		return 0
	}
	info := s.CachedInfo()
	for _, si := range info.Sources {
		if si.Error != nil {
			h.t.Logf("source %s: %v (lag %d, active %v)", si.Name, si.Error, si.Lag, si.Active)
		}
	}
	return info.State.Msgs
}

func startLeaf(t *testing.T, d device, hub string) *Node {
	t.Helper()
	n, err := New(Config{Device: d.id, Hub: hub, Dir: t.TempDir(), Nkey: d.kp, Reconnect: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

func localJS(t *testing.T, n *Node) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect("", nats.InProcessServer(n.Server()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return nc, js
}

// The outage: the hub stops while the device publishes; every publish is
// accepted by the device's outbox; when the hub returns, exactly the N
// messages arrive in the hub's uplink stream, each once.
func TestOutageDeliversExactlyOnce(t *testing.T) {
	d := newDevice(t, "bed7")
	h := newTestHub(t, d)
	n := startLeaf(t, d, h.leafURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !n.Connected() {
			return fmt.Errorf("leaf not connected")
		}
		return nil
	})
	_, js := localJS(t, n)
	ctx := context.Background()
	const N = 300
	seq := 0
	publish := func(k int) {
		t.Helper()
		for range k {
			id := fmt.Sprintf("alert-%d", seq)
			if _, err := js.Publish(ctx, "alerts.bed7", []byte(id), jetstream.WithMsgID(id)); err != nil {
				t.Fatalf("publish %d refused: %v", seq, err)
			}
			seq++
		}
	}
	publish(N / 3)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := h.uplinkMsgs(); got != N/3 {
			return fmt.Errorf("uplink holds %d, want %d", got, N/3)
		}
		return nil
	})
	h.stop()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n.Connected() {
			return fmt.Errorf("leaf still connected")
		}
		return nil
	})
	publish(N / 3) // the device keeps accepting while the hub is gone
	// A retried publish (same Nats-Msg-Id) is stored once.
	if _, err := js.Publish(ctx, "alerts.bed7", []byte("alert-0"), jetstream.WithMsgID(fmt.Sprintf("alert-%d", seq-1))); err != nil {
		t.Fatal(err)
	}
	st, err := n.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != N/3 || st.Connected || st.Oldest.IsZero() {
		t.Errorf("offline stats %+v, want %d pending, disconnected", st, N/3)
	}
	h.start()
	publish(N - 2*(N/3))
	// Delivery resumes when the leaf reconnects; if the restarted hub's
	// first source request went out before the leaf was back, nats-server
	// waits out that request (30 s) before it asks again: hence the bound.
	testutil.CheckFor(t, 75*time.Second, 20*time.Millisecond, func() error {
		if got := h.uplinkMsgs(); got != N {
			return fmt.Errorf("uplink holds %d, want %d", got, N)
		}
		return nil
	})
	// Read every message back: each id once.
	c, err := h.js.OrderedConsumer(ctx, UplinkStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < N; i++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		seen[string(m.Data())]++
		if m.Subject() != "uplink.bed7.alerts.bed7" {
			t.Fatalf("uplink subject %q, want uplink.bed7.alerts.bed7", m.Subject())
		}
	}
	for i := range N {
		if k := seen[fmt.Sprintf("alert-%d", i)]; k != 1 {
			t.Errorf("alert-%d arrived %d times", i, k)
		}
	}
	st, err = n.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 0 || st.Lost != 0 || !st.Connected {
		t.Errorf("stats after the outage %+v", st)
	}
	// The hub's view of the device's uplink (the dashboard shows it):
	// every message delivered, none waiting, recent contact.
	ups, err := Uplinks(ctx, h.js)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := ups["bed7"]; !ok || u.Delivered != N || u.Lag != 0 || u.Idle < 0 || u.Idle > time.Minute || u.Err != "" || len(ups) != 1 {
		t.Errorf("Uplinks = %+v, want bed7 delivered %d, lag 0, recent", ups, N)
	}
	t.Logf("outage: %d published (%d while the hub was down), %d in the hub's uplink, duplicates 0", N, N/3, h.uplinkMsgs())
}

type tlog struct {
	t    *testing.T
	errs *atomicCount
}

type atomicCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *atomicCount) add(s string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	for _, k := range []string{"handshake error", "Authorization Violation"} {
		if strings.Contains(s, k) {
			c.n[k]++
		}
	}
}

func (c *atomicCount) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (l tlog) Fatalf(f string, v ...any) { l.t.Logf("hub FATAL "+f, v...) }
func (l tlog) Errorf(f string, v ...any) {
	l.errs.add(fmt.Sprintf(f, v...))
	l.t.Logf("hub ERR "+f, v...)
}
func (l tlog) Warnf(f string, v ...any)   { l.t.Logf("hub WARN "+f, v...) }
func (l tlog) Noticef(f string, v ...any) {}
func (l tlog) Debugf(f string, v ...any)  {}
func (l tlog) Tracef(f string, v ...any)  {}

// TestMain runs this test binary as a hub child process (the SIGKILL
// outage) when FENNEC_LEAF_HUB_CHILD names its store.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FENNEC_LEAF_HUB_CHILD"); dir != "" {
		os.Exit(hubChild(dir))
	}
	os.Exit(m.Run())
}

// hubChild serves a hub on the ports and with the users the parent chose
// (FENNEC_LEAF_HUB_PORTS=client,leaf; _ADMIN=nkey; _DEVICE=id:nkey),
// prints "ready" and runs until killed.
func hubChild(dir string) int {
	var port, leafPort int
	if _, err := fmt.Sscanf(os.Getenv("FENNEC_LEAF_HUB_PORTS"), "%d,%d", &port, &leafPort); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	id, dpub, _ := strings.Cut(os.Getenv("FENNEC_LEAF_HUB_DEVICE"), ":")
	users := []*server.NkeyUser{{Nkey: os.Getenv("FENNEC_LEAF_HUB_ADMIN")}, {Nkey: dpub, Permissions: Permissions(id)}}
	ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "hub", Dir: dir,
		Listen: "127.0.0.1:" + strconv.Itoa(port),
		Configure: func(o *server.Options) {
			o.Nkeys = users
			HubOptions(o)
			o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", leafPort
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	ns.WaitForShutdown()
	return 0
}

// The outage with the hub's process killed (SIGKILL) and restarted on its
// store: the N messages arrive once each.
func TestOutageHubKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hub child processes")
	}
	d := newDevice(t, "bed9")
	admin, _ := nkeys.CreateUser()
	apub, _ := admin.PublicKey()
	dpub, _ := d.kp.PublicKey()
	dir, port, leafPort := t.TempDir(), freePort(t), freePort(t)
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FENNEC_LEAF_HUB_CHILD="+dir, fmt.Sprintf("FENNEC_LEAF_HUB_PORTS=%d,%d", port, leafPort),
			"FENNEC_LEAF_HUB_ADMIN="+apub, "FENNEC_LEAF_HUB_DEVICE="+d.id+":"+dpub)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("hub child did not start: %q", sc.Text())
		}
		go func() {
			for sc.Scan() {
			}
		}()
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.Nkey(apub, admin.Sign),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hjs, _ := jetstream.New(nc)
	ctx := context.Background()
	ucfg, _ := UplinkConfig([]string{d.id}, 64<<20)
	if _, err := hjs.CreateOrUpdateStream(ctx, ucfg); err != nil {
		t.Fatal(err)
	}
	uplink := func() uint64 {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := hjs.Stream(cctx, UplinkStream)
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}
	n := startLeaf(t, d, fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort))
	_, js := localJS(t, n)
	const N = 300
	seq := 0
	publish := func(k int) {
		t.Helper()
		for range k {
			id := fmt.Sprintf("reading-%d", seq)
			if _, err := js.Publish(ctx, "results.bed9.score", []byte(id), jetstream.WithMsgID(id)); err != nil {
				t.Fatalf("publish %d refused: %v", seq, err)
			}
			seq++
		}
	}
	waitUplink := func(want uint64) {
		t.Helper()
		testutil.CheckFor(t, 75*time.Second, 20*time.Millisecond, func() error {
			if got := uplink(); got != want {
				return fmt.Errorf("uplink holds %d, want %d", got, want)
			}
			return nil
		})
	}
	publish(N / 3)
	waitUplink(N / 3)
	kill(cmd)
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n.Connected() {
			return fmt.Errorf("leaf still connected to a killed hub")
		}
		return nil
	})
	publish(N / 3)
	cmd = start()
	publish(N - 2*(N/3))
	waitUplink(N)
	c, err := hjs.OrderedConsumer(ctx, UplinkStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < N; i++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		seen[string(m.Data())]++
	}
	for i := range N {
		if k := seen[fmt.Sprintf("reading-%d", i)]; k != 1 {
			t.Errorf("reading-%d arrived %d times", i, k)
		}
	}
	t.Logf("kill -9: %d published (%d while the hub was dead), %d in the hub's uplink, each once", N, N/3, uplink())
}

// A full outbox drops its oldest messages, counts them as lost and keeps
// accepting: the device never blocks on a long outage.
func TestFullOutboxDropsOldest(t *testing.T) {
	d := newDevice(t, "bed3")
	n, err := New(Config{Device: d.id, Dir: t.TempDir(), MaxBytes: 1 << 20}) // no hub at all
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	_, js := localJS(t, n)
	ctx := context.Background()
	body := make([]byte, 8<<10)
	const k = 200 // 1.6 MB into a 1 MiB outbox
	for i := range k {
		if _, err := js.Publish(ctx, "alerts.bed3", body); err != nil {
			t.Fatalf("publish %d refused on a full outbox: %v", i, err)
		}
	}
	st, err := n.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > 1<<20 || st.Lost == 0 || st.Lost+st.Messages != k || st.Pending != st.Messages {
		t.Fatalf("stats %+v: want at most 1 MiB held, the rest counted lost", st)
	}
	t.Logf("full outbox: %d published, %d held (%d B), %d lost", k, st.Messages, st.Bytes, st.Lost)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Dir: "x"}, "device"},
		{Config{Device: "a.b", Dir: "x"}, "device"},
		{Config{Device: "a"}, "dir is required"},
		{Config{Device: "a", Dir: "x", Hub: "http://h:1"}, "scheme"},
		{Config{Device: "a", Dir: "x", Hub: "nats-leaf://u:p@h:1"}, "credentials"},
		{Config{Device: "a", Dir: "x", Subjects: []string{"a..b"}}, "subjects[0]"},
		{Config{Device: "a", Dir: "x", Subjects: []string{"ok", "$JS.API.>"}}, "subjects[1]"},
		{Config{Device: "a", Dir: "x", MaxBytes: 100}, "max_bytes"},
		{Config{Device: "a", Dir: "x", MaxAge: -time.Second}, "max_age"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}

// The outbox's metrics, as a Prometheus registry gathers them.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, err := New(Config{Device: "bed4", Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, js := localJS(t, n)
	for range 3 {
		if _, err := js.Publish(context.Background(), "results.bed4.score", []byte("0.9")); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			got[mf.GetName()] = m.Gauge.GetValue()
		case m.Counter != nil:
			got[mf.GetName()] = m.Counter.GetValue()
		}
	}
	for name, want := range map[string]float64{"fennec_leaf_outbox_messages": 3, "fennec_leaf_outbox_pending_messages": 3,
		"fennec_leaf_outbox_lost_total": 0, "fennec_leaf_hub_connected": 0} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["fennec_leaf_outbox_oldest_pending_age_seconds"] <= 0 {
		t.Errorf("oldest pending age %v", got["fennec_leaf_outbox_oldest_pending_age_seconds"])
	}
	n.Shutdown()
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("%d metric families left after Shutdown", len(mfs))
	}
}

// tap is a TCP proxy that records every byte it forwards, both ways.
type tap struct {
	l   net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

func newTap(t *testing.T, to string) *tap {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			cp := func(dst, src net.Conn) {
				defer p.wg.Done()
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						p.mu.Lock()
						p.buf.Write(b[:n])
						p.mu.Unlock()
						if _, werr := dst.Write(b[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			p.wg.Add(2)
			go cp(u, c)
			go cp(c, u)
		}
	}()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

func (p *tap) saw(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.buf.Bytes(), []byte(s))
}

func (p *tap) addr() string { return p.l.Addr().String() }

// Over TLS, no payload crosses the leaf connection in the clear: a proxy
// between the device and the hub records every byte, and a known payload
// the device sends to the hub's uplink is found there without TLS and not
// with it (server-authenticated and mutual TLS).
func TestLeafTLSNoPlaintext(t *testing.T) {
	ca := tlstest.NewCA(t, "fennec-test")
	hubCert, hubKey := ca.Issue(t, "hub")
	devCert, devKey := ca.Issue(t, "bed5")
	for _, tc := range []struct {
		name   string
		server tlsfiles.Config // empty: plaintext
		client tlsfiles.Config
	}{
		{"plaintext", tlsfiles.Config{}, tlsfiles.Config{}},
		{"tls", tlsfiles.Config{Cert: hubCert, Key: hubKey}, tlsfiles.Config{CA: ca.File}},
		{"mutual tls", tlsfiles.Config{Cert: hubCert, Key: hubKey, ClientCA: ca.File}, tlsfiles.Config{CA: ca.File, Cert: devCert, Key: devKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stls *tls.Config
			var ctls *tls.Config
			scheme := "nats-leaf"
			if !tc.server.Empty() {
				sf, err := tlsfiles.Load(tc.server)
				if err != nil {
					t.Fatal(err)
				}
				if stls, err = sf.Server(); err != nil {
					t.Fatal(err)
				}
				cf, err := tlsfiles.Load(tc.client)
				if err != nil {
					t.Fatal(err)
				}
				ctls, scheme = cf.Client(), "tls"
			}
			d := newDevice(t, "bed5")
			h := newTLSHub(t, stls, d)
			p := newTap(t, fmt.Sprintf("127.0.0.1:%d", h.leafPort))
			n, err := New(Config{Device: d.id, Hub: scheme + "://" + p.addr(), Dir: t.TempDir(), Nkey: d.kp, TLS: ctls, Reconnect: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer n.Shutdown()
			_, js := localJS(t, n)
			canary := "CANARY-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if _, err := js.Publish(context.Background(), "alerts.bed5", []byte(canary)); err != nil {
				t.Fatal(err)
			}
			testutil.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
				if got := h.uplinkMsgs(); got != 1 {
					return fmt.Errorf("uplink holds %d, want 1 (leaf connected %v)", got, n.Connected())
				}
				return nil
			})
			if saw := p.saw(canary); saw != tc.server.Empty() {
				t.Errorf("payload seen on the wire: %v, want %v", saw, tc.server.Empty())
			}
		})
	}
	// Mutual TLS: a leaf without a client certificate never connects.
	sf, _ := tlsfiles.Load(tlsfiles.Config{Cert: hubCert, Key: hubKey, ClientCA: ca.File})
	stls, _ := sf.Server()
	cf, _ := tlsfiles.Load(tlsfiles.Config{CA: ca.File})
	d := newDevice(t, "bed6")
	h := newTLSHub(t, stls, d)
	n, err := New(Config{Device: d.id, Hub: fmt.Sprintf("tls://127.0.0.1:%d", h.leafPort), Dir: t.TempDir(), Nkey: d.kp, TLS: cf.Client(), Reconnect: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if h.errs.get("handshake error") < 2 {
			return fmt.Errorf("the hub refused no handshake yet")
		}
		return nil
	})
	if n.Connected() {
		t.Error("a leaf without a client certificate connected to a mutual-TLS hub")
	}
}

// A hostile hub (or anyone on the hub's side with the hub's rights) may
// read the device's outbox through the device's domain, but not delete or
// purge it: the leaf refuses those requests.
func TestHubCannotDestroyOutbox(t *testing.T) {
	d := newDevice(t, "bed8")
	h := newTestHub(t, d)
	n := startLeaf(t, d, h.leafURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !n.Connected() {
			return fmt.Errorf("leaf not connected")
		}
		return nil
	})
	_, js := localJS(t, n)
	if _, err := js.Publish(context.Background(), "alerts.bed8", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The leaf answers the hub's API requests only on the reply subjects
	// of its own domain, so ask as the hub's sourcing does.
	reply := "$JSC.R." + Domain(d.id) + ".test"
	sub, err := h.nc.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	api := "$JS." + Domain(d.id) + ".API."
	for _, req := range []string{"STREAM.PURGE.", "STREAM.DELETE.", "STREAM.INFO."} {
		if err := h.nc.PublishRequest(api+req+OutboxStream(d.id), reply, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Only the info request is answered (the others never reach the
	// device's JetStream: the hub's server answers them "no responders"),
	// after the others were sent.
	refused := 0
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("no answer to stream info through the device's domain: %v", err)
		}
		var info jetstream.StreamInfo
		if err := json.Unmarshal(m.Data, &info); err != nil || info.Config.Name != OutboxStream(d.id) {
			t.Fatalf("answer %s (%v): want the outbox's info, the purge and delete refused", m.Data, err)
		}
		break
	}
	t.Logf("purge and delete refused (%d no-responders answers), info answered", refused)
	st, err := n.Stats(context.Background())
	if err != nil || st.Messages != 1 {
		t.Fatalf("outbox after the hub's purge and delete: %+v, %v", st, err)
	}
}
