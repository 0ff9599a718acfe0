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
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/federation/internal/wire"
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
	// Modes maps privacy mode names to their device-side transforms.
	Modes  map[string]hook.Client
	Logger *slog.Logger
}

// Stats counts an agent's work.
type Stats struct {
	Rounds, Accepted, Refused, Failed uint64
	BytesIn, BytesOut                 uint64
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
	stop  chan struct{}
	ctx   context.Context // cancelled when the agent stops
	quit  context.CancelFunc
	wg    sync.WaitGroup
	once  sync.Once

	cacheVersion uint64
	cacheDigest  []byte
	cache        model.Model

	rounds, accepted, refused, failed, bytesIn, bytesOut atomic.Uint64
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
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = wire.DefaultChunk
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, quit := context.WithCancel(context.Background())
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "device", cfg.ID),
		subj: wire.For(cfg.Name), tasks: make(chan wire.Task, 1), stop: make(chan struct{}), ctx: ctx, quit: quit}, nil
}

// Start connects, subscribes to the device's task subject, announces the
// device (failing on bad credentials) and starts the heartbeat and worker.
func (a *Agent) Start(ctx context.Context) error {
	if a.cfg.Conn != nil {
		a.nc = a.cfg.Conn
	} else {
		nc, err := nats.Connect(a.cfg.URL, append([]nats.Option{nats.Name("fennec-agent-" + a.cfg.ID), nats.MaxReconnects(-1)}, a.cfg.NATSOptions...)...)
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
	if err := a.join(ctx); err != nil {
		a.closeConn()
		return err
	}
	a.wg.Add(2)
	go a.heartbeat()
	go a.work()
	return nil
}

func (a *Agent) join(ctx context.Context) error {
	j := wire.Join{Device: a.cfg.ID, TimeMS: time.Now().UnixMilli(), Nonce: rand.Uint64()}
	wire.SignJoin(a.cfg.Key, &j)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := a.nc.RequestWithContext(cctx, a.subj.JoinPrefix+a.cfg.ID, wire.Encode(j))
	if err != nil {
		return fmt.Errorf("agent %s: join: %w", a.cfg.ID, err)
	}
	ack, err := wire.DecodeAck(msg.Data)
	if err != nil {
		return fmt.Errorf("agent %s: join reply: %w", a.cfg.ID, err)
	}
	if !ack.OK {
		return fmt.Errorf("agent %s: join refused (%s): %s", a.cfg.ID, ack.Code, ack.Error)
	}
	return nil
}

func (a *Agent) heartbeat() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
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
		a.log.Warn("bad task", "err", err)
		return
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
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
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
	out, err := a.cfg.Trainer.Train(ctx, train.Input{Model: global, Round: t.Round, Settings: t.Settings, Data: a.cfg.Data})
	if err != nil {
		return err
	}
	if err := global.SameLayout(&out.Model); err != nil {
		return fmt.Errorf("trainer output: %w", err)
	}
	body := wire.Body{Model: out.Model, NumExamples: out.NumExamples, Metrics: out.Metrics}
	if t.Mode != "" {
		mc := a.cfg.Modes[t.Mode]
		if mc == nil {
			return fmt.Errorf("round mode %q is not supported by this device", t.Mode)
		}
		info := hook.RoundInfo{Round: t.Round, Version: t.Version, Mode: t.Mode, Device: a.cfg.ID}
		if body.Extra, err = mc.Transform(ctx, info, t.Extra, global, &body.Model, body.NumExamples); err != nil {
			return fmt.Errorf("mode %s: %w", t.Mode, err)
		}
	}
	return a.submit(ctx, t.Round, wire.Encode(body))
}

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
	parts := wire.Split(payload, size)
	dg := wire.Digest(payload)
	for i, p := range parts {
		c := wire.Chunk{Device: a.cfg.ID, Round: round, Seq: uint64(i), Total: uint64(len(parts)),
			Size: uint64(len(payload)), Digest: dg, Data: p}
		if i == len(parts)-1 {
			c.MAC = wire.UpdateMAC(a.cfg.Key, a.cfg.ID, round, dg)
		}
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
		Failed: a.failed.Load(), BytesIn: a.bytesIn.Load(), BytesOut: a.bytesOut.Load()}
}

// Close leaves the federation gracefully and stops the agent.
func (a *Agent) Close() {
	a.once.Do(func() {
		if a.nc != nil && a.nc.IsConnected() {
			j := wire.Join{Device: a.cfg.ID, TimeMS: time.Now().UnixMilli(), Nonce: rand.Uint64()}
			wire.SignJoin(a.cfg.Key, &j)
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
	close(a.stop)
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
	}
	a.closeConn()
	a.wg.Wait()
}

func (a *Agent) closeConn() {
	if a.own && a.nc != nil {
		a.nc.Close()
	}
}
