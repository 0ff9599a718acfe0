package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
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
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// StartServer starts the server with per-device permissions and creates
// the deploy buckets.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" || cfg.Access == nil {
		return nil, errors.New("deploy: ServerConfig needs Dir and Access")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	// An ephemeral administrator, known only to this process, creates the
	// buckets; devices and operators cannot change their configuration.
	admin, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	adminPub, _ := admin.PublicKey()
	users := append(cfg.Access.NkeyUsers(), &server.NkeyUser{Nkey: adminPub})
	opts := &server.Options{
		ServerName: "fennec-deploy",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.Dir, "jetstream"),
		SyncAlways: true,
		MaxPayload: 8 << 20,
		NoSigs:     true,
		NoLog:      true,
		Nkeys:      users,
	}
	if cfg.Listen == "-" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("deploy: Listen %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("deploy: Listen %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("deploy: nats server: %w", err)
	}
	fatal := make(chan string, 1)
	ns.SetLogger(fatalLogger(fatal), false, false)
	ns.Start()
	ready := make(chan bool, 1)
	go func() { ready <- ns.ReadyForConnections(30 * time.Second) }()
	select {
	case ok := <-ready:
		if !ok {
			ns.Shutdown()
			return nil, errors.New("deploy: nats server did not become ready in 30s")
		}
	case msg := <-fatal:
		ns.Shutdown()
		return nil, fmt.Errorf("deploy: nats server: %s", msg)
	case <-ctx.Done():
		ns.Shutdown()
		return nil, ctx.Err()
	}
	s := &Server{ns: ns}
	nc, err := s.Connect(nats.Nkey(adminPub, admin.Sign))
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		err = EnsureBuckets(ctx, js)
	}
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	return s, nil
}

// ClientURL is the address clients connect to ("" without a listener).
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Connect opens an in-process client connection with opts (credentials).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)...)
}

// Shutdown stops the server.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// fatalLogger discards the server's log but reports its fatal errors (such
// as a listen address in use), which would otherwise go unnoticed.
type fatalLogger chan string

func (l fatalLogger) Fatalf(format string, v ...any) {
	select {
	case l <- fmt.Sprintf(format, v...):
	default:
	}
}
func (fatalLogger) Noticef(string, ...any) {}
func (fatalLogger) Warnf(string, ...any)   {}
func (fatalLogger) Errorf(string, ...any)  {}
func (fatalLogger) Debugf(string, ...any)  {}
func (fatalLogger) Tracef(string, ...any)  {}
