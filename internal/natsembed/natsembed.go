// Package natsembed starts the embedded nats-server with JetStream that the
// federation hub and the deploy server share: one place sets the store's
// permissions (0700), the durability options, and catches the server's
// fatal errors (a listen address already in use) so that a start fails at
// once with a clear error instead of waiting out the readiness timeout.
package natsembed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config describes an embedded server.
type Config struct {
	// Name is the server's name (server.Options.ServerName).
	Name string
	// Dir holds JetStream's files under Dir/jetstream (created 0700).
	Dir string
	// Listen is the client address host:port; port 0 picks a free port;
	// "-" accepts in-process connections only.
	Listen string
	// Configure, when set, adds authentication and authorisation to the
	// options (Nkeys, CustomClientAuthentication, ...).
	Configure func(*server.Options)
	// Logger receives the server's log lines (nil discards them). Fatal
	// errors also end Start.
	Logger server.Logger
	// Ready bounds the wait for the server to accept connections (30s).
	Ready time.Duration
	// TLS, when set, makes the client listener TLS only (every network
	// client; in-process connections are not network connections); with
	// ClientAuth set, clients must present a verified certificate.
	TLS *tls.Config
}

// readySlice is how long one readiness check waits before Start looks
// again at fatal errors and ctx.
const readySlice = 50 * time.Millisecond

// Start starts the server and waits until it accepts connections, fails,
// or ctx ends.
func Start(ctx context.Context, cfg Config) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("nats server: a data directory is required")
	}
	if cfg.Ready == 0 {
		cfg.Ready = 30 * time.Second
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.Dir, "jetstream"),
		SyncAlways: true, // a kill -9 or power loss after a write never loses it
		MaxPayload: 8 << 20,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen == "-" {
		opts.DontListen = true
	} else {
		host, port, err := SplitListen(cfg.Listen)
		if err != nil {
			return nil, err
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, cfg.TLS, 5
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	if cfg.Configure != nil {
		cfg.Configure(opts)
	}
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats server: data directory: %w", err)
	}
	// MkdirAll keeps an existing directory's mode: tighten it.
	if err := os.Chmod(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats server: data directory: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	fatal := make(chan string, 1)
	ns.SetLogger(fatalCatcher{cfg.Logger, fatal}, false, false)
	ns.Start()
	fail := func(err error) (*server.Server, error) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	// Readiness is polled here in short slices rather than in a goroutine
	// that waits out cfg.Ready: a start that fails (a fatal error, ctx
	// ended) returns with nothing of its own left running.
	deadline := time.Now().Add(cfg.Ready)
	for {
		select {
		case msg := <-fatal:
			return fail(fmt.Errorf("nats server on %s: %s", cfg.Listen, msg))
		case <-ctx.Done():
			return fail(ctx.Err())
		default:
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fail(fmt.Errorf("nats server on %s did not become ready in %v", cfg.Listen, cfg.Ready))
		}
		if ns.ReadyForConnections(min(left, readySlice)) {
			break
		}
	}
	return ns, nil
}

// SplitListen parses host:port (port 0..65535).
func SplitListen(listen string) (string, int, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("listen address %q: bad port", listen)
	}
	return host, p, nil
}

// Loopback reports whether a listen address accepts connections from this
// machine only: "-" (in-process), localhost or a loopback IP. An empty
// host or 0.0.0.0 / :: listens on every interface.
func Loopback(listen string) bool {
	if listen == "-" {
		return true
	}
	host, _, err := SplitListen(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fatalCatcher passes log lines to the caller's logger and reports the
// server's fatal errors, which would otherwise go unnoticed (nats-server
// logs them and stops accepting, without returning an error).
type fatalCatcher struct {
	next  server.Logger
	fatal chan string
}

func (l fatalCatcher) Fatalf(format string, v ...any) {
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
	if l.next != nil {
		l.next.Fatalf(format, v...)
	}
}

func (l fatalCatcher) Errorf(format string, v ...any) {
	if l.next != nil {
		l.next.Errorf(format, v...)
	}
}

func (l fatalCatcher) Warnf(format string, v ...any) {
	if l.next != nil {
		l.next.Warnf(format, v...)
	}
}

func (l fatalCatcher) Noticef(format string, v ...any) {
	if l.next != nil {
		l.next.Noticef(format, v...)
	}
}

func (l fatalCatcher) Debugf(format string, v ...any) {
	if l.next != nil {
		l.next.Debugf(format, v...)
	}
}

func (l fatalCatcher) Tracef(format string, v ...any) {
	if l.next != nil {
		l.next.Tracef(format, v...)
	}
}
