// Package agent is the device side of federated training: it announces the
// device (explicit id + key, never inferred from the connection), receives
// round tasks, fetches the global model, trains it on local data through a
// train.Trainer (the Wasm module's `train` entrypoint in production) and
// submits its update as signed CBOR chunks.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Config configures an Agent.
type Config struct {
	Name string // federation name ("default")
	// URL of the hub's NATS server, with NATSOptions; or Conn, an existing
	// connection the agent uses without closing it.
	URL         string
	NATSOptions []nats.Option
	Conn        *nats.Conn
	ID          string
	Key         []byte
	Trainer     train.Trainer
	Data        train.Dataset
	// Heartbeat is how often the device re-announces itself (2s).
	Heartbeat time.Duration
	// ChunkSize of update messages (256 KiB, capped by the server's max payload).
	ChunkSize int
	// Modes maps privacy mode names to their device-side transforms. The
	// caller serves their protocol steps (hook.ServeDevice), if any.
	Modes map[string]hook.ClientTransform
	// NewMode, when set, makes the agent follow the hub's privacy mode: the
	// first time a join reply (hub.ModeHeader) or a task names a mode that
	// Modes lacks, the agent creates its device side with NewMode. When
	// that client also answers protocol steps (a Handle method with the
	// hook.Handler signature, as modes.Client has), the agent serves them
	// on the device's step subject (hook.StepSubject, subscribed before the
	// device joins) with the mode the hub announced.
	NewMode func(mode string) (hook.ClientTransform, error)
	// Mode, when set, is the only round mode this device takes part in: it
	// refuses to start against a hub that announces another mode, and
	// refuses tasks of any other mode, plain included.
	Mode string
	// Logger receives the agent's events (slog.Default() when nil).
	Logger *slog.Logger
}

// stepClient is a mode's device side that answers protocol steps.
type stepClient interface {
	Handle(ctx context.Context, round uint64, step string, data []byte) ([]byte, error)
}

// Stats counts an agent's work.
type Stats struct {
	Rounds, Accepted, Refused, Failed uint64
	// Forged counts task messages refused unread: a MAC that does not
	// verify (not from the hub) or a round already taken (a replay).
	Forged            uint64
	BytesIn, BytesOut uint64
}

// Agent is a running device.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	subj  wire.Subjects
	nc    *nats.Conn
	own   bool
	sub   *nats.Subscription
	tasks chan wire.Task
	ctx   context.Context // cancelled when the agent stops: the one stop signal
	quit  context.CancelFunc
	g     routines.Group // the heartbeat and the worker, waited for by halt
	once  sync.Once

	link      *hook.DeviceLink
	modeMu    sync.Mutex
	clients   map[string]hook.ClientTransform // created by NewMode
	hubMode   string                          // announced in the last join reply ("" plain)
	modeKnown chan struct{}                   // closed after the first join reply

	cacheVersion uint64
	cacheDigest  []byte
	cache        model.Model

	lastStamp atomic.Int64  // newest join/leave timestamp sent (stamp)
	lastRound atomic.Uint64 // newest round whose task this device took

	rounds, accepted, refused, failed, forged, bytesIn, bytesOut atomic.Uint64
}

// New validates cfg.
func New(cfg Config) (*Agent, error) {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if err := wire.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("agent config: Name: %w", err)
	}
	if err := wire.ValidName(cfg.ID); err != nil {
		return nil, fmt.Errorf("agent config: ID: %w", err)
	}
	if len(cfg.Key) < 16 {
		return nil, errors.New("agent config: Key must be at least 16 bytes")
	}
	if cfg.Trainer == nil {
		return nil, errors.New("agent config: Trainer is required")
	}
	if _, err := cfg.Data.Rows(); err != nil {
		return nil, fmt.Errorf("agent config: Data: %w", err)
	}
	if cfg.Conn == nil && cfg.URL == "" {
		return nil, errors.New("agent config: URL or Conn is required")
	}
	if err := errors.Join(
		config.Default("agent config: Heartbeat", &cfg.Heartbeat, 2*time.Second),
		config.Default("agent config: ChunkSize", &cfg.ChunkSize, wire.DefaultChunk),
	); err != nil {
		return nil, err
	}
	cfg.Logger = config.Logger(cfg.Logger)
	if PlainMode(cfg.Mode) {
		cfg.Mode = ""
	} else if err := wire.ValidName(strings.ReplaceAll(cfg.Mode, "+", "_")); err != nil {
		return nil, fmt.Errorf("agent config: Mode: %w", err)
	} else if cfg.Modes[cfg.Mode] == nil && cfg.NewMode == nil {
		return nil, fmt.Errorf("agent config: Mode %q needs NewMode (or its transform in Modes)", cfg.Mode)
	}
	ctx, quit := context.WithCancel(context.Background())
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "device", cfg.ID),
		subj: wire.For(cfg.Name), tasks: make(chan wire.Task, 1), ctx: ctx, quit: quit,
		clients: map[string]hook.ClientTransform{}, modeKnown: make(chan struct{})}, nil
}

// Start connects, subscribes to the device's task subject, announces the
// device (failing on bad credentials) and starts the heartbeat and worker.
func (a *Agent) Start(ctx context.Context) error {
	if a.cfg.Conn != nil {
		a.nc = a.cfg.Conn
	} else {
		opts := append([]nats.Option{nats.Name("fennec-agent-" + a.cfg.ID), nats.MaxReconnects(-1)}, FleetOptions(a.cfg.ID, a.cfg.Key)...)
		nc, err := nats.Connect(a.cfg.URL, append(opts, a.cfg.NATSOptions...)...)
		if err != nil {
			return fmt.Errorf("agent %s: connect %s: %w", a.cfg.ID, a.cfg.URL, err)
		}
		a.nc, a.own = nc, true
	}
	sub, err := a.nc.Subscribe(a.subj.TaskPrefix+a.cfg.ID, a.onTask)
	if err != nil {
		a.closeConn()
		return err
	}
	a.sub = sub
	if a.cfg.NewMode != nil {
		if a.cfg.Mode != "" {
			if _, err := a.client(a.cfg.Mode); err != nil {
				a.closeConn()
				return err
			}
		}
		// Serve the mode steps before joining: the hub may ask as soon as
		// the device is available.
		link, err := hook.ServeDevice(a.nc, a.cfg.Name, a.cfg.ID, a.cfg.Key, a.step, 0)
		if err != nil {
			a.closeConn()
			return fmt.Errorf("agent %s: %w", a.cfg.ID, err)
		}
		a.link = link
	}
	if err := a.join(ctx); err != nil {
		a.closeLink()
		a.closeConn()
		return err
	}
	a.g.Go(a.heartbeat)
	a.g.Go(a.work)
	return nil
}

// FleetOptions are the NATS options of device id on a hub without an
// access file: the device's user and password (wire.DevicePassword of its
// key), which the hub's server requires of every network client, and the
// device's own inbox, which its permissions require. A server that
// authenticates no one ignores them.
func FleetOptions(id string, key []byte) []nats.Option {
	return []nats.Option{nats.UserInfo(id, wire.DevicePassword(key)), nats.CustomInboxPrefix(deploy.InboxPrefix(id))}
}

// stamp returns a timestamp after every one this agent sent: the hub
// refuses a join, heartbeat or leave not newer than the device's last.
func (a *Agent) stamp() int64 {
	for {
		last := a.lastStamp.Load()
		ts := max(time.Now().UnixMilli(), last+1)
		if a.lastStamp.CompareAndSwap(last, ts) {
			return ts
		}
	}
}

// joinTimeout bounds one join (with its retries while no hub answers).
const joinTimeout = 10 * time.Second

func (a *Agent) join(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	var msg *nats.Msg
	// No responders means the request reached no hub: the hub is
	// restarting, or the device's leaf node has just connected and has not
	// yet learnt the hub's interest in join subjects (nats propagates it
	// after the leaf connection is up). Ask again, backing off, until the
	// deadline; a hub that answers ends the loop at once.
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		j := wire.Join{Device: a.cfg.ID, TimeMS: a.stamp(), Nonce: rand.Uint64()}
		wire.SignJoin(a.cfg.Key, &j)
		var err error
		msg, err = a.nc.RequestWithContext(cctx, a.subj.JoinPrefix+a.cfg.ID, wire.Encode(j))
		if err == nil {
			break
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("agent %s: join: %w", a.cfg.ID, err)
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("agent %s: join: %w (no hub answered within %v)", a.cfg.ID, err, joinTimeout)
		case <-time.After(backoff):
		}
	}
	ack, err := wire.DecodeAck(msg.Data)
	if err != nil {
		return fmt.Errorf("agent %s: join reply: %w", a.cfg.ID, err)
	}
	if !ack.OK {
		return fmt.Errorf("agent %s: join refused (%s): %s", a.cfg.ID, ack.Code, ack.Error)
	}
	mode := msg.Header.Get(ModeHeader)
	if PlainMode(mode) {
		mode = ""
	}
	if a.cfg.Mode != "" && mode != a.cfg.Mode {
		return fmt.Errorf("agent %s: the hub runs privacy mode %q, this device takes part in %q only", a.cfg.ID, modeName(mode), a.cfg.Mode)
	}
	if mode != "" && a.cfg.Modes[mode] == nil && a.cfg.NewMode != nil {
		if _, err := a.client(mode); err != nil {
			return fmt.Errorf("agent %s: the hub's privacy mode: %w", a.cfg.ID, err)
		}
	}
	a.modeMu.Lock()
	a.hubMode = mode
	select {
	case <-a.modeKnown:
	default:
		close(a.modeKnown)
	}
	a.modeMu.Unlock()
	return nil
}

// ModeHeader is hub.ModeHeader: the join reply's header naming the hub's
// round mode.
const ModeHeader = "Fennec-Mode"

func modeName(m string) string {
	if m == "" {
		return "plain"
	}
	return m
}

// client returns mode's device side: from Modes, or created once by
// NewMode.
func (a *Agent) client(mode string) (hook.ClientTransform, error) {
	if c := a.cfg.Modes[mode]; c != nil {
		return c, nil
	}
	a.modeMu.Lock()
	defer a.modeMu.Unlock()
	if c := a.clients[mode]; c != nil {
		return c, nil
	}
	if a.cfg.NewMode == nil {
		return nil, fmt.Errorf("round mode %q is not supported by this device", mode)
	}
	c, err := a.cfg.NewMode(mode)
	if err != nil {
		return nil, fmt.Errorf("mode %s: %w", mode, err)
	}
	if c == nil {
		return nil, fmt.Errorf("mode %s: no device side", mode)
	}
	a.clients[mode] = c
	a.log.Info("privacy mode", "mode", mode)
	return c, nil
}

// step answers a mode step with the device side of the mode the hub
// announced (hook.Handler).
func (a *Agent) step(ctx context.Context, round uint64, step string, data []byte) ([]byte, error) {
	select { // the step may overtake the first join reply
	case <-a.modeKnown:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.modeMu.Lock()
	mode := a.hubMode
	a.modeMu.Unlock()
	if mode == "" {
		return nil, errors.New("the hub announced no privacy mode")
	}
	c, err := a.client(mode)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(stepClient)
	if !ok {
		return nil, fmt.Errorf("mode %s has no protocol steps on this device", mode)
	}
	return sc.Handle(ctx, round, step, data)
}

func (a *Agent) heartbeat() {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			if err := a.join(a.ctx); err != nil && a.ctx.Err() == nil {
				a.log.Warn("heartbeat", "err", err)
			}
		}
	}
}

func (a *Agent) onTask(m *nats.Msg) {
	t, err := wire.DecodeTask(m.Data)
	if err != nil {
		a.forged.Add(1)
		a.log.Warn("task refused", "err", err)
		return
	}
	// Only the hub, which holds this device's key, can MAC a task for it;
	// a task for a round this device already took is a replay (the hub
	// never reuses round ids).
	if err := wire.VerifyTask(a.cfg.Key, a.cfg.ID, t); err != nil {
		a.forged.Add(1)
		a.log.Warn("task refused", "round", t.Round, "err", err)
		return
	}
	for {
		last := a.lastRound.Load()
		if t.Round <= last {
			a.forged.Add(1)
			a.log.Warn("task refused", "round", t.Round, "err", fmt.Sprintf("round %d is not after round %d, which this device already took: a replay (or a hub whose store was reset: restart the agent)", t.Round, last))
			return
		}
		if a.lastRound.CompareAndSwap(last, t.Round) {
			break
		}
	}
	a.bytesIn.Add(uint64(len(m.Data)))
	for {
		select {
		case a.tasks <- t:
			return
		default:
		}
		select { // replace a stale queued task with the newer one
		case <-a.tasks:
		default:
		}
	}
}

func (a *Agent) work() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case t := <-a.tasks:
			a.rounds.Add(1)
			if err := a.runTask(t); err != nil {
				a.failed.Add(1)
				a.log.Warn("round", "round", t.Round, "err", err)
			}
		}
	}
}

func (a *Agent) runTask(t wire.Task) error {
	if a.cfg.Mode != "" && t.Mode != a.cfg.Mode {
		return fmt.Errorf("round mode %q refused: this device takes part in %q only", modeName(t.Mode), a.cfg.Mode)
	}
	deadline := time.UnixMilli(t.DeadlineMS)
	if time.Now().After(deadline) {
		return errors.New("task arrived after its deadline")
	}
	ctx, cancel := context.WithDeadline(a.ctx, deadline)
	defer cancel()
	global, err := a.fetch(ctx, t)
	if err != nil {
		return err
	}
	// Only a device's own mode client decides how it trains privately
	// (DP-SGD settings): never the hub.
	settings := t.Settings
	settings.DP = nil
	var (
		mc   hook.ClientTransform
		info = hook.RoundInfo{Round: t.Round, Version: t.Version, Mode: t.Mode, Device: a.cfg.ID}
	)
	if !PlainMode(t.Mode) {
		if mc, err = a.client(t.Mode); err != nil {
			return err
		}
		if tc, ok := mc.(hook.TrainClient); ok {
			units, err := a.cfg.Data.Units()
			if err != nil {
				return err
			}
			if err := tc.TrainSettings(ctx, info, t.Extra, &settings, units); err != nil {
				return fmt.Errorf("mode %s: %w", t.Mode, err)
			}
		}
	}
	in := train.Input{Model: global, Round: t.Round, Settings: settings, Data: a.cfg.Data}
	if sc, ok := mc.(hook.ShareClient); ok {
		in.Share = sc.DPSGDShare(t.Round)
	}
	out, err := a.cfg.Trainer.Train(ctx, in)
	if err != nil {
		return err
	}
	if err := global.SameLayout(&out.Model); err != nil {
		return fmt.Errorf("trainer output: %w", err)
	}
	body := wire.Body{Model: out.Model, NumExamples: out.NumExamples, Metrics: out.Metrics}
	if mc != nil {
		// The mode protects the model update, not the training loss and
		// accuracy: they would leave in the clear, so they stay here. A
		// mode may send what does not depend on the data (DP-SGD: the
		// device's privacy spend).
		body.Metrics = nil
		if tc, ok := mc.(hook.TrainClient); ok {
			body.Metrics = tc.ReleaseMetrics()
		}
		if body.Extra, err = mc.Transform(ctx, info, t.Extra, global, &body.Model, body.NumExamples); err != nil {
			return fmt.Errorf("mode %s: %w", t.Mode, err)
		}
	}
	return a.submit(ctx, t.Round, wire.Encode(body))
}

// PlainMode reports whether a round of mode sends device metrics: only
// plain rounds ("" or "plain") do. In every other mode (dp, ldp, secagg,
// secagg+dp, he, he+dp, or a custom one) a device's training loss and
// accuracy would leave in the clear beside its protected update, so the
// agent does not send them and the hub does not report them.
func PlainMode(mode string) bool { return mode == "" || mode == "plain" }

// fetch returns the task's global model from the inline copy, the cache or
// the hub's chunks, verifying its digest.
func (a *Agent) fetch(ctx context.Context, t wire.Task) (model.Model, error) {
	if a.cacheDigest != nil && a.cacheVersion == t.Version && bytes.Equal(a.cacheDigest, t.Digest) {
		return a.cache, nil
	}
	enc := t.Inline
	if enc == nil {
		buf := make([]byte, 0, t.Size)
		for seq := uint64(0); seq < t.Chunks; seq++ {
			msg, err := a.nc.RequestWithContext(ctx, a.subj.Model, wire.Encode(wire.ModelReq{Version: t.Version, Seq: seq}))
			if err != nil {
				return model.Model{}, fmt.Errorf("fetch model chunk %d: %w", seq, err)
			}
			if e := msg.Header.Get("Fennec-Error"); e != "" {
				return model.Model{}, fmt.Errorf("fetch model chunk %d: %s", seq, e)
			}
			if uint64(len(buf)+len(msg.Data)) > t.Size {
				return model.Model{}, errors.New("fetch model: more bytes than announced")
			}
			a.bytesIn.Add(uint64(len(msg.Data)))
			buf = append(buf, msg.Data...)
		}
		enc = buf
	}
	if !bytes.Equal(wire.Digest(enc), t.Digest) {
		return model.Model{}, errors.New("fetch model: digest mismatch")
	}
	m, err := model.Decode(enc)
	if err != nil {
		return model.Model{}, err
	}
	a.cache, a.cacheVersion, a.cacheDigest = m, t.Version, t.Digest
	return m, nil
}

func (a *Agent) submit(ctx context.Context, round uint64, payload []byte) error {
	size := a.cfg.ChunkSize
	if mp := int(a.nc.MaxPayload()); mp > 0 {
		size = min(size, mp-4096)
	}
	// Every chunk is signed and names this upload (wire.Frame), so that
	// no one without the device's key can cancel or alter it.
	parts := wire.Frame(a.cfg.Key, a.cfg.ID, round, payload, size)
	for i, c := range parts {
		b := wire.Encode(c)
		msg, err := a.nc.RequestWithContext(ctx, a.subj.UpdatePrefix+a.cfg.ID, b)
		if err != nil {
			return fmt.Errorf("submit chunk %d/%d: %w", i, len(parts), err)
		}
		a.bytesOut.Add(uint64(len(b)))
		ack, err := wire.DecodeAck(msg.Data)
		if err != nil {
			return fmt.Errorf("submit: reply: %w", err)
		}
		if !ack.OK {
			a.refused.Add(1)
			return fmt.Errorf("update refused (%s): %s", ack.Code, ack.Error)
		}
	}
	a.accepted.Add(1)
	return nil
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	return Stats{Rounds: a.rounds.Load(), Accepted: a.accepted.Load(), Refused: a.refused.Load(),
		Failed: a.failed.Load(), Forged: a.forged.Load(), BytesIn: a.bytesIn.Load(), BytesOut: a.bytesOut.Load()}
}

// Close leaves the federation gracefully and stops the agent.
func (a *Agent) Close() {
	a.once.Do(func() {
		if a.nc != nil && a.nc.IsConnected() {
			j := wire.Join{Device: a.cfg.ID, TimeMS: a.stamp(), Nonce: rand.Uint64()}
			wire.SignLeave(a.cfg.Key, &j)
			_ = a.nc.Publish(a.subj.LeavePrefix+a.cfg.ID, wire.Encode(j))
			_ = a.nc.FlushTimeout(time.Second)
		}
		a.halt()
	})
}

// Kill stops the agent abruptly, as a device dying mid-round: no leave
// message, its connection dropped, an update in progress abandoned.
func (a *Agent) Kill() { a.once.Do(a.halt) }

func (a *Agent) halt() {
	a.quit()
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
	}
	a.closeLink()
	a.closeConn()
	a.g.CloseAndWait()
}

func (a *Agent) closeLink() {
	if a.link != nil {
		_ = a.link.Close()
	}
}

func (a *Agent) closeConn() {
	if a.own && a.nc != nil {
		a.nc.Close()
	}
}
