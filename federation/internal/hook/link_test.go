package hook_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
)

func conns(t *testing.T, n int) []*nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	var out []*nats.Conn
	for i := 0; i < n; i++ {
		nc, err := nats.Connect("", nats.InProcessServer(ns))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		out = append(out, nc)
	}
	return out
}

var (
	keyA = bytes.Repeat([]byte{1}, 32)
	keyB = bytes.Repeat([]byte{2}, 32)
)

func echo(_ context.Context, round uint64, step string, data []byte) ([]byte, error) {
	if step == "fail" {
		return nil, errors.New("refused")
	}
	return append([]byte(step+":"), data...), nil
}

func TestLink(t *testing.T) {
	nc := conns(t, 4)
	keys := map[string][]byte{"a": keyA, "b": keyB, "c": keyA}
	hub, err := hook.NewHubLink(nc[0], "fed", func(id string) ([]byte, bool) { k, ok := keys[id]; return k, ok })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hook.ServeDevice(nc[1], "fed", "a", keyA, echo, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := hook.ServeDevice(nc[2], "fed", "b", keyB, echo, 0); err != nil {
		t.Fatal(err)
	}
	// "c" holds the wrong key: it cannot verify the hub's requests, so it
	// does not answer (no oracle), and the hub times it out.
	if _, err := hook.ServeDevice(nc[3], "fed", "c", keyB, echo, 0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reqs := map[string][]byte{"a": []byte("x"), "b": []byte("y"), "c": []byte("z"), "ghost": []byte("w"), "nokey": nil}
	keys["ghost"] = keyA
	rep, errs := hub.Exchange(ctx, 7, "sa.keys", reqs, 300*time.Millisecond)
	if string(rep["a"]) != "sa.keys:x" || string(rep["b"]) != "sa.keys:y" || len(rep) != 2 {
		t.Fatalf("replies %q", rep)
	}
	for _, d := range []string{"c", "ghost", "nokey"} {
		if errs[d] == nil {
			t.Fatalf("%s: no error", d)
		}
	}
	_, errs = hub.Exchange(ctx, 7, "fail", map[string][]byte{"a": nil}, time.Second)
	if errs["a"] == nil || !strings.Contains(errs["a"].Error(), "refused") {
		t.Fatalf("device error not relayed: %v", errs["a"])
	}
	if _, errs = hub.Exchange(ctx, 7, "bad step", map[string][]byte{"a": nil}, time.Second); errs["a"] == nil {
		t.Fatal("invalid step name accepted")
	}
	if o, i := hub.Bytes(); o == 0 || i == 0 {
		t.Fatalf("bytes out %d in %d", o, i)
	}
}

// TestLinkForgery: a step signed with another key, or replayed into
// another round, gets no answer; a reply signed with another key or for
// another round is refused by the hub.
func TestLinkForgery(t *testing.T) {
	nc := conns(t, 3)
	var served atomic.Int32
	if _, err := hook.ServeDevice(nc[1], "fed", "a", keyA, func(ctx context.Context, r uint64, s string, d []byte) ([]byte, error) {
		served.Add(1)
		return d, nil
	}, 0); err != nil {
		t.Fatal(err)
	}
	// forged request (hub link with the wrong key)
	bad, _ := hook.NewHubLink(nc[0], "fed", func(string) ([]byte, bool) { return keyB, true })
	if _, errs := bad.Exchange(context.Background(), 1, "s", map[string][]byte{"a": nil}, 200*time.Millisecond); errs["a"] == nil || served.Load() != 0 {
		t.Fatalf("forged request answered (served %d)", served.Load())
	}
	// an impostor answering for device "d" without its key
	if _, err := nc[2].Subscribe(hook.StepSubject("fed", "d"), func(m *nats.Msg) {
		st, _ := hook.DecodeStep(m.Data)
		b, _ := model.Marshal(hook.StepReply{Device: "d", Round: st.Round, Step: st.Step, Data: []byte("evil"), MAC: bytes.Repeat([]byte{7}, 32)})
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc[2].Flush()
	good, _ := hook.NewHubLink(nc[0], "fed", func(string) ([]byte, bool) { return keyA, true })
	if rep, errs := good.Exchange(context.Background(), 1, "s", map[string][]byte{"d": nil}, time.Second); errs["d"] == nil || rep["d"] != nil {
		t.Fatal("a reply with a bad MAC was accepted")
	}
	// a request with a made-up MAC
	s := hook.Step{Device: "a", Round: 1, Step: "s", Data: []byte("d"), MAC: bytes.Repeat([]byte{0}, 32)}
	b, _ := model.Marshal(s)
	if _, err := nc[0].Request(hook.StepSubject("fed", "a"), b, 200*time.Millisecond); err == nil || served.Load() != 0 {
		t.Fatalf("unsigned step answered (served %d, err %v)", served.Load(), err)
	}
}

func TestServeDeviceValidates(t *testing.T) {
	nc := conns(t, 1)
	for _, tc := range []struct {
		name, id string
		key      []byte
	}{{"fed", "a", []byte("short")}, {"fe.d", "a", keyA}, {"fed", "a.b", keyA}, {"fed", "", keyA}} {
		if _, err := hook.ServeDevice(nc[0], tc.name, tc.id, tc.key, echo, 0); err == nil {
			t.Fatalf("%+v accepted", tc)
		}
	}
	if _, err := hook.NewHubLink(nc[0], "a b", func(string) ([]byte, bool) { return nil, false }); err == nil {
		t.Fatal("bad federation name accepted")
	}
}

func FuzzDecodeStep(f *testing.F) {
	b, _ := model.Marshal(hook.Step{Device: "a", Round: 1, Step: "sa.keys", Data: []byte{1}, MAC: make([]byte, 32)})
	f.Add(b)
	r, _ := model.Marshal(hook.StepReply{Device: "a", Round: 1, Step: "sa.keys", Error: "x", MAC: make([]byte, 32)})
	f.Add(r)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := hook.DecodeStep(b); err == nil && (len(s.MAC) != 32 || s.Device == "") {
			t.Fatalf("accepted %+v", s)
		}
		if r, err := hook.DecodeStepReply(b); err == nil && (len(r.MAC) != 32 || r.Step == "") {
			t.Fatalf("accepted %+v", r)
		}
	})
}
