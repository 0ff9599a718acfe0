package modes_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func startNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// recorder wraps the hub's real link and keeps every reply the hub
// receives: the hub's view of the protocol steps.
type recorder struct {
	x       hook.Exchanger
	mu      sync.Mutex
	replies [][]byte
}

func (r *recorder) Bytes() (uint64, uint64) { return r.x.(*hook.HubLink).Bytes() }

func (r *recorder) Exchange(ctx context.Context, round uint64, step string, reqs map[string][]byte, timeout time.Duration) (map[string][]byte, map[string]error) {
	rep, errs := r.x.Exchange(ctx, round, step, reqs, timeout)
	r.mu.Lock()
	for _, b := range rep {
		r.replies = append(r.replies, b)
	}
	r.mu.Unlock()
	return rep, errs
}

// fed is a hub side and n device sides of a mode connected by the real
// NATS step link, driven round by round without training: each device's
// "trained" model is global + a chosen delta.
type fed struct {
	mode    string
	hub     *modes.Hub
	ids     []string
	clients map[string]*modes.Client
	conns   map[string]*nats.Conn
	global  model.Model
	rec     *recorder

	// Hostile devices: tamperStep rewrites a device's step replies,
	// tamperUpdate its update after its honest Transform.
	mu           sync.Mutex
	tamperStep   map[string]func(step string, out []byte) []byte
	tamperUpdate map[string]func(m *model.Model)
}

func newFed(t testing.TB, mode string, cfg modes.Config, n int, params int) *fed {
	t.Helper()
	ns := startNATS(t)
	f := &fed{mode: mode, clients: map[string]*modes.Client{}, conns: map[string]*nats.Conn{},
		tamperStep: map[string]func(string, []byte) []byte{}, tamperUpdate: map[string]func(*model.Model){}}
	for i := 0; i < n; i++ {
		f.ids = append(f.ids, fmt.Sprintf("dev-%02d", i))
	}
	if cfg.Population == nil {
		cfg.Population = f.ids
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 2 * time.Second
	}
	cfg.HEParams, cfg.AllowInsecure = he.Test10, true
	h, err := modes.NewHub(mode, cfg)
	if err != nil {
		t.Fatal(err)
	}
	link, err := hook.NewHubLink(connect(t, ns), "t", func(id string) ([]byte, bool) { return wire.DeviceKey(secret, id), true })
	if err != nil {
		t.Fatal(err)
	}
	f.rec = &recorder{x: link}
	g := make([]float32, params)
	for i := range g {
		g[i] = float32(i%7) * 0.1
	}
	base := sim.MLP{In: params - 1, Out: 1}.Init(1)
	if f.global, err = base.WithVector(g, 0); err != nil {
		t.Fatal(err)
	}
	h.Bind(f.rec, func() model.Model { return f.global })
	f.hub = h
	for _, id := range f.ids {
		c, err := modes.NewClient(mode, id, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nc := connect(t, ns)
		handle := func(ctx context.Context, round uint64, step string, data []byte) ([]byte, error) {
			out, err := c.Handle(ctx, round, step, data)
			f.mu.Lock()
			tm := f.tamperStep[id]
			f.mu.Unlock()
			if tm != nil && err == nil {
				out = tm(step, out)
			}
			return out, err
		}
		if _, err := hook.ServeDevice(nc, "t", id, wire.DeviceKey(secret, id), handle, 0); err != nil {
			t.Fatal(err)
		}
		f.clients[id], f.conns[id] = c, nc
	}
	return f
}

// round runs one round. skip: devices that never send an update (drop out
// after the setup steps); kill: devices whose connection dies after they
// sent their update. It returns the new global model and the updates the
// hub received.
func (f *fed) round(t testing.TB, r uint64, deltas map[string][]float32, skip, kill map[string]bool) (model.Model, []strategy.ModelUpdate, error) {
	t.Helper()
	ctx := context.Background()
	info := hook.RoundInfo{Round: r, Version: f.global.Version, Mode: f.mode, Devices: f.ids}
	extra, err := f.hub.Prepare(ctx, info)
	if err != nil {
		return model.Model{}, nil, err
	}
	g := f.global.Flatten()
	var ups []strategy.ModelUpdate
	for _, id := range f.ids {
		if skip[id] {
			continue
		}
		w := make([]float32, len(g))
		for i := range w {
			w[i] = g[i] + deltas[id][i]
		}
		upd, _ := f.global.WithVector(w, f.global.Version)
		di := info
		di.Device = id
		if _, err := f.clients[id].Transform(ctx, di, extra, f.global, &upd, 10); err != nil {
			t.Logf("%s: transform: %v", id, err)
			continue
		}
		if tu := f.tamperUpdate[id]; tu != nil {
			tu(&upd)
		}
		ups = append(ups, strategy.ModelUpdate{Device: id, Model: upd, NumExamples: 10})
	}
	for id := range kill {
		f.conns[id].Close()
	}
	out, err := f.hub.PreAggregate(ctx, info, ups)
	if err != nil {
		return model.Model{}, ups, err
	}
	if len(out) != 1 {
		t.Fatalf("%d aggregate updates", len(out))
	}
	next, err := f.hub.PostAggregate(ctx, info, out[0].Model)
	if err != nil {
		t.Fatal(err)
	}
	f.global = next
	f.global.Version++
	return next, ups, nil
}

func randomDeltas(ids []string, n int, scale float64, seed uint64) map[string][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := map[string][]float32{}
	for _, id := range ids {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32((r.Float64()*2 - 1) * scale)
		}
		out[id] = d
	}
	return out
}

// plainMean is global + the equal-weight mean of the deltas of devices in.
func plainMean(global model.Model, deltas map[string][]float32, in []string) []float64 {
	g := global.Flatten()
	out := make([]float64, len(g))
	for i := range g {
		s := 0.0
		for _, id := range in {
			s += float64(deltas[id][i])
		}
		out[i] = float64(g[i]) + s/float64(len(in))
	}
	return out
}

func maxDiff(m model.Model, want []float64) float64 {
	got := m.Flatten()
	d := 0.0
	for i := range got {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
	}
	return d
}

func without(ids []string, drop map[string]bool) []string {
	var out []string
	for _, id := range ids {
		if !drop[id] {
			out = append(out, id)
		}
	}
	return out
}

func f32le(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// TestSecureSumsMatchPlain: secagg and he aggregates equal the plain
// equal-weight mean of the same updates, within secagg's quantisation
// (k*Bound/2^31 per value, plus f32 rounding of the model) and CKKS's
// precision; the hub's view holds no individual update.
func TestSecureSumsMatchPlain(t *testing.T) {
	const n, params = 6, 300
	for _, tc := range []struct {
		mode string
		tol  float64
	}{
		{modes.SecAgg, 1e-6},
		{modes.HE, 2e-3},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFed(t, tc.mode, modes.Config{}, n, params)
			for r := uint64(1); r <= 2; r++ {
				before := f.global
				deltas := randomDeltas(f.ids, params, 0.5, r)
				next, ups, err := f.round(t, r, deltas, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				want := plainMean(before, deltas, f.ids)
				if d := maxDiff(next, want); d > tc.tol {
					t.Fatalf("round %d: secure aggregate differs from the plain mean by %g (tolerance %g)", r, d, tc.tol)
				}
				// The hub's view: the updates it received and every step reply.
				gb := f32le(before.Flatten())
				for _, u := range ups {
					ub := f32le(u.Model.Flatten())
					switch tc.mode {
					case modes.HE:
						if !bytes.Equal(ub, gb) {
							t.Fatalf("he: %s's update is not the unchanged global model", u.Device)
						}
					case modes.SecAgg:
						// masked ring elements: unrelated to the quantised delta
						q := secagg.Config{RoundID: []byte{1}, NumClients: n, Threshold: 3, VectorLen: params, Clip: 16}.Quantize(deltas[u.Device])
						same := 0
						for i := range q {
							if binary.LittleEndian.Uint32(ub[4*i:]) == q[i] {
								same++
							}
						}
						if same > params/20 {
							t.Fatalf("secagg: %s's update matches its quantised delta in %d of %d values", u.Device, same, params)
						}
					}
					own := f32le(deltas[u.Device][:8])
					for _, b := range append(f.rec.replies, ub) {
						if bytes.Contains(b, own) {
							t.Fatalf("the hub saw %s's delta in the clear", u.Device)
						}
					}
				}
			}
			st := f.hub.Status()
			if st.Releases != 2 || st.Contributors != n || st.StepBytes == 0 {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// TestSecAggDropouts: devices that drop after the key setup (no masked
// input) or after sending it (no unmask answer) are survived while at
// least Threshold remain; below that the round aborts without a result.
func TestSecAggDropouts(t *testing.T) {
	const n, params = 7, 50 // complete graph, degree 6, threshold 4
	f := newFed(t, modes.SecAgg, modes.Config{}, n, params)
	deltas := randomDeltas(f.ids, params, 0.3, 9)
	skip := map[string]bool{f.ids[0]: true, f.ids[3]: true}
	kill := map[string]bool{f.ids[5]: true}
	before := f.global
	next, _, err := f.round(t, 1, deltas, skip, kill)
	if err != nil {
		t.Fatal(err)
	}
	// The killed device's masked input arrived: it is in the sum.
	want := plainMean(before, deltas, without(f.ids, skip))
	if d := maxDiff(next, want); d > 1e-6 {
		t.Fatalf("aggregate with dropouts differs from the survivors' mean by %g", d)
	}
	if st := f.hub.Status(); st.Contributors != n-2 {
		t.Fatalf("contributors %d, want %d", st.Contributors, n-2)
	}

	// Round 2 without the dead device: 6 devices, degree 5, threshold 3;
	// 4 skip -> 2 masked inputs < 3: abort.
	g := newFed(t, modes.SecAgg, modes.Config{}, 6, params)
	skip = map[string]bool{g.ids[0]: true, g.ids[1]: true, g.ids[2]: true, g.ids[3]: true}
	_, _, err = g.round(t, 1, randomDeltas(g.ids, params, 0.3, 10), skip, nil)
	if !errors.Is(err, secagg.ErrAbort) {
		t.Fatalf("below threshold: err %v, want secagg.ErrAbort", err)
	}
}

// TestHEThreshold: t-of-N decryption survives a device missing at
// decryption; N-of-N does not.
func TestHEThreshold(t *testing.T) {
	const n, params = 5, 40
	for _, tc := range []struct {
		thr int
		ok  bool
	}{{3, true}, {0, false}} {
		f := newFed(t, modes.HE, modes.Config{HEThreshold: tc.thr}, n, params)
		deltas := randomDeltas(f.ids, params, 0.2, 3)
		before := f.global
		if _, _, err := f.round(t, 1, deltas, nil, nil); err != nil {
			t.Fatal(err)
		}
		before = f.global
		deltas = randomDeltas(f.ids, params, 0.2, 4)
		// the last device dies after sending its ciphertext
		kill := map[string]bool{f.ids[n-1]: true}
		skip := map[string]bool{f.ids[n-2]: true}
		next, _, err := f.round(t, 2, deltas, skip, kill)
		if !tc.ok {
			if err == nil {
				t.Fatal("N-of-N decryption succeeded with a device missing")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// the killed device could not be collected from: it is not in the sum
		in := without(f.ids, map[string]bool{f.ids[n-1]: true, f.ids[n-2]: true})
		if d := maxDiff(next, plainMean(before, deltas, in)); d > 2e-3 {
			t.Fatalf("t-of-N aggregate differs by %g", d)
		}
	}
}

// TestDPCentral: clipping, the fixed denominator, the accountant's epsilon,
// the TargetEpsilon cap and the ledger.
func TestDPCentral(t *testing.T) {
	const n, params = 4, 30
	dir := t.TempDir()
	l, err := budget.Open(filepath.Join(dir, "ledger.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acct := budget.DatasetAccount("t")
	// A tiny noise multiplier, so that the clip and denominator arithmetic
	// shows; the ledger's budget is exactly two releases' epsilon.
	cfg := modes.Config{Clip: 1, NoiseMultiplier: 0.001, Ledger: l, Accounts: []string{acct}}
	acc, _ := dp.NewAccountant(nil)
	_ = acc.ComposeSubsampledGaussian(1, 0.001, 2)
	eps2, _, _ := acc.Epsilon(1e-5)
	if err := l.SetBudget(acct, budget.Budget{Epsilon: eps2 * 1.0001, Delta: 1e-5}); err != nil {
		t.Fatal(err)
	}
	f := newFed(t, modes.DP, cfg, n, params)
	deltas := map[string][]float32{}
	for i, id := range f.ids {
		d := make([]float32, params)
		d[i] = 10 // norm 10: clipped to 1
		deltas[id] = d
	}
	skip := map[string]bool{f.ids[3]: true}
	before := f.global
	next, _, err := f.round(t, 1, deltas, skip, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, got := before.Flatten(), next.Flatten()
	for i := range g {
		want := float64(g[i])
		if i < 3 {
			want += 1.0 / 4 // clipped to 1, divided by the 4 sampled devices (fixed denominator)
		}
		if math.Abs(float64(got[i])-want) > 0.01 {
			t.Fatalf("value %d: %v, want %v", i, got[i], want)
		}
	}
	st := f.hub.Status()
	acc1, _ := dp.NewAccountant(nil)
	_ = acc1.ComposeSubsampledGaussian(1, 0.001, 1)
	eps1, _, _ := acc1.Epsilon(1e-5)
	if math.Abs(st.Epsilon-eps1) > 1e-9*eps1 || st.Releases != 1 {
		t.Fatalf("status %+v, want epsilon %v", st, eps1)
	}
	if _, _, err := f.round(t, 2, deltas, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.round(t, 3, deltas, nil, nil); !errors.Is(err, budget.ErrBudget) {
		t.Fatalf("third release: err %v, want budget.ErrBudget", err)
	}
	if st := f.hub.Status(); st.Releases != 2 {
		t.Fatalf("releases %d after a refused round", st.Releases)
	}
}

// TestDPTargetAndNoise: z calibrated from TargetEpsilon reaches it in
// Rounds releases and a further release is refused; the noise on the mean
// has std z*C/k.
func TestDPTargetAndNoise(t *testing.T) {
	const n, params = 5, 4000
	f := newFed(t, modes.DP, modes.Config{TargetEpsilon: 2, Rounds: 2, Clip: 0.5}, n, params)
	zero := map[string][]float32{}
	for _, id := range f.ids {
		zero[id] = make([]float32, params)
	}
	for r := uint64(1); r <= 2; r++ {
		before := f.global.Flatten()
		next, _, err := f.round(t, r, zero, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := f.hub.Status()
		var ss float64
		for i, v := range next.Flatten() {
			d := float64(v - before[i])
			ss += d * d
		}
		std := math.Sqrt(ss / params)
		want := st.NoiseMultiplier * 0.5 / n
		if math.Abs(std-want) > 0.05*want {
			t.Fatalf("round %d: noise std %v, want z*C/k = %v", r, std, want)
		}
	}
	st := f.hub.Status()
	if st.Epsilon > 2 || st.Epsilon < 1.99 {
		t.Fatalf("epsilon after the planned rounds %v, want just under 2", st.Epsilon)
	}
	_, _, err := f.round(t, 3, zero, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "privacy budget") {
		t.Fatalf("release beyond the target: err %v", err)
	}
}

// TestAdaptiveClip: small updates pull the clip norm down towards their
// median norm.
func TestAdaptiveClip(t *testing.T) {
	const n, params = 5, 20
	f := newFed(t, modes.DP, modes.Config{Clip: 1, NoiseMultiplier: 1, AdaptiveClip: true, CountNoise: 1}, n, params)
	small := randomDeltas(f.ids, params, 0.01, 1)
	for r := uint64(1); r <= 5; r++ {
		if _, _, err := f.round(t, r, small, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if c := f.hub.Status().Clip; !(c < 0.9) {
		t.Fatalf("clip %v did not shrink after 5 rounds of tiny updates", c)
	}
}

// TestLDP: devices noise their own updates, account their own epsilon and
// stop sending beyond their TargetEpsilon.
func TestLDP(t *testing.T) {
	const n, params = 3, 10
	f := newFed(t, modes.LDP, modes.Config{NoiseMultiplier: 2, TargetEpsilon: 3}, n, params)
	d := randomDeltas(f.ids, params, 0.1, 1)
	var rounds int
	for r := uint64(1); r <= 20; r++ {
		_, ups, err := f.round(t, r, d, nil, nil)
		if len(ups) == 0 {
			if err == nil {
				t.Fatal("round without updates succeeded")
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rounds++
	}
	eps := f.clients[f.ids[0]].Epsilon()
	if rounds == 0 || rounds == 20 || eps > 3 || eps < 2 {
		t.Fatalf("%d rounds sent, device epsilon %v (cap 3)", rounds, eps)
	}
}

// TestModesSimulate runs every mode end to end (hub, agents, NATS, the
// step link, the pure-Go MLP) and checks its accuracy against plain.
func TestModesSimulate(t *testing.T) {
	run := func(t *testing.T, mode string, pc modes.Config, fault sim.Fault) sim.Summary {
		deadline := 5 * time.Second
		if fault.Devices > 0 {
			deadline = 1500 * time.Millisecond // the dead devices are waited for until then
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pc.HEParams, pc.AllowInsecure = he.Test10, true
		if pc.StepTimeout == 0 {
			pc.StepTimeout = 3 * time.Second
		}
		s, err := sim.Run(ctx, sim.Config{Devices: 6, Rounds: 4, Seed: 3, Linear: true, PrivacyMode: mode, Privacy: pc,
			Deadline: deadline, Fault: fault, Settings: wire.Settings{LR: 0.1, Epochs: 2, BatchSize: 32}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := run(t, modes.Plain, modes.Config{}, sim.Fault{})
	t.Logf("plain: acc %.3f bytes/round %d", plain.Accuracy, plain.BytesMoved/4)
	for _, mode := range modes.Names[1:] {
		t.Run(mode, func(t *testing.T) {
			if mode == modes.DPSGD || mode == modes.SecAggDPSGD {
				t.Skip("DP-SGD trains in the devices' Wasm module (settings.dp): Example_dpsgd here, cmd/fennec's demo and hub tests end to end")
			}
			// DP at a noise multiplier that leaves the accuracy near plain
			// on this easy task (the epsilon is large: this checks the
			// plumbing; the WDBC bench measures epsilon <= 3).
			s := run(t, mode, modes.Config{NoiseMultiplier: 0.3, Clip: 1}, sim.Fault{})
			t.Logf("%s: acc %.3f bytes/round %d privacy %+v", mode, s.Accuracy, s.BytesMoved/4, *s.Privacy)
			if s.Rounds != 4 || s.Privacy == nil || s.Privacy.Releases != 4 {
				t.Fatalf("rounds %d privacy %+v", s.Rounds, s.Privacy)
			}
			tol := 0.03
			if mode == modes.LDP {
				tol = 0.15 // every device's update carries the full noise
			}
			if s.Accuracy < plain.Accuracy-tol {
				t.Fatalf("accuracy %.3f, plain %.3f", s.Accuracy, plain.Accuracy)
			}
			if strings.Contains(mode, "dp") && !(s.Privacy.Epsilon > 0) {
				t.Fatal("no epsilon reported")
			}
		})
	}
	t.Run("secagg-fault", func(t *testing.T) {
		// two of six devices die mid-round 2: secure aggregation (threshold
		// 3 of degree 5) completes the round with the others
		s := run(t, modes.SecAgg, modes.Config{}, sim.Fault{Round: 2, Devices: 2})
		if s.Rounds != 4 {
			t.Fatalf("%d rounds completed", s.Rounds)
		}
		for _, p := range s.Reports {
			t.Logf("round %d %s received %d contributors %d", p.Round, p.Status, p.Received, p.Privacy.Contributors)
		}
		if last := s.Reports[len(s.Reports)-1]; last.Privacy.Contributors != 4 {
			t.Fatalf("last round had %d contributors, want 4", last.Privacy.Contributors)
		}
		if s.Accuracy < plain.Accuracy-0.05 {
			t.Fatalf("accuracy %.3f, plain %.3f", s.Accuracy, plain.Accuracy)
		}
	})
}

// A device's mode client is its HE party for the fennec_privacy host
// functions (hostfuncs.HEParty): before the he key setup it refuses with
// he.ErrPhase (ESTATE to a guest), after it encrypts under the collective
// key; a client of a mode without HE never has a party.
func TestClientHEParty(t *testing.T) {
	var _ hostfuncs.HEParty = (*modes.Client)(nil)
	const n, params = 3, 12
	f := newFed(t, modes.HE, modes.Config{}, n, params)
	update := make([]float32, params)
	for _, c := range f.clients {
		if _, err := c.EncryptedLen(params); !errors.Is(err, he.ErrPhase) {
			t.Fatalf("EncryptedLen before the key setup: %v, want he.ErrPhase", err)
		}
		if _, err := c.EncryptTo(make([]byte, 1<<20), update); !errors.Is(err, he.ErrPhase) {
			t.Fatalf("EncryptTo before the key setup: %v, want he.ErrPhase", err)
		}
	}
	if _, _, err := f.round(t, 1, randomDeltas(f.ids, params, 0.2, 5), nil, nil); err != nil {
		t.Fatal(err)
	}
	for id, c := range f.clients {
		need, err := c.EncryptedLen(params)
		if err != nil || need <= 0 {
			t.Fatalf("%s: EncryptedLen after the key setup = %d, %v", id, need, err)
		}
		if want := float64(he.MaxAbsSum) / n; c.MaxAbs() != want || c.EncryptScratch() <= 0 {
			t.Fatalf("%s: MaxAbs %v (want %v), scratch %d", id, c.MaxAbs(), want, c.EncryptScratch())
		}
		got, err := c.EncryptTo(make([]byte, need), update)
		if err != nil || got != need {
			t.Fatalf("%s: EncryptTo = %d, %v; want %d bytes", id, got, err, need)
		}
	}
	dp, err := modes.NewClient(modes.DP, "dev-00", modes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.EncryptedLen(params); !errors.Is(err, he.ErrPhase) {
		t.Fatalf("dp client EncryptedLen: %v, want he.ErrPhase", err)
	}
}
