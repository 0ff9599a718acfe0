package main

import (
	"strings"
	"testing"
)

func TestParseMQTTURL(t *testing.T) {
	for _, tc := range []struct{ in, broker, topic, err string }{
		{"mqtt://127.0.0.1:1883/vitals/bed/3", "tcp://127.0.0.1:1883", "vitals/bed/3", ""},
		{"http://127.0.0.1:1883/v", "", "", "scheme must be mqtt://"},
		{"mqtt://127.0.0.1/v", "", "", "want mqtt://HOST:PORT/TOPIC"},
		{"mqtt://127.0.0.1:1883", "", "", "no topic"},
		{"mqtt://127.0.0.1:1883/vitals/+/3", "", "", "wildcard"},
		{"mqtt://127.0.0.1:1883/a.b", "", "", "'.'"},
		{"mqtt://%zz", "", "", "invalid URL escape"},
	} {
		b, tp, err := parseMQTTURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || b != tc.broker || tp != tc.topic {
			t.Errorf("%s: %q %q %v", tc.in, b, tp, err)
		}
	}
}

func TestVitalsPublishBadURL(t *testing.T) {
	out, code := runFennec(t, t.TempDir(), "vitals", "--patients", "1", "--hours", "1", "--publish", "mqtt://localhost/x")
	if code != exitUsage || !strings.Contains(out, "want mqtt://HOST:PORT/TOPIC") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestAlertsUsage(t *testing.T) {
	out, code := runFennec(t, t.TempDir(), "alerts")
	if code != exitUsage || !strings.Contains(out, "alerts needs --follow") {
		t.Fatalf("%d %q", code, out)
	}
	if got := string(alertJSON([]byte{0xa1, 0x61, 0x61, 0x01})); got != `{"a":1}` {
		t.Fatalf("cbor payload as %s", got)
	}
	if got := string(alertJSON([]byte{0xff, 0x00})); !strings.Contains(got, "neither JSON nor CBOR") {
		t.Fatalf("garbage payload as %s", got)
	}
}
