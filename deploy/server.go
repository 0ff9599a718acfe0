package deploy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/fennec-edge/fennec/internal/natsembed"
)

// ServerConfig configures an embedded NATS server with JetStream for
// rollouts, for a fleet without a hub of its own or for tests. The
// federation hub serves rollouts itself when given an Access
// (federation.HubConfig.Access, `fennec hub --access`).
type ServerConfig struct {
	// Dir holds JetStream's files (required).
	Dir string
	// Listen is the client address, "127.0.0.1:4222" by default; port 0
	// picks a free port; "-" accepts in-process connections only.
	Listen string
	// Access lists the devices and operators that may connect (required).
	Access *Access
	// TLS, when set, makes the listener TLS only (mutual TLS with
	// ClientAuth = RequireAndVerifyClientCert).
	TLS *tls.Config
	// AllowPlaintext lets the server listen without TLS on an address
	// other than loopback; without it that is refused.
	AllowPlaintext bool
}

// Server is an embedded NATS server for rollouts, with the lifecycle of
// every fennec server: NewServer validates, Start starts, Ready reports
// readiness, Shutdown stops and waits.
type Server struct {
	cfg ServerConfig

	mu    sync.Mutex
	ns    *server.Server
	ready chan struct{}
	done  bool
}

// NewServer validates cfg and returns a server that is not started yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("deploy: ServerConfig.Dir is required")
	case cfg.Access == nil:
		return nil, errors.New("deploy: ServerConfig.Access is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	if cfg.TLS == nil && !cfg.AllowPlaintext && !natsembed.Loopback(cfg.Listen) {
		return nil, fmt.Errorf("deploy: ServerConfig.Listen %s is reachable from the network and would carry rollouts and status in plaintext: set TLS (--tls-cert, --tls-key) or AllowPlaintext (--allow-plaintext)", cfg.Listen)
	}
	return &Server{cfg: cfg, ready: make(chan struct{})}, nil
}

// StartServer is NewServer followed by Start.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts the server with per-device permissions and creates the
// deploy buckets; ctx bounds the start. A server starts once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil || s.done {
		return errors.New("deploy: server already started")
	}
	// An ephemeral administrator, known only to this process, creates the
	// buckets; devices and operators cannot change their configuration.
	admin, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	adminPub, _ := admin.PublicKey()
	users := append(s.cfg.Access.NkeyUsers(), &server.NkeyUser{Nkey: adminPub})
	ns, err := natsembed.Start(ctx, natsembed.Config{
		Name: "fennec-deploy", Dir: s.cfg.Dir, Listen: s.cfg.Listen, TLS: s.cfg.TLS,
		Configure: func(o *server.Options) { o.Nkeys = users },
	})
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Nkey(adminPub, admin.Sign))
	if err != nil {
		ns.Shutdown()
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		err = EnsureBuckets(ctx, js)
	}
	if err != nil {
		ns.Shutdown()
		return err
	}
	s.ns = ns
	close(s.ready)
	return nil
}

// Ready reports whether the server has started and made its buckets,
// waiting up to timeout.
func (s *Server) Ready(timeout time.Duration) bool {
	select {
	case <-s.ready:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (s *Server) server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// ClientURL is the address clients connect to ("" without a listener or
// before Start).
func (s *Server) ClientURL() string {
	ns := s.server()
	if ns == nil || ns.Addr() == nil {
		return ""
	}
	if s.cfg.TLS != nil {
		return strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)
	}
	return ns.ClientURL()
}

// Connect opens an in-process client connection with opts (credentials).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	ns := s.server()
	if ns == nil {
		return nil, errors.New("deploy: server not started")
	}
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(ns)}, opts...)...)
}

// Shutdown stops the server and waits for it; it may be called more than
// once, and before Start.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns, s.done = nil, true
	s.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}
