package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/serve"
)

// TestHubMetrics feeds round reports to the hub's counters and scrapes
// them as a Prometheus server would.
func TestHubMetrics(t *testing.T) {
	reg := serve.NewRegistry()
	hm := newHubMetrics(reg, nil)
	hm.round(federation.RoundReport{Round: 1, Version: 1, Status: "completed", Received: 3, Refused: 1, Dropped: []string{"d4"}, BytesIn: 900, BytesOut: 1200, Duration: time.Second})
	hm.round(federation.RoundReport{Round: 2, Version: 1, Status: "failed"})
	obs, err := serve.StartObserve(t.Context(), "127.0.0.1:0", reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Shutdown()
	resp, err := http.Get("http://" + obs.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`fennec_federation_rounds_total{status="completed"} 1`,
		`fennec_federation_rounds_total{status="failed"} 1`,
		"fennec_federation_updates_received_total 3",
		"fennec_federation_updates_refused_total 1",
		"fennec_federation_stragglers_total 1",
		"fennec_federation_update_received_bytes_total 900",
		"fennec_federation_model_sent_bytes_total 1200",
		"fennec_federation_model_version 1",
		"go_goroutines",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
}
