package deploy

import (
	"context"
	"errors"
	"fmt"

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
	ns, err := natsembed.Start(ctx, natsembed.Config{
		Name: "fennec-deploy", Dir: cfg.Dir, Listen: cfg.Listen,
		Configure: func(o *server.Options) { o.Nkeys = users },
	})
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
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
