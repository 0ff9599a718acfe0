package dashboard

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/routines"
)

// Limits of what the dashboard keeps per device and group.
const (
	deviceEvents  = 50  // recent events per device
	fleetEvents   = 500 // recent events of the whole fleet
	groupHistory  = 20  // desired states kept per group
	groupProblems = 100 // refusals, failures and rollbacks listed per group
	listedIDs     = 20  // straggler ids listed per round
)

// Event is one thing that happened to a device or a group.
type Event struct {
	Time   time.Time `json:"time"`
	Device string    `json:"device,omitempty"`
	Group  string    `json:"group,omitempty"`
	// Kind: online, offline, state (a rollout report changed state),
	// deploy (an operator set a group's desired state), straggler,
	// rejected (the hub refused the device's update).
	Kind   string `json:"kind"`
	Who    string `json:"who,omitempty"` // the actor: the device, an operator
	What   string `json:"what"`
	Reason string `json:"reason,omitempty"`
}

// DeviceView is a device as the API shows it.
type DeviceView struct {
	ID       string    `json:"id"`
	Group    string    `json:"group,omitempty"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Module, Version, Digest: the module the device runs (its rollout
	// report); State and Reason the rollout agent's state.
	Module   string `json:"module,omitempty"`
	Version  string `json:"version,omitempty"`
	Digest   string `json:"digest,omitempty"`
	Previous string `json:"previous,omitempty"`
	State    string `json:"state,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Rollout  string `json:"rollout,omitempty"` // the rollout id its report answers
	Healthy  *bool  `json:"healthy,omitempty"`
	// ModelVersion is the global model version the device last trained
	// (its last round's), LastRound that round, Rounds how many it took part in.
	ModelVersion uint64 `json:"model_version,omitempty"`
	LastRound    uint64 `json:"last_round,omitempty"`
	Rounds       int    `json:"rounds"`
	// Uplink is what the hub's uplink stream knows of the device's
	// offline outbox (devices with a leaf node, fennec agent --leaf):
	// messages delivered, messages it knew to be waiting at its last
	// contact, and when that was. JetStream learns of messages queued
	// while the link is down only when it returns: an offline device
	// shows its backlog as of when it left, and its growing age.
	Uplink bool `json:"uplink,omitempty"`
	// UplinkDelivered, UplinkLag, UplinkContact, UplinkError: see Uplink.
	UplinkDelivered uint64    `json:"uplink_delivered,omitempty"`
	UplinkLag       uint64    `json:"uplink_lag,omitempty"`
	UplinkContact   time.Time `json:"uplink_contact,omitzero"`
	UplinkError     string    `json:"uplink_error,omitempty"`
}

type device struct {
	DeviceView
	hubSeen    time.Time // last heard by the hub
	statusSeen time.Time // when its last rollout report arrived here
	events     []Event
}

// RoundView is one round as the API shows it.
type RoundView struct {
	Round     uint64 `json:"round"`
	Version   uint64 `json:"version"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	Sampled   int    `json:"sampled"`
	Available int    `json:"available"`
	// Participants: updates that counted; Dropouts: sampled devices whose
	// update did not (stragglers and rejected); Stragglers: past the deadline.
	Participants int      `json:"participants"`
	Dropouts     int      `json:"dropouts"`
	Stragglers   int      `json:"stragglers"`
	StragglerIDs []string `json:"straggler_ids,omitempty"` // the first few
	Rejected     int      `json:"rejected"`
	Refused      int      `json:"refused"`
	BytesIn      uint64   `json:"bytes_in"`
	BytesOut     uint64   `json:"bytes_out"`
	DurationMS   float64  `json:"duration_ms"`
	// Held-out metrics of the hub's evaluation (EvalLoss...), when it has one.
	HasEval  bool     `json:"has_eval"`
	Loss     *float64 `json:"loss,omitempty"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	AUROC    *float64 `json:"auroc,omitempty"`
	// DeviceLoss: the devices' example-weighted training loss (plain rounds).
	DeviceLoss *float64 `json:"device_loss,omitempty"`
	// Epsilon spent after this round (DP modes).
	Epsilon *float64  `json:"epsilon,omitempty"`
	Time    time.Time `json:"time"`
}

// GroupView is a rollout group as the API shows it.
type GroupView struct {
	Group   string          `json:"group"`
	Desired *deploy.Desired `json:"desired,omitempty"`
	// Phase: none (no desired state), canary (below 100%), rolling (100%,
	// not every device on it), complete, failing (some refused, failed or
	// rolled back).
	Phase    string         `json:"phase"`
	Devices  int            `json:"devices"`
	Selected int            `json:"selected"` // in the canary
	Done     int            `json:"done"`     // running the desired version
	Failed   int            `json:"failed"`   // refused, failed or rolled back
	Versions map[string]int `json:"versions"` // actual versions and their devices
	States   map[string]int `json:"states"`
	// History: the group's desired states, newest first (who, when, canary).
	History []deploy.Desired `json:"history,omitempty"`
	// Problems: devices that refused, failed or rolled back this rollout, with why.
	Problems []Event `json:"problems,omitempty"`
}

type group struct {
	desired *deploy.Desired
	history []deploy.Desired
}

// state is what the dashboard knows, under mu.
type state struct {
	cfg *Config
	bc  *broadcaster

	mu      sync.Mutex
	devices map[string]*device
	ignored int // heartbeats, reports and rounds of devices beyond MaxDevices, dropped
	groups  map[string]*group
	rounds  []RoundView     // sorted by round id
	live    map[uint64]bool // rounds that came through round, until the history is read
	// histLast is the last round read from the hub's history.
	histLast    uint64
	historyErrs int // failed reads of the history (run's goroutine only)
	privacy     *federation.ModeStatus
	events      []Event
	rollout     bool // the rollout buckets are there
}

func newState(cfg *Config, bc *broadcaster) *state {
	s := &state{cfg: cfg, bc: bc, devices: map[string]*device{}, groups: map[string]*group{}, live: map[uint64]bool{}}
	if cfg.Access != nil {
		for _, a := range cfg.Access.Devices {
			s.devices[a.ID] = &device{DeviceView: DeviceView{ID: a.ID, Group: a.Group}}
		}
	}
	return s
}

// deviceLocked returns id's entry, creating it unless MaxDevices are tracked.
func (s *state) deviceLocked(id string) *device {
	if d := s.devices[id]; d != nil {
		return d
	}
	if len(s.devices) >= s.cfg.MaxDevices {
		s.ignored++
		return nil
	}
	d := &device{DeviceView: DeviceView{ID: id}}
	s.devices[id] = d
	return d
}

func appendRing[T any](ring []T, v T, n int) []T {
	if len(ring) >= n {
		copy(ring, ring[1:])
		ring = ring[:n-1]
	}
	return append(ring, v)
}

func (s *state) eventLocked(d *device, e Event) {
	if d != nil {
		d.events = appendRing(d.events, e, deviceEvents)
	}
	s.events = appendRing(s.events, e, fleetEvents)
}

// run polls the hub's heartbeats and watches the rollout buckets until ctx ends.
func (s *state) run(ctx context.Context, g *routines.Group) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	watching, history := false, false
	for {
		if !history {
			history = s.loadHistory(ctx)
		}
		if !watching {
			watching = s.watch(ctx, g)
		}
		s.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll takes the hub's heartbeats and turns devices online or offline,
// and reads the devices' uplink state.
func (s *state) poll(ctx context.Context) {
	seen := s.cfg.Hub.Seen()
	ups := s.uplinks(ctx)
	now := s.cfg.Now()
	var changed []DeviceView
	s.mu.Lock()
	for id, at := range seen {
		if d := s.deviceLocked(id); d != nil && at.After(d.hubSeen) {
			d.hubSeen = at
		}
	}
	for id, u := range ups {
		d := s.deviceLocked(id)
		if d == nil {
			continue
		}
		before := d.DeviceView
		d.Uplink, d.UplinkDelivered, d.UplinkLag, d.UplinkError = true, u.Delivered, u.Lag, u.Err
		if u.Idle >= 0 {
			// Whole seconds, so that the contact time does not move
			// with every poll's rounding.
			d.UplinkContact = now.Add(-u.Idle).UTC().Truncate(time.Second)
		}
		if !sameView(before, d.DeviceView) {
			changed = append(changed, d.DeviceView)
		}
	}
	for _, d := range s.devices {
		_, heard := seen[d.ID]
		online := heard || (!d.statusSeen.IsZero() && now.Sub(d.statusSeen) <= s.cfg.StatusTTL)
		last := d.hubSeen
		if d.statusSeen.After(last) {
			last = d.statusSeen
		}
		if !last.IsZero() {
			d.LastSeen = last.UTC()
		}
		if online != d.Online {
			d.Online = online
			kind, what := "offline", "went offline"
			if online {
				kind, what = "online", "came online"
			}
			s.eventLocked(d, Event{Time: now.UTC(), Device: d.ID, Group: d.Group, Kind: kind, Who: d.ID, What: what})
			changed = append(changed, d.DeviceView)
		}
	}
	s.mu.Unlock()
	for _, v := range changed {
		s.bc.publish("device", v)
	}
}

// watch starts watching the rollout buckets; false when the hub serves
// no rollouts (yet).
func (s *state) watch(ctx context.Context, g *routines.Group) bool {
	nc := s.cfg.Hub.Conn()
	if nc == nil {
		return false
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desired, err := js.KeyValue(c, deploy.BucketDesired)
	if err != nil {
		return false
	}
	status, err := js.KeyValue(c, deploy.BucketStatus)
	if err != nil {
		return false
	}
	dw, err := desired.WatchAll(ctx, jetstream.IncludeHistory())
	if err != nil {
		return false
	}
	sw, err := status.WatchAll(ctx)
	if err != nil {
		_ = dw.Stop()
		return false
	}
	s.mu.Lock()
	s.rollout = true
	s.mu.Unlock()
	follow := func(w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil && e.Operation() == jetstream.KeyValuePut {
					fn(e)
				}
			}
		}
	}
	g.Go(func() { follow(dw, s.onDesired) })
	g.Go(func() { follow(sw, s.onStatus) })
	return true
}

func (s *state) onDesired(e jetstream.KeyValueEntry) {
	d, err := deploy.ParseDesired(e.Value())
	if err != nil || !validName(e.Key()) {
		s.cfg.Logger.Warn("dashboard: a malformed desired state is not shown", "group", e.Key(), "err", err)
		return
	}
	s.mu.Lock()
	gr := s.groups[e.Key()]
	if gr == nil {
		gr = &group{}
		s.groups[e.Key()] = gr
	}
	gr.desired = &d
	gr.history = appendRing(gr.history, d, groupHistory)
	s.eventLocked(nil, Event{Time: d.Time, Group: e.Key(), Kind: "deploy", Who: orDash(d.Operator),
		What: "set " + d.Module + " " + d.Version + " at " + itoa(d.Canary) + "%"})
	v := s.groupLocked(e.Key())
	s.mu.Unlock()
	s.bc.publish("rollout", v)
}

func (s *state) onStatus(e jetstream.KeyValueEntry) {
	st, err := deploy.ParseDeviceStatus(e.Value())
	if err != nil || st.Group+"."+st.Device != e.Key() {
		s.cfg.Logger.Warn("dashboard: a malformed or mislabelled device report is not shown", "key", e.Key(), "err", err)
		return
	}
	s.mu.Lock()
	d := s.devices[st.Device]
	if d == nil && s.cfg.Access != nil {
		s.mu.Unlock()
		return // not a device of the access file
	}
	if d == nil {
		if d = s.deviceLocked(st.Device); d == nil {
			s.mu.Unlock()
			return
		}
	}
	if s.cfg.Access != nil && d.Group != st.Group {
		s.mu.Unlock()
		return // the access file says which group a device is in
	}
	prevState, prevVersion := d.State, d.Version
	before := d.DeviceView
	d.Group, d.Module, d.Version, d.Digest, d.Previous = st.Group, st.Module, st.Version, st.Digest, st.Previous
	d.State, d.Reason, d.Rollout = st.State, st.Reason, st.Rollout
	h := st.Healthy
	d.Healthy = &h
	d.statusSeen = s.cfg.Now()
	if prevState != st.State || prevVersion != st.Version {
		what := st.State
		if st.Version != "" {
			what += " " + st.Module + " " + st.Version
		}
		s.eventLocked(d, Event{Time: s.cfg.Now().UTC(), Device: d.ID, Group: d.Group, Kind: "state", Who: d.ID, What: what, Reason: st.Reason})
	}
	dv := d.DeviceView
	if sameView(before, dv) {
		s.mu.Unlock()
		return // a heartbeat: nothing to redraw
	}
	gv := s.groupLocked(st.Group)
	s.mu.Unlock()
	s.bc.publish("device", dv)
	s.bc.publish("rollout", gv)
}

// roundView is r as the API shows it, at t. privacy and metrics are the
// caller's (Dashboard.Round), else the report's own. A figure that is
// not finite is left out (JSON has no NaN).
func roundView(r federation.RoundReport, privacy *federation.ModeStatus, metrics map[string]float64, t time.Time) RoundView {
	f := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	v := RoundView{
		Round: r.Round, Version: r.Version, Status: r.Status, Error: r.Error, Sampled: r.Sampled, Available: r.Available,
		Participants: r.Received, Dropouts: max(0, r.Sampled-r.Received), Stragglers: len(r.Dropped),
		Rejected: len(r.Rejected), Refused: r.Refused, BytesIn: r.BytesIn, BytesOut: r.BytesOut,
		DurationMS: float64(r.Duration.Microseconds()) / 1000, HasEval: r.HasEval, Time: t.UTC(),
	}
	v.StragglerIDs = r.Dropped[:min(len(r.Dropped), listedIDs)]
	if r.HasEval {
		v.Loss, v.Accuracy = f(r.EvalLoss), f(r.EvalAccuracy)
	}
	if l, ok := r.DeviceMetrics["loss"]; ok {
		v.DeviceLoss = f(l)
	}
	if a, ok := metrics["auroc"]; ok {
		v.AUROC = f(a)
	} else if a, ok := r.EvalMetrics["auroc"]; ok && r.HasEval {
		v.AUROC = f(a)
	}
	if privacy == nil {
		privacy = r.Privacy
	}
	if privacy != nil && privacy.Epsilon > 0 {
		v.Epsilon = f(privacy.Epsilon)
	}
	return v
}

func (s *state) round(r federation.RoundReport, privacy *federation.ModeStatus, metrics map[string]float64) {
	v := roundView(r, privacy, metrics, s.cfg.Now())
	if privacy == nil {
		privacy = r.Privacy
	}
	s.mu.Lock()
	if s.live != nil {
		s.live[r.Round] = true
	}
	if n := len(s.rounds); n > 0 && s.rounds[n-1].Round >= r.Round {
		// Out of order (a history round came in first): keep the
		// rounds sorted by id, this one replacing any of its id.
		s.rounds = mergeRounds(s.rounds, []RoundView{v}, s.cfg.MaxRounds)
	} else {
		s.rounds = appendRing(s.rounds, v, s.cfg.MaxRounds)
	}
	if privacy != nil {
		p := *privacy
		s.privacy = &p
	}
	// A round that finished while the history was read may be in both:
	// its participants are counted once.
	counted := r.Round <= s.histLast
	for _, id := range r.Participants {
		if counted {
			break
		}
		if d := s.deviceLocked(id); d != nil {
			d.LastRound, d.Rounds = r.Round, d.Rounds+1
			if r.Status == "completed" {
				d.ModelVersion = r.Version
			}
		}
	}
	for _, id := range r.Dropped {
		if d := s.devices[id]; d != nil {
			s.eventLocked(d, Event{Time: v.Time, Device: id, Group: d.Group, Kind: "straggler", Who: id, What: "missed the deadline of round " + utoa(r.Round)})
		}
	}
	for id, why := range r.Rejected {
		if d := s.devices[id]; d != nil {
			s.eventLocked(d, Event{Time: v.Time, Device: id, Group: d.Group, Kind: "rejected", Who: "hub", What: "refused the update of round " + utoa(r.Round), Reason: why})
		}
	}
	s.mu.Unlock()
	// The participants' new model versions do not go out one event per
	// device: the page reloads the fleet after rounds, at most every few
	// seconds (1,000 participants would be 1,000 events a round).
	s.bc.publish("round", v)
}

// mergeRounds merges add into rounds (both sorted by round id), a round
// of add replacing the one of its id, and keeps the last n.
func mergeRounds(rounds, add []RoundView, n int) []RoundView {
	out := make([]RoundView, 0, len(rounds)+len(add))
	i, j := 0, 0
	for i < len(rounds) || j < len(add) {
		switch {
		case j == len(add) || i < len(rounds) && rounds[i].Round < add[j].Round:
			out = append(out, rounds[i])
			i++
		case i == len(rounds) || add[j].Round < rounds[i].Round:
			out = append(out, add[j])
			j++
		default: // the same round: add's
			out = append(out, add[j])
			i++
			j++
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// loadHistory starts the training view with the hub's stored rounds
// (HistoryHub); false when they could not be read (run tries again).
// Rounds that came through round meanwhile are kept as they came (they
// carry the caller's figures) and not counted twice; a stored round is
// read after the live ones registered, so none falls between the two.
func (s *state) loadHistory(ctx context.Context) bool {
	hh, ok := s.cfg.Hub.(HistoryHub)
	if !ok {
		s.mu.Lock()
		s.live = nil
		s.mu.Unlock()
		return true
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reps, err := hh.History(c, min(s.cfg.HistoryRounds, s.cfg.MaxRounds))
	if err != nil {
		lvl := slog.LevelWarn
		if s.historyErrs++; s.historyErrs > 1 {
			lvl = slog.LevelDebug // said once
		}
		s.cfg.Logger.Log(ctx, lvl, "dashboard: the hub's round history could not be read; retrying", "err", err)
		return false
	}
	var add []RoundView
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *federation.ModeStatus
	for _, r := range reps {
		if s.live[r.Round] || (len(add) > 0 && r.Round <= add[len(add)-1].Round) {
			continue
		}
		add = append(add, roundView(r, nil, nil, r.Time))
		if r.Privacy != nil {
			last = r.Privacy
		}
		for _, id := range r.Participants {
			if d := s.deviceLocked(id); d != nil {
				d.Rounds++
				if r.Round > d.LastRound {
					d.LastRound = r.Round
					if r.Status == "completed" {
						d.ModelVersion = r.Version
					}
				}
			}
		}
	}
	s.rounds = mergeRounds(s.rounds, add, s.cfg.MaxRounds)
	s.live = nil // read once: later rounds are all live
	if len(add) > 0 {
		s.histLast = add[len(add)-1].Round
	}
	if s.privacy == nil && last != nil {
		p := *last
		s.privacy = &p
	}
	if len(reps) > 0 {
		s.cfg.Logger.Info("dashboard: training view starts with the hub's stored rounds", "rounds", len(add), "first", reps[0].Round, "last", reps[len(reps)-1].Round)
	}
	return true
}

// sameView reports whether a report changed nothing the page shows
// (LastSeen moves with every heartbeat; the page ages it itself).
func sameView(a, b DeviceView) bool {
	ha, hb := a.Healthy != nil && *a.Healthy, b.Healthy != nil && *b.Healthy
	a.Healthy, b.Healthy, a.LastSeen, b.LastSeen = nil, nil, time.Time{}, time.Time{}
	a.UplinkContact, b.UplinkContact = time.Time{}, time.Time{}
	return a == b && ha == hb
}

// uplinks reads the devices' uplink state from the hub's JetStream; nil
// when the hub has no connection, no uplink stream, or the read fails
// (the next poll tries again).
func (s *state) uplinks(ctx context.Context) map[string]leaf.Uplink {
	nc := s.cfg.Hub.Conn()
	if nc == nil {
		return nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	defer cancel()
	ups, err := leaf.Uplinks(c, js)
	if err != nil {
		s.cfg.Logger.Debug("dashboard: uplink state", "err", err)
		return nil
	}
	return ups
}

// groupLocked builds group name's view from its desired state and devices.
func (s *state) groupLocked(name string) GroupView {
	v := GroupView{Group: name, Phase: "none", Versions: map[string]int{}, States: map[string]int{}}
	gs := deploy.GroupState{Group: name}
	if gr := s.groups[name]; gr != nil {
		v.Desired = gr.desired
		gs.Desired = gr.desired
		for i := len(gr.history) - 1; i >= 0; i-- {
			v.History = append(v.History, gr.history[i])
		}
	}
	for _, d := range s.devices {
		if d.Group != name {
			continue
		}
		v.Devices++
		if d.Version != "" {
			v.Versions[d.Version]++
		}
		if d.State != "" {
			v.States[d.State]++
		}
		gs.Devices = append(gs.Devices, deploy.DeviceStatus{Device: d.ID, Group: d.Group, Digest: d.Digest, State: d.State, Rollout: d.Rollout})
		bad := d.State == deploy.StateRefused || d.State == deploy.StateFailed || d.State == deploy.StateRolledBk
		if bad && len(v.Problems) < groupProblems {
			v.Problems = append(v.Problems, Event{Time: d.LastSeen, Device: d.ID, Group: name, Kind: d.State, Who: d.ID, What: d.State + " " + d.Module + " " + d.Version, Reason: d.Reason})
		}
	}
	sort.Slice(v.Problems, func(i, j int) bool { return v.Problems[i].Device < v.Problems[j].Device })
	v.Selected, v.Done, v.Failed = gs.Progress()
	switch {
	case v.Desired == nil:
	case v.Failed > 0:
		v.Phase = "failing"
	case v.Desired.Canary < 100:
		v.Phase = "canary"
	case v.Done < v.Selected:
		v.Phase = "rolling"
	default:
		v.Phase = "complete"
	}
	return v
}

func (s *state) groupsLocked() []GroupView {
	names := map[string]bool{}
	for n := range s.groups {
		names[n] = true
	}
	for _, d := range s.devices {
		if d.Group != "" {
			names[d.Group] = true
		}
	}
	var out []GroupView
	for n := range names {
		out = append(out, s.groupLocked(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// fleetQuery selects devices.
type fleetQuery struct {
	q, group, status string
	offset, limit    int
}

func (q fleetQuery) match(d *device) bool {
	switch {
	case q.group != "" && d.Group != q.group:
		return false
	case q.status == "online" && !d.Online, q.status == "offline" && d.Online:
		return false
	case q.status == "unhealthy" && (d.Healthy == nil || *d.Healthy):
		return false
	case q.q != "" && !strings.Contains(strings.ToLower(d.ID+" "+d.Group+" "+d.Module+" "+d.Version+" "+d.State), q.q):
		return false
	}
	return true
}

// FleetView is the fleet's answer.
type FleetView struct {
	Total   int          `json:"total"`             // devices tracked
	Online  int          `json:"online"`            // of them, online
	Matched int          `json:"matched"`           // matching the query
	Ignored int          `json:"ignored,omitempty"` // sightings of devices beyond MaxDevices, dropped
	Groups  []GroupCount `json:"groups"`
	Devices []DeviceView `json:"devices"` // the page of matches, by id
}

// GroupCount counts a group's devices.
type GroupCount struct {
	Group   string `json:"group"`
	Devices int    `json:"devices"`
	Online  int    `json:"online"`
}

func (s *state) fleet(q fleetQuery) FleetView {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := FleetView{Total: len(s.devices), Ignored: s.ignored, Devices: []DeviceView{}}
	groups := map[string]*GroupCount{}
	ids := make([]string, 0, len(s.devices))
	for id, d := range s.devices {
		if d.Online {
			v.Online++
		}
		gc := groups[d.Group]
		if gc == nil {
			gc = &GroupCount{Group: d.Group}
			groups[d.Group] = gc
		}
		gc.Devices++
		if d.Online {
			gc.Online++
		}
		if q.match(d) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	v.Matched = len(ids)
	for i := q.offset; i < len(ids) && i < q.offset+q.limit; i++ {
		v.Devices = append(v.Devices, s.devices[ids[i]].DeviceView)
	}
	for _, gc := range groups {
		v.Groups = append(v.Groups, *gc)
	}
	sort.Slice(v.Groups, func(i, j int) bool { return v.Groups[i].Group < v.Groups[j].Group })
	return v
}

// DeviceDetail is a device with its recent events, newest first.
type DeviceDetail struct {
	DeviceView
	Events []Event `json:"events"`
}

func (s *state) device(id string) (DeviceDetail, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[id]
	if d == nil {
		return DeviceDetail{}, false
	}
	out := DeviceDetail{DeviceView: d.DeviceView, Events: make([]Event, 0, len(d.events))}
	for i := len(d.events) - 1; i >= 0; i-- {
		out.Events = append(out.Events, d.events[i])
	}
	return out, true
}

// RolloutsView lists the groups and the fleet's recent rollout events.
type RolloutsView struct {
	Enabled bool        `json:"enabled"` // the hub serves rollouts (--access)
	Groups  []GroupView `json:"groups"`
	Events  []Event     `json:"events"` // newest first
}

func (s *state) rollouts() RolloutsView {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := RolloutsView{Enabled: s.rollout, Groups: s.groupsLocked(), Events: []Event{}}
	if v.Groups == nil {
		v.Groups = []GroupView{}
	}
	for i := len(s.events) - 1; i >= 0 && len(v.Events) < 100; i-- {
		if k := s.events[i].Kind; k == "deploy" || k == "state" {
			v.Events = append(v.Events, s.events[i])
		}
	}
	return v
}

// FederationView is one federation's training.
type FederationView struct {
	Name          string                 `json:"name"`
	Strategy      string                 `json:"strategy"`
	Params        map[string]float64     `json:"params,omitempty"`
	Mode          string                 `json:"mode"`
	TargetEpsilon float64                `json:"target_epsilon,omitempty"`
	Delta         float64                `json:"delta,omitempty"`
	PlannedRounds int                    `json:"planned_rounds,omitempty"`
	Privacy       *federation.ModeStatus `json:"privacy,omitempty"`
	TotalRounds   int                    `json:"total_rounds"`
	Rounds        []RoundView            `json:"rounds"` // since the query's round
}

// TrainingView lists the federations the hub runs (one per hub).
type TrainingView struct {
	Federations []FederationView `json:"federations"`
}

func (s *state) training(since uint64, hasSince bool) TrainingView {
	t := s.cfg.Training
	mode := t.Mode
	if mode == "" {
		mode = "plain"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fv := FederationView{Name: t.Name, Strategy: t.Strategy, Params: t.Params, Mode: mode, TargetEpsilon: t.TargetEpsilon,
		Delta: t.Delta, PlannedRounds: t.Rounds, TotalRounds: len(s.rounds), Rounds: []RoundView{}}
	if s.privacy != nil {
		p := *s.privacy
		fv.Privacy = &p
	}
	i := 0
	if hasSince {
		i = sort.Search(len(s.rounds), func(i int) bool { return s.rounds[i].Round > since })
	}
	fv.Rounds = append(fv.Rounds, s.rounds[i:]...)
	return TrainingView{Federations: []FederationView{fv}}
}

// desiredOf returns group's current desired state.
func (s *state) desiredOf(name string) (deploy.Desired, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gr := s.groups[name]; gr != nil && gr.desired != nil {
		return *gr.desired, true
	}
	return deploy.Desired{}, false
}

var errNoRollouts = errors.New("this hub serves no rollouts (start it with --access)")

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func utoa(n uint64) string { return strconv.FormatUint(n, 10) }

// validName is deploy's name rule: 1-64 of A-Z a-z 0-9 _ -.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
