package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Config configures a Server. Device is required; Conn is required when a
// binding has source nats or mqtt.
type Config struct {
	Device *DeviceConfig
	// Modules are the modules bindings may name, by name.
	Modules map[string]Module
	// Conn is the NATS connection of nats and mqtt bindings (to the
	// device's own server, whose MQTT listener maps topics to subjects).
	Conn *nats.Conn
	// Registerer receives the serving metrics; nil makes a registry of the
	// server's own (NewRegistry). Gatherer serves /metrics; nil uses
	// Registerer when it is a Gatherer (a *prometheus.Registry).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Listener, when set, is used instead of listening on
	// Device.HTTP.Listen.
	Listener net.Listener
	Logger   *slog.Logger
	// Dir resolves the relative paths of inject files (binding.then); ""
	// means the working directory. The agent passes the device
	// configuration file's directory.
	Dir string
	// AfterTrim, when set, runs after the server closed the warm instances
	// of modules that idled past their IdleTimeout (Compiled.IdleTimeout).
	// The agent passes debug.FreeOSMemory, so that what the instances held
	// goes back to the system at once rather than at the runtime's pace.
	AfterTrim func()
}

// Server serves a device's bindings, with the lifecycle of every fennec
// server: New validates, Start starts, Ready reports readiness, Shutdown
// stops taking requests, drains the calls in flight and waits.
type Server struct {
	cfg  Config
	dev  *DeviceConfig
	log  *slog.Logger
	mods map[string]Module
	m    *metrics

	bindings []*binding
	routes   map[string]*binding // "module/entry" of http bindings
	modules  map[string]bool     // modules with an http binding

	mu       sync.Mutex
	started  bool
	httpSrv  *http.Server
	ln       net.Listener
	subs     []*nats.Subscription
	ready    chan struct{}
	stop     chan struct{} // closed by Shutdown: ends the idle trimmer
	stopping atomic.Bool
	routines routines.Group
}

// binding is a configured binding with its limiter.
type binding struct {
	BindingConfig
	mod   Module
	steps []*step  // Then, resolved
	carry *carrier // Carry (nil without)
	lim   *limiter
}

// New validates cfg and returns a server that is not started yet.
func New(cfg Config) (*Server, error) {
	if cfg.Device == nil {
		return nil, errors.New("serve: Config.Device is required")
	}
	if err := cfg.Device.validate(nil); err != nil {
		return nil, err
	}
	if cfg.Registerer == nil {
		reg := NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer, _ = cfg.Registerer.(prometheus.Gatherer)
	}
	s := &Server{cfg: cfg, dev: cfg.Device, log: config.Logger(cfg.Logger), mods: cfg.Modules,
		routes: map[string]*binding{}, modules: map[string]bool{}, ready: make(chan struct{}), stop: make(chan struct{})}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	s.m = m
	if err := cfg.Registerer.Register(newPoolCollector(s)); err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	for i, bc := range cfg.Device.Bindings {
		mod, ok := cfg.Modules[bc.Module]
		if !ok {
			return nil, fmt.Errorf("%s: binding[%d] (%s): module %q is not loaded (not in [[module]] nor run by the deployer)", s.source(), i, bc.Name, bc.Module)
		}
		if bc.Source != SourceHTTP && cfg.Conn == nil {
			return nil, fmt.Errorf("%s: binding[%d] (%s): a %s binding needs a NATS connection", s.source(), i, bc.Name, bc.Source)
		}
		steps, err := newSteps(bc, i, cfg.Modules, cfg.Dir, s.log, s.source())
		if err != nil {
			return nil, err
		}
		b := &binding{BindingConfig: bc, mod: mod, steps: steps, carry: newCarrier(bc.Carry, s.log), lim: newLimiter(bc.Concurrency, bc.Queue, bc.QueueTimeout.Duration, bc.StandingQueue.Duration,
			m.queued.WithLabelValues(bc.Name), m.inFlight.WithLabelValues(bc.Name))}
		s.bindings = append(s.bindings, b)
		if bc.Source == SourceHTTP {
			s.routes[bc.Module+"/"+bc.Entry] = b
			s.modules[bc.Module] = true
		}
	}
	return s, nil
}

func (s *Server) source() string {
	if s.dev.source != "" {
		return s.dev.source
	}
	return "device config"
}

// Start listens on the HTTP address (if any) and subscribes the NATS and
// MQTT bindings. A server starts once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("serve: server already started")
	}
	s.started = true
	tlsc, err := s.dev.ServerTLS()
	if err != nil {
		return fmt.Errorf("serve: http: %w", err)
	}
	ln := s.cfg.Listener
	if ln == nil && s.dev.HTTP.Listen != "" {
		var lc net.ListenConfig
		var err error
		if ln, err = lc.Listen(ctx, "tcp", s.dev.HTTP.Listen); err != nil {
			return fmt.Errorf("serve: http: %w", err)
		}
	}
	for _, b := range s.bindings {
		if b.Source == SourceHTTP {
			continue
		}
		b := b
		cb := func(msg *nats.Msg) { s.onMsg(b, msg) }
		var sub *nats.Subscription
		var err error
		if b.QueueGroup != "" {
			sub, err = s.cfg.Conn.QueueSubscribe(b.subject, b.QueueGroup, cb)
		} else {
			sub, err = s.cfg.Conn.Subscribe(b.subject, cb)
		}
		if err == nil {
			// The client's pending buffer holds messages not yet admitted
			// or shed: bounded (1024 messages or 8x what the binding
			// admits, 64 MiB), so a flood past it is dropped, logged by
			// the client and counted (fennec_binding_dropped_total)
			// rather than held. It is larger than the binding's queue
			// because the delivery goroutine that admits or sheds can
			// be kept off the CPU for a while on a saturated device, and
			// a message it reaches late still gets its 429 at once,
			// where a dropped one gets no reply at all.
			err = sub.SetPendingLimits(max(1024, 8*(b.Concurrency+b.Queue)), 64<<20)
		}
		if err != nil {
			s.unsubscribe()
			if ln != nil && s.cfg.Listener == nil {
				ln.Close()
			}
			return fmt.Errorf("serve: binding %s: subscribe %s: %w", b.Name, b.subject, err)
		}
		s.subs = append(s.subs, sub)
		s.m.dropped.set(b.Name, sub)
	}
	if s.cfg.Conn != nil && len(s.subs) > 0 {
		if err := s.cfg.Conn.FlushTimeout(10 * time.Second); err != nil {
			s.unsubscribe()
			return fmt.Errorf("serve: nats: %w", err)
		}
	}
	if ln != nil {
		if tlsc != nil {
			ln = tls.NewListener(ln, tlsc)
		}
		h := s.dev.HTTP
		s.ln = ln
		s.httpSrv = &http.Server{Handler: s.Handler(),
			ReadHeaderTimeout: h.ReadHeaderTimeout.Duration, ReadTimeout: h.ReadTimeout.Duration,
			WriteTimeout: h.WriteTimeout.Duration, IdleTimeout: h.IdleTimeout.Duration,
			MaxHeaderBytes: 16 << 10,
			ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
		srv := s.httpSrv
		s.routines.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("serve: http", "err", err)
			}
		})
	}
	s.startTrimmer()
	close(s.ready)
	s.log.Info("serving", "device", s.dev.Device, "bindings", len(s.bindings), "http", s.Addr())
	return nil
}

// idleTrimmer is a module whose warm instances the server closes when it
// idles (Compiled).
type idleTrimmer interface {
	idleTimeout() time.Duration
	trimIdle(now time.Time) bool
}

// startTrimmer checks, a few times per the shortest IdleTimeout (at most
// every 5 s), for modules that idled past theirs, closes their warm
// instances and then runs Config.AfterTrim.
func (s *Server) startTrimmer() {
	var mods []idleTrimmer
	period := 5 * time.Second
	for _, m := range s.mods {
		if t, ok := m.(idleTrimmer); ok && t.idleTimeout() > 0 {
			mods = append(mods, t)
			period = min(period, max(t.idleTimeout()/4, 10*time.Millisecond))
		}
	}
	if len(mods) == 0 {
		return
	}
	s.routines.Go(func() {
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-tk.C:
				trimmed := false
				for _, m := range mods {
					trimmed = m.trimIdle(now) || trimmed
				}
				if trimmed && s.cfg.AfterTrim != nil {
					s.cfg.AfterTrim()
				}
			}
		}
	})
}

// Ready reports whether Start has finished, waiting up to timeout.
func (s *Server) Ready(timeout time.Duration) bool {
	select {
	case <-s.ready:
		return true
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return true
	case <-t.C:
		return false
	}
}

// Addr is the HTTP listener's address, "" without one.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

func (s *Server) unsubscribe() {
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	s.subs = nil
}

// Shutdown stops taking requests (unsubscribes, closes the listener),
// waits for the calls in flight until ctx ends, then returns. Requests
// still queued are shed with reason "shutdown".
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stopping.Swap(true) {
		close(s.stop)
	}
	s.mu.Lock()
	s.unsubscribe()
	srv := s.httpSrv
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.routines.CloseAndWait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Handler serves the bindings' HTTP routes, /metrics, /healthz and
// /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/modules/", http.HandlerFunc(s.serveCall))
	if s.cfg.Gatherer != nil {
		mux.Handle("/metrics", MetricsHandler(s.cfg.Gatherer))
	}
	mux.HandleFunc("/healthz", Healthz)
	mux.Handle("/readyz", ReadyHandler(s.Readiness))
	return mux
}

// Readiness reports whether every module is ready, with the reasons of those
// that are not (fennec_module_ready asks the modules itself, at scrape time).
func (s *Server) Readiness() (bool, []string) {
	ok := true
	var why []string
	for name, m := range s.mods {
		if r, reason := m.Ready(); !r {
			ok = false
			why = append(why, name+": "+reason)
		}
	}
	if s.stopping.Load() {
		ok = false
		why = append(why, "shutting down")
	}
	return ok, why
}

// Healthz answers 200: the process is alive and serving HTTP.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// ReadyHandler answers 200 when ready reports true, else 503 with the
// reasons, one a line.
func ReadyHandler(ready func() (bool, []string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n"+strings.Join(why, "\n")+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// call runs one request through the binding's limiter and the module,
// counting it. shed is the reason a request was not run, or "".
func (s *Server) call(ctx context.Context, b *binding, in []byte) (out []byte, shed string, err error) {
	if shed := b.lim.tryAdmit(); shed != "" {
		return nil, s.shed(b, shed), nil
	}
	return s.callAdmitted(ctx, b, in, time.Now())
}

// callAdmitted is call for a request that already holds an admission slot
// (tryAdmit): the slot is given back on every path. arrived is when the
// request arrived (fennec_binding_admission_wait_seconds).
func (s *Server) callAdmitted(ctx context.Context, b *binding, in []byte, arrived time.Time) (out []byte, shed string, err error) {
	if s.stopping.Load() {
		b.lim.leave()
		return nil, s.shed(b, ShedShutdown), nil
	}
	if shed := b.lim.waitAdmitted(ctx, true); shed != "" {
		return nil, s.shed(b, shed), nil
	}
	s.m.admission.WithLabelValues(b.Name).Observe(time.Since(arrived).Seconds())
	out, err = s.runAdmitted(ctx, b, "", in)
	return out, "", err
}

// runAdmitted calls the module, then the pipeline's further steps, for a
// request that holds a run slot, and gives the slot back. subject keys
// the carried state (nats and mqtt).
func (s *Server) runAdmitted(ctx context.Context, b *binding, subject string, in []byte) ([]byte, error) {
	defer b.lim.done()
	if b.lim.overloaded() {
		// Under a standing queue the call yields the core once before it
		// starts: the goroutines that accept, read and shed requests (or
		// deliver NATS messages) run first, so that the excess is read
		// and answered with 429 rather than left waiting unread before
		// the binding while the calls hold the CPU (Go has no goroutine
		// priorities; BENCHMARKS.md #12, RATIONALE "Why does a call
		// yield under overload").
		runtime.Gosched()
	}
	if b.carry != nil {
		var err error
		if in, err = b.carry.input(subject, in); err != nil {
			s.m.calls.WithLabelValues(b.Module, b.Entry, OutcomeError).Inc()
			return nil, fmt.Errorf("binding %s: %w", b.Name, err)
		}
	}
	out, err := s.callModule(ctx, b, b.mod, b.Module, b.Entry, in)
	if err == nil && b.carry != nil {
		b.carry.output(subject, out)
	}
	for j, st := range b.steps {
		if err != nil {
			return nil, err
		}
		var sin []byte
		if sin, err = stepInput(st, out); err != nil {
			s.m.calls.WithLabelValues(st.Module, st.Entry, OutcomeError).Inc()
			err = fmt.Errorf("binding %s: then[%d] (%s %s): %w", b.Name, j, st.Module, st.Entry, err)
			s.log.Warn("call failed", "binding", b.Name, "module", st.Module, "entry", st.Entry, "outcome", OutcomeError, "err", err)
			return nil, err
		}
		out, err = s.callModule(ctx, b, st.mod, st.Module, st.Entry, sin)
	}
	return out, err
}

// callModule makes one call of a binding's pipeline, counting it under
// the module and entry it calls.
func (s *Server) callModule(ctx context.Context, b *binding, mod Module, name, entry string, in []byte) ([]byte, error) {
	t0 := time.Now()
	out, err := mod.Call(ctx, entry, in)
	d := time.Since(t0)
	oc := outcome(err)
	s.m.calls.WithLabelValues(name, entry, oc).Inc()
	s.m.duration.WithLabelValues(name, entry).Observe(d.Seconds())
	switch oc {
	case OutcomeTrap:
		s.m.traps.WithLabelValues(name).Inc()
	case OutcomeDeadline:
		s.m.deadlines.WithLabelValues(name).Inc()
	}
	if err != nil {
		s.log.Warn("call failed", "binding", b.Name, "module", name, "entry", entry, "outcome", oc, "err", err)
	}
	return out, err
}

// shed counts and logs a shed request (at most one log line a second per
// binding and reason) and returns reason.
func (s *Server) shed(b *binding, reason string) string {
	s.m.shed.WithLabelValues(b.Name, reason).Inc()
	if b.lim.logShed(reason) {
		s.log.Warn("request shed", "binding", b.Name, "module", b.Module, "entry", b.Entry, "reason", reason,
			"concurrency", b.Concurrency, "queue", b.Queue)
	}
	return reason
}

func (s *Server) reject(binding, reason string) {
	s.m.rejected.WithLabelValues(binding, reason).Inc()
}
