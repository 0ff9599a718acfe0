package serve

import (
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Call outcomes, the outcome label of fennec_module_calls_total.
const (
	OutcomeOK          = "ok"
	OutcomeGuestError  = "guest_error" // the entrypoint returned an error status
	OutcomeTrap        = "trap"
	OutcomeDeadline    = "deadline"
	OutcomeUnavailable = "unavailable" // module not loaded, closed or unhealthy
	OutcomeNoEntry     = "no_entrypoint"
	OutcomeError       = "error" // anything else (output not representable, ...)
)

// Shed and rejection reasons, the reason label of fennec_binding_shed_total
// and fennec_binding_rejected_total.
const (
	ShedQueueFull    = "queue_full"    // concurrency and queue are full
	ShedQueueTimeout = "queue_timeout" // waited QueueTimeout for a slot
	ShedOverload     = "overload"      // the queue has stood StandingQueue: only Concurrency may wait
	ShedShutdown     = "shutdown"      // the server is stopping
	ShedUnavailable  = "unavailable"   // the module is not ready

	RejectTooLarge    = "too_large"
	RejectContentType = "content_type"
	RejectMalformed   = "malformed"
	RejectNotFound    = "not_found"
	RejectMethod      = "method"
)

// metrics are the serving layer's collectors.
type metrics struct {
	calls     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	traps     *prometheus.CounterVec
	deadlines *prometheus.CounterVec
	shed      *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	queued    *prometheus.GaugeVec
	inFlight  *prometheus.GaugeVec
	published *prometheus.CounterVec
	admission *prometheus.HistogramVec
	dropped   *droppedCollector
}

// droppedCollector reports, per NATS or MQTT binding, the messages its
// subscription dropped before the binding saw them: the NATS client's
// pending buffer (bounded in Start to what the binding would admit) was
// full, which happens when the delivery goroutine that admits or sheds
// falls behind a flood (a 2-core device at twice its capacity). Those
// messages get no reply, so a requester sees a timeout rather than a 429;
// the count is read from the subscription (nats.Subscription.Dropped) at
// each scrape, so it is exact whenever it is read.
type droppedCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	subs map[string]*nats.Subscription // binding -> its subscription
}

func (d *droppedCollector) set(binding string, sub *nats.Subscription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subs[binding] = sub
}

func (d *droppedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *droppedCollector) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, sub := range d.subs {
		n, err := sub.Dropped()
		if err != nil { // unsubscribed: its count is gone with it
			continue
		}
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(n), name)
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_module_calls_total", Help: "Module entrypoint calls by outcome.",
		}, []string{"module", "entry", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fennec_module_call_duration_seconds",
			Help:    "Time in Module.Call, queue wait excluded.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10},
		}, []string{"module", "entry"}),
		traps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_module_traps_total", Help: "Calls that trapped (the instance is discarded).",
		}, []string{"module"}),
		deadlines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_module_deadline_overruns_total", Help: "Calls stopped at the manifest's deadline.",
		}, []string{"module"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_binding_shed_total", Help: "Requests shed by a binding before reaching the module.",
		}, []string{"binding", "reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_binding_rejected_total", Help: "Requests refused as bad input (too large, wrong content type, malformed, unknown module or entry).",
		}, []string{"binding", "reason"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fennec_binding_queue_depth", Help: "Requests waiting for a binding's concurrency slot.",
		}, []string{"binding"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fennec_binding_in_flight", Help: "Calls a binding is running.",
		}, []string{"binding"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fennec_binding_published_total", Help: "Results published or replied by NATS and MQTT bindings.",
		}, []string{"binding"}),
		dropped: &droppedCollector{
			desc: prometheus.NewDesc("fennec_binding_dropped_total",
				"Messages a NATS or MQTT binding's subscription dropped before admission (its pending buffer was full): no reply was sent.",
				[]string{"binding"}, nil),
			subs: map[string]*nats.Subscription{},
		},
		admission: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fennec_binding_admission_wait_seconds",
			Help:    "Time from a request's arrival (HTTP: the handler's start; NATS and MQTT: the message's delivery) to its run slot: reading and decoding the body, then the queue. Accepted requests only.",
			Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5},
		}, []string{"binding"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.traps, m.deadlines, m.shed, m.rejected, m.queued, m.inFlight, m.published, m.admission, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, for a process (agent, hub) to share among its components.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves g's metrics in the Prometheus exposition format
// (for /metrics).
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// poolCollector reports each module's readiness, asked at scrape time (a
// scrape must not depend on someone having called /readyz first), and the
// warm pool of each module that has one.
type poolCollector struct {
	s     *Server
	ready *prometheus.Desc
	idle  *prometheus.Desc
	calls *prometheus.Desc
	inst  *prometheus.Desc
}

func newPoolCollector(s *Server) *poolCollector {
	return &poolCollector{s: s,
		ready: prometheus.NewDesc("fennec_module_ready", "1 when the module is loaded and passed its health check.", []string{"module"}, nil),
		idle:  prometheus.NewDesc("fennec_module_pool_idle_instances", "Warm instances waiting in the module's pool.", []string{"module"}, nil),
		calls: prometheus.NewDesc("fennec_module_runtime_calls_total", "Calls the runtime made on the module, from any caller.", []string{"module"}, nil),
		inst:  prometheus.NewDesc("fennec_module_instantiations_total", "Instances the module's pool created.", []string{"module"}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.idle
	ch <- c.calls
	ch <- c.inst
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, m := range c.s.mods {
		v := 0.0
		if r, _ := m.Ready(); r {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, v, name)
		sm, ok := m.(interface{ Stats() (Stats, bool) })
		if !ok {
			continue
		}
		st, ok := sm.Stats()
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.Idle), name)
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(st.Calls), name)
		ch <- prometheus.MustNewConstMetric(c.inst, prometheus.CounterValue, float64(st.Instantiations), name)
	}
}
