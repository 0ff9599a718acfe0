package leaf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/natsembed"
)

// Config configures a device's leaf node. The zero value of each field is
// its default; Device and Dir are required.
type Config struct {
	// Device is the device's id (its JetStream domain is Domain(Device)).
	Device string `toml:"device"`
	// Hub is the hub's leaf listener (nats-leaf://host:7422, or tls://);
	// empty runs the node alone (the outbox fills until a hub is set).
	Hub string `toml:"hub"`
	// Dir holds the local JetStream store (Dir/jetstream, 0700).
	Dir string `toml:"dir"`
	// Listen is the local client address ("-": in-process clients only,
	// the default; "127.0.0.1:4222" opens it to the device's own
	// processes).
	Listen string `toml:"listen"`
	// Subjects are captured in the outbox for the hub
	// (DefaultSubjects(Device) when empty).
	Subjects []string `toml:"subjects"`
	// MaxBytes bounds the outbox (64 MiB); MaxAge drops older messages
	// (7 days). When the outbox is full the oldest messages are discarded
	// (counted: Stats.Lost) so the device keeps accepting new ones.
	MaxBytes int64         `toml:"max_bytes"`
	MaxAge   time.Duration `toml:"max_age"`
	// Reconnect is the wait between attempts to reach the hub (1s).
	Reconnect time.Duration `toml:"reconnect"`

	// Nkey signs the leaf connection's authentication with the device's
	// nkey (a hub with an access file); User and Password authenticate a
	// hub without one (the device's id and wire.DevicePassword).
	Nkey           nkeys.KeyPair `toml:"-"`
	User, Password string        `toml:"-"`
	// TLS, when set, encrypts the leaf connection to the hub.
	TLS *tls.Config `toml:"-"`
	// Configure, when set, adjusts the local server's options last (local
	// authentication, an MQTT listener).
	Configure func(*server.Options) `toml:"-"`
	// Logger receives the node's events (slog.Default() when nil).
	Logger *slog.Logger `toml:"-"`
	// Registerer, when set, receives the outbox's metrics
	// (fennec_leaf_outbox_*, fennec_leaf_hub_connected), read when
	// scraped; Shutdown unregisters them. nil: no metrics.
	Registerer prometheus.Registerer `toml:"-"`
}

// Node is a running leaf node.
type Node struct {
	cfg  Config
	log  *slog.Logger
	hub  *url.URL
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	once sync.Once
	coll *collector

	mu        sync.Mutex
	delivered uint64 // highest outbox sequence sent to the hub
	lost      uint64 // outbox messages discarded before delivery
	started   chan struct{}
}

// New validates cfg.
func New(cfg Config) (*Node, error) {
	if !validID(cfg.Device) {
		return nil, fmt.Errorf("leaf config: device: %q: want 1-64 characters of A-Z a-z 0-9 _ -", cfg.Device)
	}
	if cfg.Dir == "" {
		return nil, errors.New("leaf config: dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "-"
	}
	if len(cfg.Subjects) == 0 {
		cfg.Subjects = DefaultSubjects(cfg.Device)
	}
	for i, s := range cfg.Subjects {
		if !validSubject(s) {
			return nil, fmt.Errorf("leaf config: subjects[%d]: %q is not a NATS subject", i, s)
		}
		if strings.HasPrefix(s, "$") || strings.HasPrefix(s, "_INBOX") || strings.HasPrefix(s, "fennec.leaf.") {
			return nil, fmt.Errorf("leaf config: subjects[%d]: %q is reserved", i, s)
		}
	}
	if err := errors.Join(
		config.Default("leaf config: max_bytes", &cfg.MaxBytes, 64<<20),
		config.Default("leaf config: max_age", &cfg.MaxAge, 7*24*time.Hour),
		config.Default("leaf config: reconnect", &cfg.Reconnect, time.Second),
	); err != nil {
		return nil, err
	}
	if cfg.MaxBytes < 1<<20 {
		return nil, fmt.Errorf("leaf config: max_bytes %d: at least 1 MiB", cfg.MaxBytes)
	}
	if cfg.MaxAge < time.Minute {
		return nil, fmt.Errorf("leaf config: max_age %v: at least 1m (a TOML number is nanoseconds: write \"168h\")", cfg.MaxAge)
	}
	n := &Node{cfg: cfg, log: config.Logger(cfg.Logger).With("component", "leaf", "device", cfg.Device), started: make(chan struct{})}
	if cfg.Hub != "" {
		u, err := url.Parse(cfg.Hub)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("leaf config: hub: %q: want nats-leaf://host:port or tls://host:port", cfg.Hub)
		}
		switch u.Scheme {
		case "nats-leaf", "nats", "tls":
		default:
			return nil, fmt.Errorf("leaf config: hub: %q: scheme %q, want nats-leaf or tls", cfg.Hub, u.Scheme)
		}
		if u.User != nil {
			return nil, fmt.Errorf("leaf config: hub: %q: credentials belong in the credential file, not the URL", cfg.Hub)
		}
		n.hub = u
	}
	return n, nil
}

// Start starts the local server, connects it to the hub as a leaf (in
// the background: an unreachable hub does not fail the start) and
// creates the outbox.
func (n *Node) Start(ctx context.Context) error {
	c := n.cfg
	ns, err := natsembed.Start(ctx, natsembed.Config{
		Name: "fennec-leaf-" + c.Device, Dir: c.Dir, Listen: c.Listen, Logger: natsLog{n.log},
		Configure: func(o *server.Options) {
			o.JetStreamDomain = Domain(c.Device)
			// The local store holds the outbox and nothing else of size:
			// bound it so a full outbox cannot fill the disk.
			o.JetStreamMaxStore = 2*c.MaxBytes + 8<<20
			o.JetStreamMaxMemory = 8 << 20
			if n.hub != nil {
				r := &server.RemoteLeafOpts{URLs: []*url.URL{n.hub}, TLSConfig: c.TLS, TLS: c.TLS != nil,
					DenyImports: HubDenied(c.Device)}
				if c.Nkey != nil {
					// The server signs the hub's nonce with the seed
					// (a signature callback would have to send a JWT).
					if seed, err := c.Nkey.Seed(); err == nil {
						r.Nkey = string(seed)
					}
				} else if c.User != "" {
					u := *n.hub
					u.User = url.UserPassword(c.User, c.Password)
					r.URLs = []*url.URL{&u}
				}
				o.LeafNode.Remotes = []*server.RemoteLeafOpts{r}
				o.LeafNode.ReconnectInterval = c.Reconnect
			}
			if c.Configure != nil {
				c.Configure(o)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("leaf %s: %w", c.Device, err)
	}
	n.ns = ns
	fail := func(err error) error {
		n.Shutdown()
		return fmt.Errorf("leaf %s: %w", c.Device, err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("fennec-leaf-"+c.Device))
	if err != nil {
		return fail(err)
	}
	n.nc = nc
	if n.js, err = jetstream.New(nc); err != nil {
		return fail(err)
	}
	// The hub's sourcing consumer on the outbox is internal (not listed),
	// but what it sends to the hub crosses this server on the deliver
	// prefix with the stream sequence in its reply subject: watch it to
	// know what is still pending.
	if _, err := nc.Subscribe(DeliverPrefix(c.Device)+".>", n.onDeliver); err != nil {
		return fail(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.js.CreateOrUpdateStream(sctx, n.outboxConfig()); err != nil {
		return fail(fmt.Errorf("outbox stream: %w", err))
	}
	if c.Registerer != nil {
		coll := newCollector(n)
		if err := c.Registerer.Register(coll); err != nil {
			return fail(fmt.Errorf("metrics: %w", err))
		}
		n.coll = coll
	}
	close(n.started)
	return nil
}

func (n *Node) outboxConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: OutboxStream(n.cfg.Device), Subjects: n.cfg.Subjects,
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
		MaxBytes: n.cfg.MaxBytes, MaxAge: n.cfg.MaxAge, Discard: jetstream.DiscardOld,
		Duplicates:  DedupeWindow,
		Description: "messages for the hub, sourced by its " + UplinkStream + " stream"}
}

func (n *Node) onDeliver(m *nats.Msg) {
	if m.Reply == "" {
		return // a heartbeat or flow control message
	}
	md, err := m.Metadata()
	if err != nil {
		return
	}
	n.mu.Lock()
	n.delivered = max(n.delivered, md.Sequence.Stream)
	n.mu.Unlock()
}

// Ready waits until the node has started or timeout passes.
func (n *Node) Ready(timeout time.Duration) bool {
	select {
	case <-n.started:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Server is the local server: in-process clients connect with
// nats.InProcessServer(n.Server()).
func (n *Node) Server() *server.Server { return n.ns }

// ClientURL is the local listener's URL ("" when in-process only).
func (n *Node) ClientURL() string {
	if n.cfg.Listen == "-" || n.ns == nil {
		return ""
	}
	return n.ns.ClientURL()
}

// Connected reports whether the leaf connection to the hub is up.
func (n *Node) Connected() bool { return n.ns != nil && n.ns.NumLeafNodes() > 0 }

// Stats describes the outbox.
type Stats struct {
	// Messages and Bytes held (delivered ones too, until the limits drop them).
	Messages, Bytes uint64
	// Pending are the messages the hub has not taken yet, the oldest
	// stored at Oldest (zero when none is pending).
	Pending uint64
	Oldest  time.Time
	// Lost counts messages the limits discarded before the hub took them
	// (as far as this node saw the hub's progress).
	Lost uint64
	// Connected: the leaf connection to the hub is up.
	Connected bool
}

// Stats reads the outbox's state and the hub's progress through it.
func (n *Node) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Connected: n.Connected()}
	s, err := n.js.Stream(ctx, OutboxStream(n.cfg.Device))
	if err != nil {
		return st, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return st, err
	}
	ss := info.State
	n.mu.Lock()
	if ss.FirstSeq > 0 && ss.FirstSeq-1 > n.delivered {
		// Sequences before FirstSeq are gone; those after the hub's
		// position were never delivered.
		n.lost += ss.FirstSeq - 1 - n.delivered
		n.delivered = ss.FirstSeq - 1
	}
	delivered, lost := n.delivered, n.lost
	st.Lost = lost
	n.mu.Unlock()
	st.Messages, st.Bytes = ss.Msgs, ss.Bytes
	if ss.LastSeq > delivered {
		st.Pending = ss.LastSeq - delivered
		if m, err := s.GetMsg(ctx, max(delivered+1, ss.FirstSeq)); err == nil {
			st.Oldest = m.Time
		}
	}
	return st, nil
}

// Shutdown stops the node.
func (n *Node) Shutdown() {
	n.once.Do(func() {
		if n.coll != nil {
			n.cfg.Registerer.Unregister(n.coll)
		}
		if n.nc != nil {
			n.nc.Close()
		}
		if n.ns != nil {
			n.ns.Shutdown()
			n.ns.WaitForShutdown()
		}
	})
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validSubject(s string) bool {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || (strings.ContainsAny(t, "*>") && len(t) > 1) || (t == ">" && i != len(toks)-1) {
			return false
		}
	}
	return true
}

// natsLog passes the local server's warnings and errors (a refused leaf
// connection, a permission violation on the hub) to the node's logger.
type natsLog struct{ log *slog.Logger }

func (l natsLog) Fatalf(f string, v ...any)  { l.log.Error("nats: " + fmt.Sprintf(f, v...)) }
func (l natsLog) Errorf(f string, v ...any)  { l.log.Warn("nats: " + fmt.Sprintf(f, v...)) }
func (l natsLog) Warnf(f string, v ...any)   { l.log.Warn("nats: " + fmt.Sprintf(f, v...)) }
func (l natsLog) Noticef(f string, v ...any) { l.log.Debug("nats: " + fmt.Sprintf(f, v...)) }
func (l natsLog) Debugf(string, ...any)      {}
func (l natsLog) Tracef(string, ...any)      {}
