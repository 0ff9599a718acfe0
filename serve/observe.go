package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// ObserveServer serves /metrics, /healthz and /readyz for a process that
// has no bindings (the hub), with the same timeouts as a device's HTTP
// listener.
type ObserveServer struct {
	srv      *http.Server
	ln       net.Listener
	routines routines.Group
}

// StartObserve listens on addr and serves g's metrics, /healthz, and
// /readyz as ready reports (nil: ready while serving).
func StartObserve(ctx context.Context, addr string, g prometheus.Gatherer, ready func() (bool, []string), log *slog.Logger) (*ObserveServer, error) {
	log = config.Logger(log)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	if ready == nil {
		ready = func() (bool, []string) { return true, nil }
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", MetricsHandler(g))
	mux.HandleFunc("/healthz", Healthz)
	mux.Handle("/readyz", ReadyHandler(ready))
	o := &ObserveServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxHeaderBytes: 16 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	o.routines.Go(func() {
		if err := o.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics listener", "err", err)
		}
	})
	return o, nil
}

// Addr is the listener's address.
func (o *ObserveServer) Addr() string { return o.ln.Addr().String() }

// Shutdown stops the listener and waits for its requests (up to 5s).
func (o *ObserveServer) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o.srv.Shutdown(ctx)
	o.routines.CloseAndWait()
}
