package leaf

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the outbox's Stats, read when scraped (no goroutine
// of its own).
type collector struct {
	n                                             *Node
	msgs, bytes, pending, oldest, lost, connected *prometheus.Desc
}

func newCollector(n *Node) *collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("fennec_leaf_"+name, help, nil, nil)
	}
	return &collector{n: n,
		msgs:      d("outbox_messages", "Messages held in the device's outbox (delivered ones too, until the limits drop them)."),
		bytes:     d("outbox_bytes", "Bytes held in the device's outbox."),
		pending:   d("outbox_pending_messages", "Outbox messages the hub has not yet taken (buffered while it is unreachable); 0 means sent to the hub, which may not have stored them yet."),
		oldest:    d("outbox_oldest_pending_age_seconds", "Age of the oldest outbox message not yet sent to the hub (0 when none)."),
		lost:      d("outbox_lost_total", "Outbox messages dropped by the outbox's limits before the hub took them."),
		connected: d("hub_connected", "1 while the leaf connection to the hub is up."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.msgs, c.bytes, c.pending, c.oldest, c.lost, c.connected} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	conn := 0.0
	if c.n.Connected() {
		conn = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.n.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.msgs, err)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = time.Since(st.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.Lost))
}
