package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/federation"
)

// hubMetrics are the hub's federation counters (fennec hub --metrics),
// fed by its round reports.
type hubMetrics struct {
	rounds   *prometheus.CounterVec
	updates  prometheus.Counter
	refused  prometheus.Counter
	rejected prometheus.Counter
	dropped  prometheus.Counter
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	version  prometheus.Gauge
	duration prometheus.Histogram
}

func newHubMetrics(reg prometheus.Registerer, mh *federation.HubPrivacy) *hubMetrics {
	m := &hubMetrics{
		rounds:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fennec_federation_rounds_total", Help: "Federation rounds by status (completed, failed)."}, []string{"status"}),
		updates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_updates_received_total", Help: "Device updates aggregated."}),
		refused:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_updates_refused_total", Help: "Late or invalid update messages."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_updates_rejected_total", Help: "Authenticated updates refused (not finite, wrong layout, malformed)."}),
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_stragglers_total", Help: "Sampled devices that sent no update in time."}),
		bytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_update_received_bytes_total", Help: "Update bytes received."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "fennec_federation_model_sent_bytes_total", Help: "Model bytes sent."}),
		version:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "fennec_federation_model_version", Help: "Global model version."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fennec_federation_round_duration_seconds", Help: "Round duration.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
	}
	reg.MustRegister(m.rounds, m.updates, m.refused, m.rejected, m.dropped, m.bytesIn, m.bytesOut, m.version, m.duration)
	if mh != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fennec_federation_privacy_epsilon",
			Help: "Privacy budget spent so far (epsilon at the mode's delta; 0 in modes without DP)."},
			func() float64 { return mh.Status().Epsilon }))
	}
	return m
}

func (m *hubMetrics) round(r federation.RoundReport) {
	m.rounds.WithLabelValues(r.Status).Inc()
	m.updates.Add(float64(r.Received))
	m.refused.Add(float64(r.Refused))
	m.rejected.Add(float64(len(r.Rejected)))
	m.dropped.Add(float64(len(r.Dropped)))
	m.bytesIn.Add(float64(r.BytesIn))
	m.bytesOut.Add(float64(r.BytesOut))
	m.version.Set(float64(r.Version))
	m.duration.Observe(r.Duration.Seconds())
}
