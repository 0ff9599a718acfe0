package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fennec-edge/fennec/internal/vitals"
	"github.com/fennec-edge/fennec/serve"
)

// publishOpts are fennec vitals' --publish flags.
type publishOpts struct {
	url      string
	rate     float64
	count    int
	duration time.Duration
}

// parseMQTTURL splits mqtt://HOST:PORT/TOPIC into the broker address and the
// topic, refusing what an MQTT 3.1.1 publish cannot carry.
func parseMQTTURL(raw string) (broker, topic string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("--publish %q: %v", raw, err)
	}
	if u.Scheme != "mqtt" && u.Scheme != "tcp" {
		return "", "", fmt.Errorf("--publish %q: scheme must be mqtt:// (got %q)", raw, u.Scheme)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Hostname() == "" {
		return "", "", fmt.Errorf("--publish %q: want mqtt://HOST:PORT/TOPIC", raw)
	}
	topic = strings.TrimPrefix(u.Path, "/")
	if topic == "" {
		return "", "", fmt.Errorf("--publish %q: no topic (want mqtt://HOST:PORT/TOPIC)", raw)
	}
	if strings.ContainsAny(topic, "+#") {
		return "", "", fmt.Errorf("--publish %q: topic %q has a wildcard; a publish names one topic", raw, topic)
	}
	if _, err := serve.MQTTFilterToSubject(topic); err != nil {
		return "", "", fmt.Errorf("--publish %q: %v", raw, err)
	}
	return "tcp://" + u.Host, topic, nil
}

// readingJSON is one reading as the MQTT binding and vitals-preprocess take
// it: {"records": [{patient, t, hr, ..., o2, acvpu}]}. The label stays
// home: a monitor does not know the future.
func readingJSON(r *vitals.Record) ([]byte, error) {
	m := r.Map()
	delete(m, "label")
	return json.Marshal(map[string]any{"records": []any{m}})
}

// publishVitals publishes recs one per message at QoS 1, paced at o.rate
// per second, until o.count messages, o.duration or ctx ends.
func publishVitals(ctx context.Context, o publishOpts, recs []vitals.Record, log io.Writer) error {
	broker, topic, err := parseMQTTURL(o.url)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if o.rate < 0 || o.count < 0 || o.duration < 0 {
		return &exitError{exitUsage, errors.New("--rate, --count and --duration must not be negative")}
	}
	if len(recs) == 0 {
		return &exitError{exitUsage, errors.New("no readings to publish")}
	}
	opts := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("fennec-vitals-%d", time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		err := tok.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return fmt.Errorf("connect to %s: %v", broker, err)
	}
	defer cl.Disconnect(250)
	var tick <-chan time.Time
	if o.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer t.Stop()
		tick = t.C
	}
	var end <-chan time.Time
	if o.duration > 0 {
		tm := time.NewTimer(o.duration)
		defer tm.Stop()
		end = tm.C
	}
	t0 := time.Now()
	sent := 0
	pending := make([]mqtt.Token, 0, 256)
	wait := func() error {
		for _, tok := range pending {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				err := tok.Error()
				if err == nil {
					err = errors.New("no PUBACK in 30s")
				}
				return fmt.Errorf("publish to %s: %v", topic, err)
			}
		}
		pending = pending[:0]
		return nil
	}
loop:
	for o.count == 0 || sent < o.count {
		if tick != nil {
			select {
			case <-ctx.Done():
				break loop
			case <-end:
				break loop
			case <-tick:
			}
		} else {
			select {
			case <-ctx.Done():
				break loop
			case <-end:
				break loop
			default:
			}
		}
		b, err := readingJSON(&recs[sent%len(recs)])
		if err != nil {
			return err
		}
		pending = append(pending, cl.Publish(topic, 1, false, b))
		sent++
		if len(pending) == cap(pending) {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	if err := wait(); err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	fmt.Fprintf(log, "published %d readings to %s on %s in %.2fs (%.0f/s, QoS 1)\n", sent, topic, broker, el, float64(sent)/el)
	return nil
}
