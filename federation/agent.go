package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/atomicfile"
)

// AgentConfig configures an Agent. The zero value of each field is its
// default (in parentheses); a negative one is an error naming the field.
type AgentConfig struct {
	// Name is the federation's name ("default").
	Name string
	// URL of the hub's NATS server, with NATSOptions; or Conn, an existing
	// connection the agent uses without closing it.
	URL         string
	NATSOptions []nats.Option
	Conn        *nats.Conn
	// ID and Key are the device's credentials (ParseCreds); the device is
	// never inferred from the connection.
	ID  string
	Key []byte
	// Trainer trains the global model on Data (required).
	Trainer Trainer
	Data    Dataset
	// Heartbeat is how often the device re-announces itself (2s).
	Heartbeat time.Duration
	// ChunkSize of update messages (256 KiB, capped by the server's
	// maximum payload).
	ChunkSize int
	// NewMode, when set, makes the agent follow the hub's privacy mode:
	// the first time the hub names a mode, the agent creates its device
	// side with NewMode (NewDevicePrivacy) and answers the mode's protocol
	// steps on the device's step subject. Without it the device takes
	// part in plain rounds only.
	NewMode func(mode string) (*DevicePrivacy, error)
	// Mode, when set, is the only round mode the device takes part in: it
	// refuses to start against a hub in another mode and refuses tasks of
	// any other mode, plain included.
	Mode string
	// Logger receives the agent's events (slog.Default() when nil).
	Logger *slog.Logger
}

// AgentStats counts an agent's work.
type AgentStats struct {
	// Rounds taken; of them Accepted, Refused by the hub and Failed here.
	Rounds, Accepted, Refused, Failed uint64
	// Forged counts task messages refused unread: a MAC that does not
	// verify (not from the hub) or a round already taken (a replay).
	Forged uint64
	// BytesIn and BytesOut of models and updates.
	BytesIn, BytesOut uint64
}

// Agent is a device's side of a federation: it joins the hub with its
// explicit identity, heartbeats, takes the tasks the hub signs, fetches
// the global model, trains it on the local data with its Trainer and
// sends the update as signed chunks. Its lifecycle: NewAgent, Start, then
// Close (which leaves the federation) or Kill (which does not).
type Agent struct{ a *agent.Agent }

// NewAgent validates cfg and returns an unstarted agent; errors name the
// field at fault.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	ic := agent.Config{
		Name: cfg.Name, URL: cfg.URL, NATSOptions: cfg.NATSOptions, Conn: cfg.Conn, ID: cfg.ID, Key: cfg.Key,
		Trainer: trainer(cfg.Trainer), Data: cfg.Data.internal(), Heartbeat: cfg.Heartbeat, ChunkSize: cfg.ChunkSize,
		Mode: cfg.Mode, Logger: cfg.Logger,
	}
	if cfg.NewMode != nil {
		ic.NewMode = newMode(cfg.NewMode, cfg.Trainer)
	}
	a, err := agent.New(ic)
	if err != nil {
		return nil, err
	}
	return &Agent{a}, nil
}

// newMode converts a NewMode function at the package boundary. A mode
// that trains with DP-SGD on the device is refused (ErrNoLedger) before f
// runs when the trainer is a WasmTrainer with no Dataset: its releases
// would have no budget to be charged to.
func newMode(f func(string) (*DevicePrivacy, error), tr Trainer) func(string) (hook.ClientTransform, error) {
	return func(mode string) (hook.ClientTransform, error) {
		if w, ok := tr.(*WasmTrainer); ok && w != nil && w.Dataset == "" && ModeTrainsDPSGD(mode) {
			return nil, fmt.Errorf("privacy mode %s: %w", mode, ErrNoLedger)
		}
		p, err := f(mode)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fmt.Errorf("agent config: NewMode(%q) returned no device side", mode)
		}
		return p.c, nil
	}
}

// Start connects (unless AgentConfig.Conn is set), joins the hub and
// starts taking tasks; ctx bounds the join only.
func (a *Agent) Start(ctx context.Context) error { return a.a.Start(ctx) }

// Stats returns the agent's counters so far.
func (a *Agent) Stats() AgentStats { return AgentStats(a.a.Stats()) }

// Close leaves the federation, stops the agent and waits for its
// goroutines; it closes the connection only if the agent opened it.
func (a *Agent) Close() { a.a.Close() }

// Kill stops the agent without leaving, as a device that dies does.
func (a *Agent) Kill() { a.a.Kill() }

// DeviceKey derives device id's credential key from the fleet secret.
func DeviceKey(secret []byte, id string) []byte { return wire.DeviceKey(secret, id) }

// ReadFleetSecret reads the fleet secret file at path (hex, at least 16
// bytes; errors name the file). With create, a missing file is created with
// a random 32-byte secret, written atomically with mode 0600.
func ReadFleetSecret(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		s, file, err := wire.NewSecret()
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, file, 0o600); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := wire.ParseSecret(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// FormatCreds writes device id's credentials file.
func FormatCreds(id string, key []byte) string { return wire.FormatCreds(id, key) }

// ParseCreds reads a credentials file (FormatCreds): the device's id and
// key.
func ParseCreds(b []byte) (id string, key []byte, err error) { return wire.ParseCreds(b) }

// DeviceConnectOptions are device id's NATS options for a hub without an
// access file: the user and password its key derives, which the hub's
// embedded server requires, and the device's own inbox. An Agent with a
// URL uses them itself; pass them when you connect the Conn you give it.
func DeviceConnectOptions(id string, key []byte) []nats.Option { return agent.FleetOptions(id, key) }

// DevicePassword is the NATS password of a device with key on a hub
// without an access file (what DeviceConnectOptions sends; a device's
// leaf node authenticates with it too).
func DevicePassword(key []byte) string { return wire.DevicePassword(key) }

// DeviceNATSUser is device id's entry for the authorization block of an
// external NATS server's configuration (HubConfig.NATSURL): its user, the
// password its key derives and the permissions the embedded server would
// give it (its own federation subjects only, no JetStream API).
func DeviceNATSUser(name, id string, key []byte) string {
	p := hub.DevicePermissions(name, id)
	q := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	return fmt.Sprintf("{ user: %q, password: %q, permissions: { publish: { allow: %s }, subscribe: { allow: %s }, allow_responses: { max: %d, expires: %q } } }\n",
		id, wire.DevicePassword(key), q(p.Publish.Allow), q(p.Subscribe.Allow), p.Response.MaxMsgs, p.Response.Expires.String())
}
