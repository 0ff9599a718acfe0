package serve

import (
	"bytes"
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/testutil"
)

const natsConfig = `
device = "ward3"

[[binding]]
name = "echo-rr"
module = "probe"
entry = "echo"
source = "nats"
subject = "probe.echo.*"
queue_group = "echoers"
concurrency = 2

[[binding]]
name = "vitals"
module = "probe"
entry = "echo"
source = "nats"
subject = "vitals.bed.*"
publish = "alerts.{device}.bed.{3}"

[[binding]]
name = "vitals-json"
module = "probe"
entry = "echo"
source = "nats"
subject = "vitalsj.bed.*"
format = "json"
publish = "alertsj.{device}"

[[binding]]
name = "mqtt-vitals"
module = "probe"
entry = "echo"
source = "mqtt"
topic = "sensors/bed/+"
publish = "alerts.{device}.mqtt.{3}"
`

func natsServe(t *testing.T) (*nats.Conn, string, func(string, ...string) float64) {
	probe := module(t, "probe")
	nc, _, mqttAddr := natsServer(t)
	_, reg, _ := startServer(t, natsConfig, map[string]Module{"probe": NewCompiled(context.Background(), probe, time.Second)}, nc)
	return nc, mqttAddr, func(name string, labels ...string) float64 { return metric(t, reg, name, labels...) }
}

func TestNATSRequestReply(t *testing.T) {
	nc, _, m := natsServe(t)
	in := []byte{0xa1, 0x61, 0x62, 0x02}
	r, err := nc.Request("probe.echo.7", in, 5*time.Second)
	if err != nil || !bytes.Equal(r.Data, in) || r.Header.Get(HeaderError) != "" {
		t.Fatalf("reply %x %v (%v)", r.Data, r.Header, err)
	}
	// Malformed CBOR: an error reply with the code, and the counter.
	r, err = nc.Request("probe.echo.7", []byte{0xa1}, 5*time.Second)
	if err != nil || r.Header.Get(HeaderErrorCode) != "400" {
		t.Fatalf("malformed: %v %v", r, err)
	}
	if got := m("fennec_binding_rejected_total", "binding", "echo-rr", "reason", "malformed"); got != 1 {
		t.Fatalf("rejected counter %v", got)
	}
	if r, err = nc.Request("probe.echo.7", in, 5*time.Second); err != nil || !bytes.Equal(r.Data, in) {
		t.Fatalf("after bad input: %v", err)
	}
}

// TestNATSQueueGroup runs two servers in one queue group: each request is
// answered once, and both share the load.
func TestNATSQueueGroup(t *testing.T) {
	probe := module(t, "probe")
	nc, _, _ := natsServer(t)
	cfg := "[[binding]]\nname = \"q\"\nmodule = \"probe\"\nentry = \"echo\"\nsource = \"nats\"\nsubject = \"work.>\"\nqueue_group = \"workers\"\nqueue = 64\n"
	var regs []func() float64
	for i := 0; i < 2; i++ {
		_, reg, _ := startServer(t, cfg, map[string]Module{"probe": NewCompiled(context.Background(), probe, time.Second)}, nc)
		regs = append(regs, func() float64 { return metric(t, reg, "fennec_module_calls_total", "outcome", "ok") })
	}
	const n = 60
	for i := 0; i < n; i++ {
		if _, err := nc.Request(fmt.Sprintf("work.%d", i), []byte{byte(i % 20)}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	a, b := regs[0](), regs[1]()
	if a+b != n || a == 0 || b == 0 {
		t.Fatalf("calls %v + %v, want %d shared by both", a, b, n)
	}
}

func TestNATSSubscribePublish(t *testing.T) {
	nc, _, m := natsServe(t)
	sub, err := nc.SubscribeSync("alerts.>")
	if err != nil {
		t.Fatal(err)
	}
	jsub, _ := nc.SubscribeSync("alertsj.>")
	nc.Flush()
	nc.Publish("vitals.bed.4", []byte{0x18, 0x2a})
	nc.Publish("vitalsj.bed.9", []byte(`{"hr": 120}`))
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || msg.Subject != "alerts.ward3.bed.4" || !bytes.Equal(msg.Data, []byte{0x18, 0x2a}) {
		t.Fatalf("alert %v (%v)", msg, err)
	}
	msg, err = jsub.NextMsg(5 * time.Second)
	if err != nil || msg.Subject != "alertsj.ward3" || string(msg.Data) != `{"hr":120}` {
		t.Fatalf("json alert %v (%v)", msg, err)
	}
	// Malformed JSON is dropped, counted, and logged; nothing published.
	nc.Publish("vitalsj.bed.9", []byte(`{"hr": `))
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := m("fennec_binding_rejected_total", "binding", "vitals-json", "reason", "malformed"); got != 1 {
			return fmt.Errorf("rejected %v", got)
		}
		return nil
	})
	if m("fennec_binding_published_total", "binding", "vitals") != 1 {
		t.Fatal("published counter")
	}
}

// TestMQTT publishes readings from an MQTT 3.1.1 client (paho) to
// nats-server's own MQTT listener; the binding scores them and its alerts
// reach both a NATS and an MQTT subscriber.
func TestMQTT(t *testing.T) {
	nc, addr, _ := natsServe(t)
	sub, _ := nc.SubscribeSync("alerts.ward3.mqtt.*")
	nc.Flush()
	got := make(chan mqtt.Message, 4)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bed-monitor-1").SetConnectTimeout(5 * time.Second)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Subscribe("alerts/ward3/mqtt/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt subscribe: %v", tok.Error())
	}
	for _, qos := range []byte{0, 1} {
		if tok := cl.Publish("sensors/bed/12", qos, false, []byte{0x18, 0x63}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("mqtt publish qos %d: %v", qos, tok.Error())
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil || msg.Subject != "alerts.ward3.mqtt.12" || !bytes.Equal(msg.Data, []byte{0x18, 0x63}) {
			t.Fatalf("qos %d: alert %v (%v)", qos, msg, err)
		}
		select {
		case m := <-got:
			if m.Topic() != "alerts/ward3/mqtt/12" || !bytes.Equal(m.Payload(), []byte{0x18, 0x63}) {
				t.Fatalf("mqtt alert %s %x", m.Topic(), m.Payload())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no alert over MQTT")
		}
	}
}

// TestNATSOverload floods a binding that runs one call and queues one:
// the rest are shed at once, counted, and the admitted two run.
func TestNATSOverload(t *testing.T) {
	probe := module(t, "probe")
	nc, _, _ := natsServer(t)
	cfg := "[[binding]]\nname = \"slow\"\nmodule = \"probe\"\nentry = \"spin\"\nsource = \"nats\"\nsubject = \"slow\"\nconcurrency = 1\nqueue = 1\nqueue_timeout = \"10s\"\n"
	_, reg, _ := startServer(t, cfg, map[string]Module{"probe": NewCompiled(context.Background(), probe, time.Second)}, nc)
	const n = 10
	for i := 0; i < n; i++ {
		nc.Publish("slow", []byte{0xa0})
	}
	nc.Flush()
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		shed := metric(t, reg, "fennec_binding_shed_total", "binding", "slow", "reason", "queue_full")
		ran := metric(t, reg, "fennec_module_calls_total", "entry", "spin", "outcome", "deadline")
		if shed != n-2 || ran != 2 {
			return fmt.Errorf("shed %v, ran %v; want %d and 2", shed, ran, n-2)
		}
		return nil
	})
}

// A NATS binding's subscription drops messages when its pending buffer is
// full (the delivery goroutine fell behind a flood); those get no reply,
// so they are counted in fennec_binding_dropped_total, read from the
// subscription at each scrape. The wiring: every NATS and MQTT binding has
// the series from Start. The count: a subscription whose delivery is held
// while 20 messages arrive into a pending buffer of 2 reports its drops.
func TestNATSDroppedCounted(t *testing.T) {
	nc, _, _ := natsServer(t)
	probe := module(t, "probe")
	cfg := "[[binding]]\nname = \"flood\"\nmodule = \"probe\"\nentry = \"echo\"\nsource = \"nats\"\nsubject = \"flood\"\n"
	_, reg, _ := startServer(t, cfg, map[string]Module{"probe": NewCompiled(context.Background(), probe, time.Second)}, nc)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "fennec_binding_dropped_total" && len(mf.GetMetric()) == 1
	}
	if !found {
		t.Fatal("no fennec_binding_dropped_total series for the binding")
	}

	hold := make(chan struct{})
	sub, err := nc.Subscribe("held", func(*nats.Msg) { <-hold })
	if err != nil {
		t.Fatal(err)
	}
	defer close(hold)
	if err := sub.SetPendingLimits(2, 1<<20); err != nil {
		t.Fatal(err)
	}
	// The publishes come from a second connection: the server must know of
	// the subscription before they arrive, or they go nowhere and nothing
	// is dropped (the CI failure of stop 24).
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for range 20 {
		pub.Publish("held", []byte{0xa0})
	}
	pub.Flush()
	d := &droppedCollector{desc: prometheus.NewDesc("fennec_binding_dropped_total", "", []string{"binding"}, nil), subs: map[string]*nats.Subscription{}}
	d.set("held", sub)
	r := prometheus.NewRegistry()
	r.MustRegister(d)
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := metric(t, r, "fennec_binding_dropped_total", "binding", "held"); n < 17 {
			return fmt.Errorf("dropped %v, want >= 17 of 20 into a pending buffer of 2 (one held in delivery)", n)
		}
		return nil
	})
}

// TestMemoryMQTTMessages: the MQTT message stream is made a memory one
// (created, then kept), a file one without consumers is replaced, and QoS 1
// publishes still reach a binding's subscription and get their PUBACK.
func TestMemoryMQTTMessages(t *testing.T) {
	nc, _, mqttAddr := natsServer(t)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: MQTTMessagesStream, Subjects: []string{MQTTMessagesSubjects},
		Storage: nats.FileStorage, Retention: nats.InterestPolicy}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replaced", "kept"} {
		if did, err := MemoryMQTTMessages(nc); err != nil || did != want {
			t.Fatalf("MemoryMQTTMessages = %q, %v; want %q", did, err, want)
		}
	}
	if si, err := js.StreamInfo(MQTTMessagesStream); err != nil || si.Config.Storage != nats.MemoryStorage || si.Config.MaxBytes != MQTTMessagesMaxBytes {
		t.Fatalf("stream %+v, %v", si, err)
	}
	sub, err := nc.SubscribeSync("readings.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("mem-test"))
	if tk := cl.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	defer cl.Disconnect(100)
	for i := range 3 {
		tk := cl.Publish(fmt.Sprintf("readings/%d", i), 1, false, []byte{byte(i)})
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("publish %d: no PUBACK: %v", i, tk.Error())
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != fmt.Sprintf("readings.%d", i) {
			t.Fatalf("delivery %d: %v %v", i, m, err)
		}
	}
	if si, err := js.StreamInfo(MQTTMessagesStream); err != nil || si.Config.Storage != nats.MemoryStorage {
		t.Fatalf("after MQTT use: stream %+v, %v", si, err)
	}
}

// `[mqtt] durable_messages = true` is the operator's way to keep the MQTT
// message stream on file (the agent then skips MemoryMQTTMessages).
func TestMQTTDurableMessagesConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  string
		want bool
	}{
		{"[mqtt]\nlisten = \"127.0.0.1:1883\"\n", false},
		{"[mqtt]\nlisten = \"127.0.0.1:1883\"\ndurable_messages = true\n", true},
	} {
		dc, err := ParseDeviceConfig([]byte("device = \"bed-1\"\n"+tc.cfg), "device.toml")
		if err != nil {
			t.Fatal(err)
		}
		if dc.MQTT.DurableMessages != tc.want {
			t.Errorf("%q: DurableMessages %v, want %v", tc.cfg, dc.MQTT.DurableMessages, tc.want)
		}
	}
}
