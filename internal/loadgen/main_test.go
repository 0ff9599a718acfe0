package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var d []time.Duration
		for _, x := range xs {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
		{ms(1, 2, 3), 1, 3 * time.Millisecond},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

// server starts nats-server with an MQTT listener, and a responder that
// answers "ok.*" requests, answers "shed.*" with a 429 error header, and
// turns MQTT readings on vitals.bed.* into results on alerts.x.N with the
// patient id in them (as the worked case's binding does), dropping every
// third to count as missing.
func server_(t *testing.T) (natsURL, mqttURL string) {
	t.Helper()
	var opts *server.Options
	ns, err := natsembed.Start(context.Background(), natsembed.Config{Name: "loadgen-test", Dir: t.TempDir(), Listen: "127.0.0.1:0",
		Configure: func(o *server.Options) { opts = o; o.MQTT.Host, o.MQTT.Port = "127.0.0.1", -1 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	nc.Subscribe("ok.*", func(m *nats.Msg) { m.Respond([]byte("fine")) })
	nc.Subscribe("shed.*", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Nats-Service-Error-Code", "429")
		m.RespondMsg(r)
	})
	n := 0
	nc.Subscribe("vitals.bed.*", func(m *nats.Msg) {
		n++
		if n%3 == 0 {
			return
		}
		bed := strings.TrimPrefix(m.Subject, "vitals.bed.")
		nc.Publish("alerts.x."+bed, []byte(fmt.Sprintf(`{"patients": ["L%s"], "scores": [0.1]}`, bed)))
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), fmt.Sprintf("tcp://127.0.0.1:%d", opts.MQTT.Port)
}

func TestNATSOutcomes(t *testing.T) {
	url, _ := server_(t)
	for _, tc := range []struct {
		subject, outcome string
	}{{"ok.1", "ok"}, {"shed.1", "429"}, {"nobody.1", "no-responders"}} {
		r, err := runNATS(config{url: url, subject: tc.subject, body: []byte("x"), rate: 200, duration: 200 * time.Millisecond, timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if r.sent < 30 || r.outcomes[tc.outcome] != r.sent {
			t.Errorf("%s: sent %d, outcomes %v; want all %q", tc.subject, r.sent, r.outcomes, tc.outcome)
		}
		if tc.outcome == "ok" && len(r.ok) != r.sent {
			t.Errorf("%s: %d latencies for %d answers", tc.subject, len(r.ok), r.sent)
		}
	}
	// Closed loop: each caller waits for its answer.
	r, err := runNATS(config{url: url, subject: "ok.2", body: []byte("x"), conc: 2, duration: 100 * time.Millisecond, timeout: time.Second})
	if err != nil || r.sent == 0 || r.outcomes["ok"] != r.sent {
		t.Fatalf("closed loop: %v %+v", err, r)
	}
}

func TestMQTTMatchesResults(t *testing.T) {
	url, murl := server_(t)
	c := config{url: url, mqttURL: murl, topic: "vitals/bed/{seq}", results: "alerts.x.*", qos: 1,
		body: []byte(`{"records": [{"patient": "L{seq}"}]}`), rate: 100, duration: 300 * time.Millisecond, timeout: 3 * time.Second}
	r, err := runMQTT(c)
	if err != nil {
		t.Fatal(err)
	}
	ok, missing := r.outcomes["ok"], r.outcomes["missing"]
	if r.sent < 20 || ok+missing != r.sent || missing != r.sent/3 {
		t.Fatalf("sent %d: ok %d, missing %d; want every third missing", r.sent, ok, missing)
	}
	if line := r.line("mqtt"); !strings.Contains(line, "missing:") || !strings.HasPrefix(line, "mqtt sent ") {
		t.Fatalf("line %q", line)
	}
	c.body = []byte(`{"records": []}`)
	if _, err := runMQTT(c); err == nil || !strings.Contains(err.Error(), "{seq}") {
		t.Fatalf("a body without {seq}: %v", err)
	}
}

func TestNeedsSubject(t *testing.T) {
	if _, err := runNATS(config{url: "nats://127.0.0.1:1", body: []byte("x")}); err == nil || !strings.Contains(err.Error(), "-subject") {
		t.Fatalf("no subject: %v", err)
	}
}
