package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Desired is a group's desired state, the value of key GROUP in
// BucketDesired. The operator's `fennec deploy` writes it; agents watch it.
type Desired struct {
	// ID names this rollout; devices echo it in their reports so that
	// progress counts answers to this rollout only.
	ID string `json:"id"`
	// Bundle is the SHA-256 of the bundle's bytes, signatures included: its
	// name in BucketBundles. Digest is the content digest (manifest and
	// Wasm): re-signing a bundle (say, adding an operator's rollback
	// signature) changes Bundle, not Digest.
	Bundle   string    `json:"bundle"`
	Digest   string    `json:"digest"`
	Module   string    `json:"module"`
	Version  string    `json:"version"`
	Canary   int       `json:"canary"` // percent of the group's devices that install it, 1..100
	Operator string    `json:"operator,omitempty"`
	Time     time.Time `json:"time"`
}

// InCanary reports whether device is among the Canary percent of devices
// that install d. The choice is a hash of the digest and the device, so it
// is stable for a rollout, differs between rollouts, and raising the
// percentage only adds devices.
func (d Desired) InCanary(device string) bool {
	if d.Canary >= 100 {
		return true
	}
	h := sha256.Sum256([]byte(d.Digest + "|" + device))
	return int(binary.BigEndian.Uint64(h[:8])%100) < d.Canary
}

// Device states reported in DeviceStatus.State.
const (
	StateRunning   = "running"     // runs the desired version (or the only one it has)
	StateUpdating  = "updating"    // fetching, verifying, compiling, health-checking
	StateRefused   = "refused"     // refused the desired bundle (see Reason)
	StateFailed    = "failed"      // the desired bundle failed to compile or its health check
	StateRolledBk  = "rolled-back" // the desired version crash-looped; runs the previous one
	StateNotCanary = "waiting"     // not in this rollout's canary set
	StateIdle      = "idle"        // nothing installed yet
)

// DeviceStatus is a device's report, the value of key GROUP.DEVICE in
// BucketStatus.
type DeviceStatus struct {
	Device   string    `json:"device"`
	Group    string    `json:"group"`
	Module   string    `json:"module,omitempty"`
	Version  string    `json:"version,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	Previous string    `json:"previous,omitempty"` // previous good version
	Healthy  bool      `json:"healthy"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Rollout  string    `json:"rollout,omitempty"` // ID of the desired state this report answers
	LastSeen time.Time `json:"last_seen"`
}

const maxStatusJSON = 16 << 10

// EnsureBuckets creates the deploy buckets if they are missing.
func EnsureBuckets(ctx context.Context, js jetstream.JetStream) error {
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketDesired, History: 5, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("deploy: bucket %s: %w", BucketDesired, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketStatus, History: 1, Storage: jetstream.FileStorage, MaxValueSize: maxStatusJSON}); err != nil {
		return fmt.Errorf("deploy: bucket %s: %w", BucketStatus, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BucketBundles, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("deploy: bucket %s: %w", BucketBundles, err)
	}
	return nil
}

// Publish stores a bundle in the hub's object store and makes it the
// group's desired state for canary percent (1..100) of its devices. The
// bundle is checked for shape here; devices verify signatures and version
// order themselves, and an operator may check with a trust file first
// (`fennec deploy --trust`).
func Publish(ctx context.Context, nc *nats.Conn, raw []byte, group string, canary int, operator string) (Desired, error) {
	if !validName(group) {
		return Desired{}, fmt.Errorf("group %q: want 1-64 characters of A-Z a-z 0-9 _ -", group)
	}
	if canary < 1 || canary > 100 {
		return Desired{}, fmt.Errorf("canary %d%%: want 1..100", canary)
	}
	b, err := DecodeBundle(raw, Limits{})
	if err != nil {
		return Desired{}, err
	}
	if !b.contentMatches() {
		return Desired{}, &Refused{ReasonTampered, "the bundle's content does not match its digest"}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Desired{}, err
	}
	// The server's administrator creates the buckets where access is
	// controlled (operators may not create streams); on an open server
	// the first deployment creates them.
	obs, err := js.ObjectStore(ctx, BucketBundles)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if err = EnsureBuckets(ctx, js); err == nil {
			obs, err = js.ObjectStore(ctx, BucketBundles)
		}
	}
	if err != nil {
		return Desired{}, err
	}
	bundleID := sha256Hex(raw)
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: bundleID, Description: b.Name() + " " + b.Version()}, bytes.NewReader(raw)); err != nil {
		return Desired{}, fmt.Errorf("deploy: upload bundle: %w", err)
	}
	kv, err := js.KeyValue(ctx, BucketDesired)
	if err != nil {
		return Desired{}, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Desired{}, err
	}
	d := Desired{ID: hex.EncodeToString(id[:]), Bundle: bundleID, Digest: b.Digest(), Module: b.Name(), Version: b.Version(), Canary: canary, Operator: operator, Time: time.Now().UTC()}
	val, _ := json.Marshal(d)
	if _, err := kv.Put(ctx, group, val); err != nil {
		return Desired{}, fmt.Errorf("deploy: set desired state of %s: %w", group, err)
	}
	return d, nil
}

// GroupState is a group's desired state and its devices' reports.
type GroupState struct {
	Group   string
	Desired *Desired
	Devices []DeviceStatus
}

// Progress counts a rollout: devices selected by the canary, how many run
// the desired version, how many refused, failed or rolled back.
func (g GroupState) Progress() (selected, done, failed int) {
	if g.Desired == nil {
		return 0, 0, 0
	}
	for _, d := range g.Devices {
		if !g.Desired.InCanary(d.Device) {
			continue
		}
		selected++
		switch {
		case d.Digest == g.Desired.Digest && d.State == StateRunning:
			done++
		case d.Rollout == g.Desired.ID && (d.State == StateRefused || d.State == StateFailed || d.State == StateRolledBk):
			failed++
		}
	}
	return selected, done, failed
}

// Status reads every group's desired state and device reports (group ""
// means all groups).
func Status(ctx context.Context, nc *nats.Conn, group string) ([]GroupState, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	groups := map[string]*GroupState{}
	get := func(g string) *GroupState {
		if groups[g] == nil {
			groups[g] = &GroupState{Group: g}
		}
		return groups[g]
	}
	if kv, err := js.KeyValue(ctx, BucketDesired); err == nil {
		keys, err := kv.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, err
		}
		for _, k := range keys {
			if group != "" && k != group {
				continue
			}
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			var d Desired
			if json.Unmarshal(e.Value(), &d) == nil {
				get(k).Desired = &d
			}
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	if kv, err := js.KeyValue(ctx, BucketStatus); err == nil {
		keys, err := kv.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, err
		}
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			s, err := ParseDeviceStatus(e.Value())
			if err != nil || s.Group+"."+s.Device != k || (group != "" && s.Group != group) {
				continue // a malformed or mislabelled report is not shown as another device's
			}
			get(s.Group).Devices = append(get(s.Group).Devices, s)
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	var out []GroupState
	for _, g := range groups {
		sort.Slice(g.Devices, func(i, j int) bool { return g.Devices[i].Device < g.Devices[j].Device })
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// ParseDeviceStatus decodes a device's report strictly.
func ParseDeviceStatus(b []byte) (DeviceStatus, error) {
	var s DeviceStatus
	if len(b) > maxStatusJSON {
		return s, fmt.Errorf("status of %d bytes exceeds %d", len(b), maxStatusJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, err
	}
	if dec.More() {
		return s, errors.New("trailing data after status")
	}
	if !validName(s.Device) || !validName(s.Group) {
		return s, errors.New("status with an invalid device or group name")
	}
	return s, nil
}

// ParseDesired decodes a group's desired state strictly.
func ParseDesired(b []byte) (Desired, error) {
	var d Desired
	if len(b) > maxStatusJSON {
		return d, fmt.Errorf("desired state of %d bytes exceeds %d", len(b), maxStatusJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, err
	}
	if dec.More() {
		return d, errors.New("trailing data after desired state")
	}
	if !validDigest(d.Digest) || !validDigest(d.Bundle) {
		return d, fmt.Errorf("desired state: invalid digest %q or bundle %q", d.Digest, d.Bundle)
	}
	if d.ID == "" || len(d.ID) > 64 || !validName(d.ID) {
		return d, fmt.Errorf("desired state: invalid rollout id %q", d.ID)
	}
	if d.Canary < 1 || d.Canary > 100 {
		return d, fmt.Errorf("desired state: canary %d outside 1..100", d.Canary)
	}
	return d, nil
}

// AgentConfig configures a device's rollout agent.
type AgentConfig struct {
	Conn     *nats.Conn // connected with the device's credentials (ConnectOptions)
	Device   string
	Group    string
	Deployer *Deployer // started
	// Heartbeat is how often the agent reports its status (default 5s).
	Heartbeat time.Duration
	// MaxBundle bounds a fetched bundle (default 64 MiB).
	MaxBundle int
	// Domain is the JetStream domain of the hub's buckets when Conn is to
	// a device's own leaf server ("hub", internal/leaf.HubDomain); ""
	// when Conn is to the hub's server itself.
	Domain string
	// Logger receives the agent's events (slog.Default() when nil).
	Logger *slog.Logger
}

// Agent applies its group's desired state to a device and reports status.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger
	js  jetstream.JetStream

	// mu guards the fields below; it is never held while calling the
	// Deployer or the hub, nor taken under a Deployer lock (Notify runs
	// from OnEvent, which the Deployer calls with no lock held).
	mu      sync.Mutex
	state   string
	reason  string
	rollout string
	tried   map[string]string // bundle -> state of a refused or failed attempt
	// badDigest lists content digests that crash-looped here.
	badDigest map[string]bool
	kick      chan struct{}

	// testHookWatchDone, when set by a test, runs as watch returns.
	testHookWatchDone func()
}

// NewAgent validates cfg.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Conn == nil || cfg.Deployer == nil {
		return nil, errors.New("deploy: AgentConfig needs Conn and Deployer")
	}
	if !validName(cfg.Device) || !validName(cfg.Group) {
		return nil, fmt.Errorf("deploy: device %q / group %q: want 1-64 characters of A-Z a-z 0-9 _ -", cfg.Device, cfg.Group)
	}
	if err := errors.Join(
		config.Default("deploy: AgentConfig.Heartbeat", &cfg.Heartbeat, 5*time.Second),
		config.Default("deploy: AgentConfig.MaxBundle", &cfg.MaxBundle, 64<<20),
	); err != nil {
		return nil, err
	}
	cfg.Logger = config.Logger(cfg.Logger)
	js, err := jetstream.New(cfg.Conn)
	if cfg.Domain != "" {
		js, err = jetstream.NewWithDomain(cfg.Conn, cfg.Domain)
	}
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, js: js, log: cfg.Logger.With("device", cfg.Device, "group", cfg.Group),
		state: StateIdle, tried: map[string]string{}, badDigest: map[string]bool{}, kick: make(chan struct{}, 1)}
	if _, ok := cfg.Deployer.Current(); ok {
		a.state = StateRunning
	}
	return a, nil
}

// Notify makes the agent report its status now (e.g. after a Deployer
// event such as a rollback). It never blocks.
func (a *Agent) Notify(e Event) {
	a.mu.Lock()
	if e.Kind == EventRollback {
		a.state, a.reason = StateRolledBk, e.Reason
		a.badDigest[e.Version.Digest] = true
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run watches the group's desired state until ctx ends, installing each new
// version the device is selected for and reporting status on every change
// and every Heartbeat. It keeps running the current version while the hub
// is unreachable.
//
// Run starts one goroutine (watch) and returns only after it has exited.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var g routines.Group
	defer g.CloseAndWait() // runs after cancel: watch sees ctx end
	defer cancel()
	updates := make(chan Desired, 1)
	g.Go(func() { a.watch(ctx, updates) })
	tick := time.NewTicker(a.cfg.Heartbeat)
	defer tick.Stop()
	a.report(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d := <-updates:
			a.apply(ctx, d)
			a.report(ctx)
		case <-a.kick:
			a.report(ctx)
		case <-tick.C:
			a.report(ctx)
		}
	}
}

// watch follows the group's key, retrying while the bucket does not exist
// or the connection is down, and passes on the latest desired state.
func (a *Agent) watch(ctx context.Context, out chan Desired) {
	if a.testHookWatchDone != nil {
		defer a.testHookWatchDone()
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		kv, err := a.js.KeyValue(ctx, BucketDesired)
		if err == nil {
			var w jetstream.KeyWatcher
			w, err = kv.Watch(ctx, a.cfg.Group)
			if err == nil {
				backoff = 100 * time.Millisecond
				a.follow(ctx, w, out)
				w.Stop()
				continue
			}
		}
		a.log.Debug("waiting for the desired-state bucket", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (a *Agent) follow(ctx context.Context, w jetstream.KeyWatcher, out chan Desired) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			d, err := ParseDesired(e.Value())
			if err != nil {
				a.log.Warn("ignoring malformed desired state", "err", err)
				continue
			}
			select { // keep only the latest
			case <-out:
			default:
			}
			out <- d
		}
	}
}

func (a *Agent) set(state, reason, rollout string) {
	a.mu.Lock()
	a.state, a.reason, a.rollout = state, reason, rollout
	a.mu.Unlock()
}

// apply brings the device to d.
func (a *Agent) apply(ctx context.Context, d Desired) {
	if cur, ok := a.cfg.Deployer.Current(); ok && cur.Digest == d.Digest {
		a.set(StateRunning, "", d.ID)
		return
	}
	if !d.InCanary(a.cfg.Device) {
		a.set(StateNotCanary, fmt.Sprintf("not in the %d%% canary of %s %s", d.Canary, d.Module, d.Version), d.ID)
		return
	}
	a.mu.Lock()
	prev, tried := a.tried[d.Bundle]
	crashed := a.badDigest[d.Digest]
	a.mu.Unlock()
	switch {
	case crashed:
		a.set(StateRolledBk, fmt.Sprintf("%s %s crash-looped on this device and was rolled back", d.Module, d.Version), d.ID)
		return
	case tried:
		a.set(prev, "already tried: "+a.reasonOr(""), d.ID)
		return
	}
	a.set(StateUpdating, fmt.Sprintf("installing %s %s", d.Module, d.Version), d.ID)
	a.report(ctx)
	raw, err := a.fetch(ctx, d.Bundle)
	if err != nil {
		// A fetch failure is not the bundle's fault: try again next time.
		a.set(StateFailed, "fetch: "+err.Error(), d.ID)
		return
	}
	_, err = a.cfg.Deployer.Install(ctx, raw, orUnknown(d.Operator)+" (rollout "+d.ID+")")
	state := StateRunning
	reason := ""
	if err != nil {
		reason = err.Error()
		state = StateFailed
		if _, ok := IsRefused(err); ok {
			state = StateRefused
		}
		a.mu.Lock()
		a.tried[d.Bundle] = state
		a.mu.Unlock()
	}
	a.set(state, reason, d.ID)
}

func (a *Agent) reasonOr(def string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reason != "" {
		return strings.TrimPrefix(a.reason, "already tried: ")
	}
	return def
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown operator"
	}
	return s
}

func (a *Agent) fetch(ctx context.Context, name string) ([]byte, error) {
	obs, err := a.js.ObjectStore(ctx, BucketBundles)
	if err != nil {
		return nil, err
	}
	r, err := obs.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if info, err := r.Info(); err == nil && info.Size > uint64(a.cfg.MaxBundle) {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d", info.Size, a.cfg.MaxBundle)
	}
	raw, err := io.ReadAll(io.LimitReader(r, int64(a.cfg.MaxBundle)+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > a.cfg.MaxBundle {
		return nil, fmt.Errorf("bundle exceeds %d bytes", a.cfg.MaxBundle)
	}
	if sha256Hex(raw) != name {
		return nil, errors.New("fetched bytes do not match the bundle's name (sha256)")
	}
	return raw, nil
}

// Status returns the report the agent would send now.
func (a *Agent) Status() DeviceStatus {
	s := DeviceStatus{Device: a.cfg.Device, Group: a.cfg.Group, LastSeen: time.Now().UTC()}
	if cur, ok := a.cfg.Deployer.Current(); ok {
		s.Module, s.Version, s.Digest = cur.Name, cur.Version, cur.Digest
	}
	if p := a.cfg.Deployer.cfg.Store.State().Previous; p != nil {
		s.Previous = p.Version
	}
	s.Healthy, _ = a.cfg.Deployer.Healthy()
	a.mu.Lock()
	s.State, s.Reason, s.Rollout = a.state, a.reason, a.rollout
	a.mu.Unlock()
	if s.State == StateIdle && s.Digest != "" {
		s.State = StateRunning
	}
	if len(s.Reason) > 2048 {
		s.Reason = s.Reason[:2048] + "…"
	}
	return s
}

func (a *Agent) report(ctx context.Context) {
	val, _ := json.Marshal(a.Status())
	kv, err := a.js.KeyValue(ctx, BucketStatus)
	if err == nil {
		_, err = kv.Put(ctx, a.cfg.Group+"."+a.cfg.Device, val)
	}
	if err != nil && ctx.Err() == nil {
		a.log.Debug("status report failed", "err", err)
	}
}
