package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
)

// fakeHub is a Hub whose heartbeats the test sets; its connection, when
// set, reaches a deploy server with the rollout buckets.
type fakeHub struct {
	mu   sync.Mutex
	seen map[string]time.Time
	nc   *nats.Conn
}

func (h *fakeHub) Seen() map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]time.Time{}
	for k, v := range h.seen {
		out[k] = v
	}
	return out
}

func (h *fakeHub) Conn() *nats.Conn { return h.nc }

func (h *fakeHub) set(id string, at time.Time, online bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]time.Time{}
	}
	if online {
		h.seen[id] = at
	} else {
		delete(h.seen, id)
	}
}

// rig is a dashboard on a deploy server with devices and two operators:
// alice (role deploy) and bob (role read).
type rig struct {
	t     *testing.T
	dir   string
	srv   *deploy.Server
	acc   *deploy.Access
	seeds map[string]string
	hub   *fakeHub
	d     *Dashboard
	url   string
	op    *nats.Conn
}

func newRig(t *testing.T, devices map[string]string, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), acc: &deploy.Access{}, seeds: map[string]string{}, hub: &fakeHub{}}
	key := func(name string) string {
		seed := filepath.Join(r.dir, "creds", name+".nk")
		nk, err := deploy.GenerateNkey(seed)
		if err != nil {
			t.Fatal(err)
		}
		r.seeds[name] = seed
		return nk
	}
	for id, g := range devices {
		r.acc.Devices = append(r.acc.Devices, deploy.DeviceAccess{ID: id, Group: g, Nkey: key(id)})
	}
	r.acc.Operators = append(r.acc.Operators,
		deploy.OperatorAccess{Name: "alice", Nkey: key("alice")},
		deploy.OperatorAccess{Name: "bob", Nkey: key("bob"), Role: deploy.RoleRead})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := deploy.StartServer(ctx, deploy.ServerConfig{Dir: filepath.Join(r.dir, "nats"), Listen: "-", Access: r.acc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	r.srv = srv
	r.op = r.connect("alice", "")
	r.hub.nc = r.op
	cfg := Config{Addr: "127.0.0.1:0", Hub: r.hub, Access: r.acc, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Training: Training{Name: "default", Strategy: "fedavg", Mode: "dp", TargetEpsilon: 3, Delta: 1e-5, Rounds: 10}}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)
	r.d, r.url = d, strings.TrimSuffix(d.URL(), "/")
	return r
}

func (r *rig) connect(name, device string) *nats.Conn {
	r.t.Helper()
	opts, err := deploy.ConnectOptions(r.seeds[name], device)
	if err != nil {
		r.t.Fatal(err)
	}
	nc, err := r.srv.Connect(append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	return nc
}

// token signs name's token for this dashboard.
func (r *rig) token(name string) string {
	r.t.Helper()
	tok, err := SignToken(r.seeds[name], name, Audience("default"), time.Hour, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// report writes device id's rollout report as its agent would, over its
// own credentials.
func (r *rig) report(nc *nats.Conn, st deploy.DeviceStatus) {
	r.t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, deploy.BucketStatus)
	if err != nil {
		r.t.Fatal(err)
	}
	st.LastSeen = time.Now().UTC()
	b, _ := json.Marshal(st)
	if _, err := kv.Put(ctx, st.Group+"."+st.Device, b); err != nil {
		r.t.Fatal(err)
	}
}

type resp struct {
	code int
	hdr  http.Header
	body string
}

func (r *rig) do(method, path, token string, body string, hdr ...string) resp {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (r *rig) get(path, token string, v any) {
	r.t.Helper()
	res := r.do("GET", path, token, "")
	if res.code != http.StatusOK {
		r.t.Fatalf("GET %s: %d %s", path, res.code, res.body)
	}
	if err := json.Unmarshal([]byte(res.body), v); err != nil {
		r.t.Fatalf("GET %s: %v in %s", path, err, res.body)
	}
}

// stream opens the live stream and returns its events (name + data).
func (r *rig) stream(token string) (<-chan [2]string, func()) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.url+"/api/v1/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		r.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		r.t.Fatalf("events: %d", res.StatusCode)
	}
	out := make(chan [2]string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = line[7:]
			case strings.HasPrefix(line, "data: "):
				select {
				case out <- [2]string{ev, line[6:]}:
				default:
				}
			}
		}
		close(out)
	}()
	return out, func() { cancel(); <-done }
}

// next waits for the stream's next event named ev whose data satisfies ok.
func next(t *testing.T, c <-chan [2]string, ev string, ok func(string) bool) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, open := <-c:
			if !open {
				t.Fatalf("stream closed waiting for %s", ev)
			}
			if e[0] == ev && (ok == nil || ok(e[1])) {
				return e[1]
			}
		case <-timeout:
			t.Fatalf("no %s event", ev)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
