// Command loadgen offers load to a device's NATS and MQTT bindings from a
// second process, for scripts/serve-load-mq.sh (issue #12's load figures:
// throughput and p50/p99 at 50, 80 and 200 % of saturation).
//
//	go run ./internal/loadgen -mode nats -url nats://127.0.0.1:4223 -subject score.1 -body req.cbor -rate 500 -duration 15s
//	go run ./internal/loadgen -mode mqtt -mqtt tcp://127.0.0.1:1883 -topic vitals/bed/7 -url nats://127.0.0.1:4223 -results 'alerts.>' -body reading.json -conc 8 -duration 15s
//
// Two ways to offer load: closed loop (-conc C, -rate 0: C callers, each
// sends its next message when the last one is answered; this finds
// saturation) and open loop (-rate R: messages leave at evenly spaced
// times, whatever the answers do, so overload shows as shed and late
// answers rather than as a slower client). Latency is measured from the
// time a message was due to leave, not from when it left, so a client
// that falls behind does not hide the delay (coordinated omission).
//
// nats: request-reply on -subject with -body as the payload; an answer
// with the Nats-Service-Error-Code header counts under that code (429 is
// shed), no answer within -timeout as a timeout.
//
// mqtt: publishes -body to -topic on the MQTT listener (-qos, 1 by
// default as fennec vitals --publish does), after replacing every "{seq}"
// in both with the message's sequence number (a topic per message is a bed
// per message: a binding that carries state per subject then keeps one
// patient's history per bed, as a ward does), and matches results on the NATS subject
// -results (the binding's publish subject) by that number: a result
// counts for message N when its payload (JSON) contains the string "L<N>",
// e.g. in the patient ids the pipeline echoes. A message with no result
// within -timeout is missing (shed silently by the binding, or lost).
//
// It prints one line: offered and answered rates, counts by outcome, and
// p50/p99/max of the answered messages in milliseconds.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
)

type config struct {
	mode     string
	url      string
	subject  string
	mqttURL  string
	topic    string
	results  string
	body     []byte
	rate     float64
	conc     int
	duration time.Duration
	timeout  time.Duration
	label    string
	qos      int
}

func main() {
	var c config
	var bodyPath string
	flag.StringVar(&c.mode, "mode", "nats", "nats (request-reply) or mqtt (publish, results on a NATS subject)")
	flag.StringVar(&c.url, "url", "nats://127.0.0.1:4222", "the device's NATS server")
	flag.StringVar(&c.subject, "subject", "", "nats: the binding's subject")
	flag.StringVar(&c.mqttURL, "mqtt", "tcp://127.0.0.1:1883", "mqtt: the device's MQTT listener")
	flag.StringVar(&c.topic, "topic", "", "mqtt: the topic to publish to")
	flag.StringVar(&c.results, "results", "", "mqtt: the NATS subject the binding publishes results on (wildcards allowed)")
	flag.StringVar(&bodyPath, "body", "", "the payload file")
	flag.Float64Var(&c.rate, "rate", 0, "open loop: messages per second (0: closed loop with -conc callers)")
	flag.IntVar(&c.conc, "conc", 8, "closed loop: callers")
	flag.DurationVar(&c.duration, "duration", 15*time.Second, "how long to offer load")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "an answer later than this is a timeout (nats) or missing (mqtt)")
	flag.StringVar(&c.label, "label", "", "printed first on the result line")
	flag.IntVar(&c.qos, "qos", 1, "mqtt: the publishes' QoS, 0 or 1 (fennec vitals --publish uses 1)")
	flag.Parse()
	if bodyPath == "" {
		fail(errors.New("-body is required"))
	}
	b, err := os.ReadFile(bodyPath)
	if err != nil {
		fail(err)
	}
	c.body = b
	var r *result
	switch c.mode {
	case "nats":
		r, err = runNATS(c)
	case "mqtt":
		r, err = runMQTT(c)
	default:
		err = fmt.Errorf("-mode %q is not nats or mqtt", c.mode)
	}
	if err != nil {
		fail(err)
	}
	fmt.Println(r.line(c.label))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(2)
}

// result collects outcomes; latencies are of answered (ok) messages.
type result struct {
	mu       sync.Mutex
	sent     int
	ok       []time.Duration
	outcomes map[string]int
	elapsed  time.Duration
}

func newResult() *result { return &result{outcomes: map[string]int{}} }

func (r *result) add(outcome string, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[outcome]++
	if outcome == "ok" {
		r.ok = append(r.ok, lat)
	}
}

// percentile of sorted durations, nearest rank.
func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (r *result) line(label string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.ok)
	ms := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 1, 64) }
	secs := r.elapsed.Seconds()
	keys := make([]string, 0, len(r.outcomes))
	for k := range r.outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var oc bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&oc, " %s:%d", k, r.outcomes[k])
	}
	return fmt.Sprintf("%s sent %d (%.0f/s) answered %.0f/s p50 %s ms p99 %s ms max %s ms outcomes%s",
		label, r.sent, float64(r.sent)/secs, float64(len(r.ok))/secs,
		ms(percentile(r.ok, 0.5)), ms(percentile(r.ok, 0.99)), ms(percentile(r.ok, 1)), oc.String())
}

// offer calls send(seq, due) for each message: open loop at c.rate, or
// closed loop with c.conc callers (send must then block until answered).
// It returns when the duration is over and every send has returned.
func offer(c config, r *result, send func(seq int, due time.Time)) {
	start := time.Now()
	end := start.Add(c.duration)
	var wg sync.WaitGroup
	var seq atomic.Int64
	if c.rate <= 0 {
		for range max(c.conc, 1) {
			wg.Go(func() {
				for time.Now().Before(end) {
					send(int(seq.Add(1)), time.Now())
				}
			})
		}
	} else {
		interval := time.Duration(float64(time.Second) / c.rate)
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * interval)
			if !due.Before(end) {
				break
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			n := int(seq.Add(1))
			wg.Go(func() { send(n, due) })
		}
	}
	wg.Wait()
	r.mu.Lock()
	r.sent = int(seq.Load())
	r.elapsed = c.duration
	r.mu.Unlock()
}

func runNATS(c config) (*result, error) {
	if c.subject == "" {
		return nil, errors.New("-subject is required with -mode nats")
	}
	nc, err := nats.Connect(c.url, nats.Name("loadgen"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	r := newResult()
	offer(c, r, func(_ int, due time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		m, err := nc.RequestWithContext(ctx, c.subject, c.body)
		lat := time.Since(due)
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			r.add("timeout", 0)
		case errors.Is(err, nats.ErrNoResponders):
			r.add("no-responders", 0)
		case err != nil:
			r.add("error", 0)
		case m.Header.Get("Nats-Service-Error-Code") != "":
			r.add(m.Header.Get("Nats-Service-Error-Code"), 0)
		default:
			r.add("ok", lat)
		}
	})
	return r, nil
}

var seqRE = regexp.MustCompile(`"L([0-9]+)"`)

func runMQTT(c config) (*result, error) {
	if c.topic == "" || c.results == "" {
		return nil, errors.New("-topic and -results are required with -mode mqtt")
	}
	if c.qos != 0 && c.qos != 1 {
		return nil, fmt.Errorf("-qos %d is not 0 or 1", c.qos)
	}
	if !bytes.Contains(c.body, []byte("{seq}")) {
		return nil, errors.New(`-body must contain "{seq}" (e.g. in a patient id "L{seq}") so results can be matched`)
	}
	nc, err := nats.Connect(c.url, nats.Name("loadgen-results"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var mu sync.Mutex
	waiting := map[int]chan struct{}{}
	due := map[int]time.Time{}
	r := newResult()
	sub, err := nc.Subscribe(c.results, func(m *nats.Msg) {
		now := time.Now()
		for _, g := range seqRE.FindAllSubmatch(m.Data, -1) {
			n, err := strconv.Atoi(string(g[1]))
			if err != nil {
				continue
			}
			mu.Lock()
			ch, ok := waiting[n]
			d := due[n]
			delete(waiting, n)
			delete(due, n)
			mu.Unlock()
			if ok {
				r.add("ok", now.Sub(d))
				close(ch)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(1<<20, 1<<30)
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	opts := mqtt.NewClientOptions().AddBroker(c.mqttURL).SetClientID(fmt.Sprintf("loadgen-%d", os.Getpid())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(false)
	cl := mqtt.NewClient(opts)
	if t := cl.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("mqtt connect %s: %v", c.mqttURL, t.Error())
	}
	defer cl.Disconnect(250)
	var pubMu sync.Mutex // one writer on the connection, in due order
	offer(c, r, func(n int, at time.Time) {
		ch := make(chan struct{})
		mu.Lock()
		waiting[n], due[n] = ch, at
		mu.Unlock()
		payload := bytes.ReplaceAll(c.body, []byte("{seq}"), []byte(strconv.Itoa(n)))
		topic := strings.ReplaceAll(c.topic, "{seq}", strconv.Itoa(n))
		pubMu.Lock()
		t := cl.Publish(topic, byte(c.qos), false, payload)
		pubMu.Unlock()
		t.Wait()
		if t.Error() != nil {
			mu.Lock()
			delete(waiting, n)
			delete(due, n)
			mu.Unlock()
			r.add("publish-error", 0)
			return
		}
		select {
		case <-ch:
		case <-time.After(c.timeout):
			mu.Lock()
			_, still := waiting[n]
			delete(waiting, n)
			delete(due, n)
			mu.Unlock()
			if still {
				r.add("missing", 0)
			} else {
				<-ch // answered just now
			}
		}
	})
	return r, nil
}
