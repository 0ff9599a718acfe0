package hook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

// A mode whose protocol needs more than the task -> update exchange of a
// round (secure aggregation's key agreement and unmasking, threshold HE's
// key generation and collective decryption) runs extra request/reply steps
// between the hub and the round's devices over the federation's NATS
// connection:
//
//	fennec.N.mode.<device>   hub -> device request: Step, reply StepReply
//
// Both directions are authenticated with the device key the update MACs
// use (wire.DeviceKey): the request's MAC covers ("mode-step" | device |
// round | step | sha256(data)), the reply's ("mode-reply" | device | round |
// step | sha256(data) | error), so a message cannot be replayed into another
// round, step or device, and neither side accepts a forged one. The mode's
// state machine (privacy/secagg, privacy/he) refuses a repeated step.
//
// Steps run inside HubTransform.Prepare (before the task is published) and
// HubTransform.PreAggregate (after the updates are in), so the hub's round loop is
// unchanged: a round is Prepare [steps...] -> task -> updates ->
// PreAggregate [steps...] -> strategy -> PostAggregate.

// MaxStepBytes bounds one step message's data (requests and replies); the
// NATS server's max payload must exceed it by the framing (the embedded
// hub allows 8 MiB).
const MaxStepBytes = 7 << 20

// Step is a hub -> device request.
type Step struct {
	Device string `cbor:"device"`
	Round  uint64 `cbor:"round"`
	Step   string `cbor:"step"`
	Data   []byte `cbor:"data"`
	MAC    []byte `cbor:"mac"`
}

// StepReply is a device's answer.
type StepReply struct {
	Device string `cbor:"device"`
	Round  uint64 `cbor:"round"`
	Step   string `cbor:"step"`
	Data   []byte `cbor:"data,omitempty"`
	Error  string `cbor:"error,omitempty"`
	MAC    []byte `cbor:"mac"`
}

// StepSubject is the subject device id listens on in federation name.
func StepSubject(name, device string) string { return "fennec." + name + ".mode." + device }

func linkMAC(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	var l [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(l[:], uint64(len(p)))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func u64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }

func digest(b []byte) []byte { d := sha256.Sum256(b); return d[:] }

func stepMAC(key []byte, s *Step) []byte {
	return linkMAC(key, []byte("mode-step"), []byte(s.Device), u64(s.Round), []byte(s.Step), digest(s.Data))
}

func replyMAC(key []byte, r *StepReply) []byte {
	return linkMAC(key, []byte("mode-reply"), []byte(r.Device), u64(r.Round), []byte(r.Step), digest(r.Data), []byte(r.Error))
}

// checkName accepts subject tokens (letters, digits, '-', '_'); steps may
// also contain '.'.
func checkName(what, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%s: %d bytes, want 1..128", what, len(s))
	}
	step := strings.HasSuffix(what, "step")
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || step && r == '.') {
			return fmt.Errorf("%s %q: only letters, digits, '-' and '_' allowed", what, s)
		}
	}
	return nil
}

// DecodeStep decodes and checks the framing of a Step from untrusted bytes.
func DecodeStep(b []byte) (Step, error) {
	var s Step
	if len(b) > MaxStepBytes+4096 {
		return s, fmt.Errorf("mode step: %d bytes", len(b))
	}
	if err := model.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("mode step: %w", err)
	}
	if err := checkName("mode step: device", s.Device); err != nil {
		return s, err
	}
	if err := checkName("mode step: step", s.Step); err != nil {
		return s, err
	}
	if len(s.Data) > MaxStepBytes || len(s.MAC) != sha256.Size {
		return s, fmt.Errorf("mode step: %d data bytes, %d mac bytes", len(s.Data), len(s.MAC))
	}
	return s, nil
}

// DecodeStepReply decodes and checks the framing of a StepReply.
func DecodeStepReply(b []byte) (StepReply, error) {
	var r StepReply
	if len(b) > MaxStepBytes+4096 {
		return r, fmt.Errorf("mode reply: %d bytes", len(b))
	}
	if err := model.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("mode reply: %w", err)
	}
	if err := checkName("mode reply: device", r.Device); err != nil {
		return r, err
	}
	if err := checkName("mode reply: step", r.Step); err != nil {
		return r, err
	}
	if len(r.Data) > MaxStepBytes || len(r.Error) > 4096 || len(r.MAC) != sha256.Size {
		return r, fmt.Errorf("mode reply: %d data bytes, %d error bytes, %d mac bytes", len(r.Data), len(r.Error), len(r.MAC))
	}
	return r, nil
}

// Exchanger runs one step of a mode's protocol with a set of devices. The
// NATS implementation is HubLink; a mode's hub side receives one.
type Exchanger interface {
	// Exchange sends reqs[device] to every listed device as step of round
	// and returns the verified replies that arrive within timeout. Devices
	// that do not answer in time, answer with an error or whose reply does
	// not verify are absent from replies and present in errs: the caller's
	// protocol treats them as dropped.
	Exchange(ctx context.Context, round uint64, step string, reqs map[string][]byte, timeout time.Duration) (replies map[string][]byte, errs map[string]error)
}

// HubLink is the hub's end of the mode steps, over NATS.
type HubLink struct {
	nc      *nats.Conn
	name    string
	key     func(device string) ([]byte, bool)
	out, in atomic.Uint64
}

// NewHubLink returns the hub's link for federation name. key returns a
// device's credential key (wire.DeviceKey(secret, id), as the hub's own
// Config.Secret/Keys give it).
func NewHubLink(nc *nats.Conn, name string, key func(device string) ([]byte, bool)) (*HubLink, error) {
	if nc == nil || key == nil {
		return nil, errors.New("hook: hub link needs a NATS connection and a key function")
	}
	if err := checkName("hook: federation name", name); err != nil {
		return nil, err
	}
	return &HubLink{nc: nc, name: name, key: key}, nil
}

// Bytes returns the step bytes sent and received so far.
func (l *HubLink) Bytes() (out, in uint64) { return l.out.Load(), l.in.Load() }

// Exchange implements Exchanger. At most 64 requests are in flight at once.
func (l *HubLink) Exchange(ctx context.Context, round uint64, step string, reqs map[string][]byte, timeout time.Duration) (map[string][]byte, map[string]error) {
	replies, errs := map[string][]byte{}, map[string]error{}
	if err := checkName("hook: step", step); err != nil {
		for d := range reqs {
			errs[d] = err
		}
		return replies, errs
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for dev, data := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs[dev] = ctx.Err()
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			b, err := l.ask(ctx, round, step, dev, data)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[dev] = err
			} else {
				replies[dev] = b
			}
		}()
	}
	wg.Wait()
	return replies, errs
}

func (l *HubLink) ask(ctx context.Context, round uint64, step, dev string, data []byte) ([]byte, error) {
	key, ok := l.key(dev)
	if !ok {
		return nil, fmt.Errorf("device %s: no key", dev)
	}
	if len(data) > MaxStepBytes {
		return nil, fmt.Errorf("device %s: step %s request of %d bytes exceeds %d", dev, step, len(data), MaxStepBytes)
	}
	s := Step{Device: dev, Round: round, Step: step, Data: data}
	s.MAC = stepMAC(key, &s)
	b, err := model.Marshal(s)
	if err != nil {
		return nil, err
	}
	if mp := l.nc.MaxPayload(); mp > 0 && int64(len(b)) > mp {
		return nil, fmt.Errorf("device %s: step %s message of %d bytes exceeds the server's max payload %d", dev, step, len(b), mp)
	}
	l.out.Add(uint64(len(b)))
	msg, err := l.nc.RequestWithContext(ctx, StepSubject(l.name, dev), b)
	if err != nil {
		return nil, fmt.Errorf("device %s: step %s: %w", dev, step, err)
	}
	l.in.Add(uint64(len(msg.Data)))
	r, err := DecodeStepReply(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	if r.Device != dev || r.Round != round || r.Step != step || !hmac.Equal(replyMAC(key, &r), r.MAC) {
		return nil, fmt.Errorf("device %s: step %s reply does not verify", dev, step)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("device %s: step %s: %s", dev, step, r.Error)
	}
	return r.Data, nil
}

// Handler answers one step on a device; an error is sent back to the hub.
type Handler func(ctx context.Context, round uint64, step string, data []byte) ([]byte, error)

// DeviceLink is a device's end of the mode steps.
type DeviceLink struct {
	nc      *nats.Conn
	sub     *nats.Subscription
	id      string
	key     []byte
	h       Handler
	timeout time.Duration
	in, out atomic.Uint64
	ctx     context.Context
	cancel  context.CancelFunc
}

// ServeDevice subscribes device id of federation name to its step subject
// and answers verified steps with h (one at a time, each bounded by
// timeout; 0 = 2 minutes). Requests that do not verify get no answer.
func ServeDevice(nc *nats.Conn, name, id string, key []byte, h Handler, timeout time.Duration) (*DeviceLink, error) {
	if nc == nil || h == nil || len(key) < 16 {
		return nil, errors.New("hook: device link needs a NATS connection, a handler and a key of >= 16 bytes")
	}
	if err := checkName("hook: federation name", name); err != nil {
		return nil, err
	}
	if err := checkName("hook: device id", id); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &DeviceLink{nc: nc, id: id, key: key, h: h, timeout: timeout, ctx: ctx, cancel: cancel}
	sub, err := nc.Subscribe(StepSubject(name, id), d.serve)
	if err != nil {
		cancel()
		return nil, err
	}
	d.sub = sub
	// Make sure the server has the subscription before the hub may ask.
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		cancel()
		return nil, fmt.Errorf("hook: device link: %w", err)
	}
	return d, nil
}

// Bytes returns the step bytes received and sent so far.
func (d *DeviceLink) Bytes() (in, out uint64) { return d.in.Load(), d.out.Load() }

// Close unsubscribes and cancels a step in progress.
func (d *DeviceLink) Close() error {
	d.cancel()
	return d.sub.Unsubscribe()
}

func (d *DeviceLink) serve(m *nats.Msg) {
	d.in.Add(uint64(len(m.Data)))
	s, err := DecodeStep(m.Data)
	if err != nil || s.Device != d.id || !hmac.Equal(stepMAC(d.key, &s), s.MAC) || m.Reply == "" {
		return // unauthenticated: no answer, no oracle
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
	defer cancel()
	r := StepReply{Device: d.id, Round: s.Round, Step: s.Step}
	out, err := d.h(ctx, s.Round, s.Step, s.Data)
	switch {
	case err != nil:
		r.Error = err.Error()
		if len(r.Error) > 4096 {
			r.Error = r.Error[:4096]
		}
	case len(out) > MaxStepBytes:
		r.Error = fmt.Sprintf("reply of %d bytes exceeds %d", len(out), MaxStepBytes)
	default:
		r.Data = out
	}
	r.MAC = replyMAC(d.key, &r)
	b, err := model.Marshal(r)
	if err != nil {
		return
	}
	d.out.Add(uint64(len(b)))
	_ = m.Respond(b)
}
