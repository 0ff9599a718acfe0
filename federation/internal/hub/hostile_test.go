package hub_test

// Hostile devices against a real hub process: the test binary re-executes
// itself as a hub child (as TestKill9Resume does) with honest in-process
// agents, and the test speaks the wire protocol to it over TCP as a
// malicious or broken device would: non-finite updates, inflated example
// counts, oversized upload declarations, forged chunks for another
// device's upload, and poisoned updates against robust strategies at small
// n.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// childConfig configures a hostile-test hub child.
type childConfig struct {
	Strategy   strategy.Config `json:"strategy"`
	MinDevices int             `json:"min_devices"`
	Quorum     float64         `json:"quorum"`
	Rounds     int             `json:"rounds"`
	Honest     int             `json:"honest"` // in-process honest agents dev-0..
	DeadlineMS int             `json:"deadline_ms"`
	Listen     string          `json:"listen"`
	Dir        string          `json:"dir"`
}

// childLine is one line the child prints per round.
type childLine struct {
	Report hub.Report `json:"report"`
	Global []float32  `json:"global"`
}

// memPrefix starts the line where the child prints the URL of its
// diagnostic HTTP listener, which answers with the child's cumulative heap
// allocation (runtime.MemStats.TotalAlloc).
const memPrefix = "mem "

func init() {
	// Runs before TestMain: a hostile-test child never reaches the tests.
	if c := os.Getenv("FENNEC_HOSTILE_CHILD"); c != "" {
		os.Exit(hostileChild(c))
	}
}

func hostileChild(js string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		fmt.Println("error", err)
		return 2
	}
	agg, err := strategy.New(c.Strategy)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	init := net8.Init(1)
	h, err := hub.New(hub.Config{DataDir: c.Dir, Listen: c.Listen, Rounds: c.Rounds, Initial: &init, Secret: secret,
		Deadline: time.Duration(c.DeadlineMS) * time.Millisecond, MinDevices: c.MinDevices, Quorum: c.Quorum,
		Strategy: strategy.FromAggregator(agg),
		OnRound: func(r hub.Report) {
			b, _ := json.Marshal(r)
			fmt.Printf("report %s\n", b)
		}})
	if err == nil {
		err = h.Start()
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	// The diagnostic listener is the test's, outside the fleet's
	// authorization: a device may not publish on a subject of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(w, "%d", ms.TotalAlloc)
		}))
	}()
	fmt.Printf("%shttp://%s\n", memPrefix, ln.Addr())
	for i := 0; i < c.Honest; i++ {
		anc, err := nats.Connect("", nats.InProcessServer(h.Server()))
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		id := fmt.Sprintf("dev-%d", i)
		a, _ := agent.New(agent.Config{Conn: anc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20, i + 30, i + 40}), Heartbeat: 200 * time.Millisecond})
		if err := a.Start(context.Background()); err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	fmt.Println("ready")
	<-h.Done()
	g := h.Global()
	b, _ := json.Marshal(g.Flatten())
	fmt.Printf("global %s\n", b)
	h.Shutdown()
	if h.Err() != nil {
		fmt.Println("error", h.Err())
		return 1
	}
	fmt.Println("done")
	return 0
}

// hubProc is a running hub child.
type hubProc struct {
	t       *testing.T
	url     string
	cmd     *exec.Cmd
	mu      sync.Mutex
	lines   []string
	exited  chan struct{}
	reports chan hub.Report
}

func startHubChild(t *testing.T, c childConfig) *hubProc {
	t.Helper()
	c.Dir = t.TempDir()
	c.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if c.DeadlineMS == 0 {
		c.DeadlineMS = 20000
	}
	js, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FENNEC_HOSTILE_CHILD="+string(js))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hubProc{t: t, url: "nats://" + c.Listen, cmd: cmd, exited: make(chan struct{}), reports: make(chan hub.Report, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			l := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
			if r, ok := strings.CutPrefix(l, "report "); ok {
				var rep hub.Report
				if json.Unmarshal([]byte(r), &rep) == nil {
					p.reports <- rep
				}
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *hubProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits for the first line starting with prefix or one of more
// (or the child's exit).
func (p *hubProc) waitLine(prefix string, d time.Duration, more ...string) (string, bool) {
	deadline := time.Now().Add(d)
	find := func() (string, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			for _, pre := range append([]string{prefix}, more...) {
				if pre != "" && strings.HasPrefix(l, pre) {
					return l, true
				}
			}
		}
		return "", false
	}
	for {
		if l, ok := find(); ok {
			return l, true
		}
		select {
		case <-p.exited:
			// The reader has stopped: one last look.
			return find()
		default:
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *hubProc) ready() {
	p.t.Helper()
	if _, ok := p.waitLine("ready", 30*time.Second); !ok {
		p.t.Fatalf("hub child did not start:\n%s", p.output())
	}
}

func (p *hubProc) report(d time.Duration) hub.Report {
	p.t.Helper()
	select {
	case r := <-p.reports:
		return r
	case <-time.After(d):
		p.t.Fatalf("no round report in %v:\n%s", d, p.output())
	}
	return hub.Report{}
}

func (p *hubProc) global() []float32 {
	p.t.Helper()
	l, ok := p.waitLine("global ", 30*time.Second)
	if !ok {
		p.t.Fatalf("hub child printed no global model:\n%s", p.output())
	}
	var g []float32
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "global ")), &g); err != nil {
		p.t.Fatal(err)
	}
	return g
}

// totalAlloc asks the child for its cumulative heap allocation.
func (p *hubProc) totalAlloc() uint64 {
	p.t.Helper()
	l, ok := p.waitLine(memPrefix, 30*time.Second)
	if !ok {
		p.t.Fatalf("hub child printed no diagnostic URL:\n%s", p.output())
	}
	resp, err := http.Get(strings.TrimPrefix(l, memPrefix))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	var n uint64
	fmt.Sscan(string(b), &n)
	return n
}

// hostile is a device that speaks the wire protocol by hand.
type hostile struct {
	t     *testing.T
	id    string
	key   []byte
	nc    *nats.Conn
	subj  wire.Subjects
	tasks chan wire.Task
	stop  chan struct{}
}

// newHostile connects device id (with its real key, or key when set) and
// joins, heartbeating until the test ends.
func newHostile(t *testing.T, url, id string) *hostile {
	t.Helper()
	var nc *nats.Conn
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() (err error) {
		nc, err = nats.Connect(url, agent.FleetOptions(id, wire.DeviceKey(secret, id))...)
		return err
	})
	d := &hostile{t: t, id: id, key: wire.DeviceKey(secret, id), nc: nc, subj: wire.For("default"),
		tasks: make(chan wire.Task, 16), stop: make(chan struct{})}
	if _, err := nc.Subscribe(d.subj.TaskPrefix+id, func(m *nats.Msg) {
		if tk, err := wire.DecodeTask(m.Data); err == nil {
			d.tasks <- tk
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.join(); err != nil {
		t.Fatal(err)
	}
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-tk.C:
				_ = d.join()
			}
		}
	}()
	t.Cleanup(func() { close(d.stop); nc.Close() })
	return d
}

func (d *hostile) join() error {
	j := wire.Join{Device: d.id, TimeMS: time.Now().UnixMilli(), Nonce: randU64()}
	wire.SignJoin(d.key, &j)
	m, err := d.nc.Request(d.subj.JoinPrefix+d.id, wire.Encode(j), 2*time.Second)
	if err != nil {
		return err
	}
	if a, _ := wire.DecodeAck(m.Data); !a.OK {
		return fmt.Errorf("join refused: %+v", a)
	}
	return nil
}

func randU64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (d *hostile) task() wire.Task {
	d.t.Helper()
	select {
	case tk := <-d.tasks:
		return tk
	case <-time.After(30 * time.Second):
		d.t.Fatal("no task in 30s")
	}
	return wire.Task{}
}

// global returns the task's global model (inline or fetched).
func (d *hostile) global(tk wire.Task) model.Model {
	d.t.Helper()
	enc := tk.Inline
	if enc == nil {
		for seq := uint64(0); seq < tk.Chunks; seq++ {
			m, err := d.nc.Request(d.subj.Model, wire.Encode(wire.ModelReq{Version: tk.Version, Seq: seq}), 5*time.Second)
			if err != nil {
				d.t.Fatal(err)
			}
			enc = append(enc, m.Data...)
		}
	}
	g, err := model.Decode(enc)
	if err != nil {
		d.t.Fatal(err)
	}
	return g
}

// chunks frames payload as this device's upload in round, in pieces of
// size bytes, with every field the protocol asks for.
func (d *hostile) chunks(round uint64, payload []byte, size int) []wire.Chunk {
	return wire.Frame(d.key, d.id, round, payload, size)
}

func (d *hostile) send(c wire.Chunk) wire.Ack {
	d.t.Helper()
	m, err := d.nc.Request(d.subj.UpdatePrefix+c.Device, wire.Encode(c), 5*time.Second)
	if err != nil {
		d.t.Fatal(err)
	}
	a, err := wire.DecodeAck(m.Data)
	if err != nil {
		d.t.Fatal(err)
	}
	return a
}

// submit sends body as one upload and returns the last ack.
func (d *hostile) submit(round uint64, body wire.Body) wire.Ack {
	d.t.Helper()
	var a wire.Ack
	for _, c := range d.chunks(round, wire.Encode(body), wire.DefaultChunk) {
		if a = d.send(c); !a.OK {
			return a
		}
	}
	return a
}

// withValues is g with every f32 element replaced by f(i, x).
func withValues(t *testing.T, g model.Model, f func(i int, x float32) float32) model.Model {
	t.Helper()
	v := g.Flatten()
	for i := range v {
		v[i] = f(i, v[i])
	}
	m, err := g.WithVector(v, g.Version)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func finiteVec(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// Finding 1: one device's NaN or Inf update is refused at receipt (a
// counted reason naming it), the round completes on the honest devices,
// and no strategy commits a non-finite model.
func TestHostileNonFiniteUpdate(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   strategy.Config
		bad  float32
	}{
		{"fedavg", strategy.Config{Name: "fedavg"}, float32(math.NaN())},
		{"trimmedmean", strategy.Config{Name: "trimmedmean", TrimBeta: 0.2}, float32(math.Inf(1))},
		{"krum", strategy.Config{Name: "krum", F: 1}, float32(math.NaN())},
		{"multikrum", strategy.Config{Name: "multikrum", F: 1}, float32(math.NaN())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHubChild(t, childConfig{Strategy: tc.sc, MinDevices: 6, Rounds: 1, Honest: 5})
			p.ready()
			d := newHostile(t, p.url, "mallory")
			tk := d.task()
			g := d.global(tk)
			bad := withValues(t, g, func(i int, x float32) float32 {
				if i == 0 {
					return tc.bad
				}
				return x
			})
			ack := d.submit(tk.Round, wire.Body{Model: bad, NumExamples: 5})
			rep := p.report(30 * time.Second)
			if rep.Status != "completed" || rep.Received != 5 {
				t.Fatalf("round with one non-finite update: %+v (ack to the device: %+v)", rep, ack)
			}
			if ack.OK {
				t.Fatalf("non-finite update acknowledged: %+v", ack)
			}
			if !strings.Contains(fmt.Sprint(rep.Rejected), "mallory") {
				t.Fatalf("report does not name the refused device: %+v", rep)
			}
			if gl := p.global(); !finiteVec(gl) {
				t.Fatalf("non-finite global committed: %v", gl)
			}
			// The refusal is quick: the round did not wait for the deadline.
			if rep.Duration > 15*time.Second {
				t.Fatalf("round waited %v for a refused device", rep.Duration)
			}
		})
	}
}

// Finding 2: a device claiming 2^62 examples does not move the FedAvg
// global model the whole way to its own.
func TestHostileNumExamples(t *testing.T) {
	p := startHubChild(t, childConfig{Strategy: strategy.Config{Name: "fedavg"}, MinDevices: 3, Quorum: 1, Rounds: 1, Honest: 2})
	p.ready()
	d := newHostile(t, p.url, "mallory")
	tk := d.task()
	g := d.global(tk)
	poison := withValues(t, g, func(int, float32) float32 { return 100 })
	ack := d.submit(tk.Round, wire.Body{Model: poison, NumExamples: 1 << 62})
	rep := p.report(30 * time.Second)
	if rep.Status != "completed" {
		t.Fatalf("round: %+v (ack %+v)", rep, ack)
	}
	gl := p.global()
	var mean float64
	for _, x := range gl {
		mean += float64(x)
	}
	mean /= float64(len(gl))
	// Honest weights stay within a few units of zero; all the way to the
	// liar's model is 100.
	if mean > 80 {
		t.Fatalf("a device claiming 2^62 examples moved the global model to mean %.2f (its own: 100)", mean)
	}
	t.Logf("global mean after the liar's round: %.2f (report %+v)", mean, rep)
}

// Finding 3: declaring a huge upload reserves nothing; the hub's memory
// follows the bytes received, an upload may not be larger than the global
// model's encoding plus a fixed header, and a device has one upload in
// progress at a time.
func TestHostileUploadMemory(t *testing.T) {
	p := startHubChild(t, childConfig{Strategy: strategy.Config{Name: "fedavg"}, MinDevices: 2, Quorum: 1, Rounds: 1, Honest: 1})
	p.ready()
	d := newHostile(t, p.url, "mallory")
	tk := d.task()
	before := p.totalAlloc()
	var sent, accepted int
	for i := 0; i < 8; i++ {
		// 1 GiB declared, 1 KiB sent; every first chunk starts a new upload.
		data := make([]byte, 1024)
		c := d.chunks(tk.Round, data, 1024)[0]
		c.Size, c.Total = 1<<30, 1<<20
		c.MAC = wire.ChunkMAC(d.key, &c)
		sent += len(wire.Encode(c))
		if a := d.send(c); a.OK {
			accepted++
		}
	}
	grown := p.totalAlloc() - before
	t.Logf("8 first chunks declaring 1 GiB (%d bytes sent, %d accepted): hub allocated %d MiB", sent, accepted, grown>>20)
	if grown > 16<<20 {
		t.Fatalf("hub allocated %d MiB for %d bytes of first chunks", grown>>20, sent)
	}
	if accepted != 0 {
		t.Fatalf("%d first chunks declaring 1 GiB for a %d-byte model accepted", accepted, tk.Size)
	}
	// First chunks declaring the largest update allowed, each a new upload
	// of mallory's (replacing the last: one upload per device), cost what
	// they carry.
	before = p.totalAlloc()
	max := wire.MaxUpdateSize(int(tk.Size), false)
	for i := 0; i < 64; i++ {
		c := d.chunks(tk.Round, make([]byte, 1024), 1024)[0]
		c.Size, c.Total = max, max/1024
		c.MAC = wire.ChunkMAC(d.key, &c)
		if a := d.send(c); !a.OK {
			t.Fatalf("a first chunk within the bound (%d bytes declared): %+v", max, a)
		}
	}
	if grown := p.totalAlloc() - before; grown > 16<<20 {
		t.Fatalf("hub allocated %d MiB for 64 first chunks of 1 KiB declaring %d bytes", grown>>20, max)
	}
	// The honest device's round still completes, with mallory's update
	// then arriving in full.
	g := d.global(tk)
	if a := d.submit(tk.Round, wire.Body{Model: g, NumExamples: 5}); !a.OK {
		t.Fatalf("mallory's real update after the oversized declarations: %+v", a)
	}
	if rep := p.report(30 * time.Second); rep.Status != "completed" || rep.Received != 2 {
		t.Fatalf("round: %+v", rep)
	}
}

// Finding 4: a chunk that does not come from the device it names cannot
// cancel or corrupt that device's upload.
func TestHostileForgedChunk(t *testing.T) {
	p := startHubChild(t, childConfig{Strategy: strategy.Config{Name: "fedavg"}, MinDevices: 2, Quorum: 1, Rounds: 1, Honest: 1})
	p.ready()
	alice := newHostile(t, p.url, "alice") // honest, scripted to upload in small chunks
	tk := alice.task()
	g := alice.global(tk)
	cs := alice.chunks(tk.Round, wire.Encode(wire.Body{Model: g, NumExamples: 5}), 64)
	if len(cs) < 3 {
		t.Fatalf("want a multi-chunk upload, have %d chunks", len(cs))
	}
	if a := alice.send(cs[0]); !a.OK {
		t.Fatalf("alice's first chunk: %+v", a)
	}
	// Mallory, with no key of alice's (only her connection password, as
	// read off a plaintext link), injects a first chunk of her own for
	// alice's upload.
	mnc, err := nats.Connect(p.url, agent.FleetOptions("alice", wire.DeviceKey(secret, "alice"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer mnc.Close()
	forged := cs[0]
	forged.Data = []byte("forged")
	forged.Size, forged.Total = 6, 1
	forged.Digest = wire.Digest(forged.Data)
	forged.MAC = make([]byte, 32)
	forged.Upload = make([]byte, wire.UploadIDBytes)
	mal := &hostile{t: t, nc: mnc, subj: alice.subj}
	fa := mal.send(forged)
	for _, c := range cs[1:] {
		if a := alice.send(c); !a.OK {
			t.Fatalf("alice's chunk %d after mallory's forged chunk (acked %+v): %+v", c.Seq, fa, a)
		}
	}
	if fa.OK {
		t.Fatalf("forged chunk acknowledged")
	}
	if rep := p.report(30 * time.Second); rep.Status != "completed" || rep.Received != 2 {
		t.Fatalf("round: %+v", rep)
	}
}

// Finding 6: a robust strategy that cannot be robust at the configured
// number of devices is refused at start, naming the strategy and the n it
// needs; one that can keeps a x100-scaled update out.
func TestHostileRobustSmallN(t *testing.T) {
	for _, tc := range []struct {
		sc   strategy.Config
		min  int
		want string
	}{
		{strategy.Config{Name: "trimmedmean", TrimBeta: 0.2}, 3, "trimmedmean"},
		{strategy.Config{Name: "krum", F: 1}, 4, "krum"},
		{strategy.Config{Name: "multikrum", F: 1}, 4, "multikrum"},
		{strategy.Config{Name: "bulyan", F: 1}, 6, "bulyan"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			p := startHubChild(t, childConfig{Strategy: tc.sc, MinDevices: tc.min, Quorum: 1, Rounds: 1, Honest: tc.min - 1})
			l, ok := p.waitLine("", 30*time.Second, "ready", "error")
			if ok && l == "ready" {
				// The hub started: show what a x100-scaled update does.
				d := newHostile(t, p.url, "mallory")
				tk := d.task()
				g := d.global(tk)
				g0 := norm(g.Flatten())
				d.submit(tk.Round, wire.Body{Model: withValues(t, g, func(int, float32) float32 { return 100 }), NumExamples: 5})
				rep := p.report(30 * time.Second)
				t.Fatalf("hub started with %s at MinDevices %d (round %s: global norm %.2f -> %.2f)",
					tc.want, tc.min, rep.Status, g0, norm(p.global()))
			}
			if !strings.Contains(l, tc.want) || !strings.Contains(l, "MinDevices") {
				t.Fatalf("refusal does not name the strategy and MinDevices: %s", l)
			}
		})
	}
	// Enough devices to trim: the scaled update is trimmed away.
	p := startHubChild(t, childConfig{Strategy: strategy.Config{Name: "trimmedmean", TrimBeta: 0.2}, MinDevices: 5, Quorum: 1, Rounds: 1, Honest: 4})
	p.ready()
	d := newHostile(t, p.url, "mallory")
	tk := d.task()
	g := d.global(tk)
	g0 := norm(g.Flatten())
	d.submit(tk.Round, wire.Body{Model: withValues(t, g, func(int, float32) float32 { return 100 }), NumExamples: 5})
	if rep := p.report(30 * time.Second); rep.Status != "completed" {
		t.Fatalf("round: %+v", rep)
	}
	if g1 := norm(p.global()); g1 > g0+5 {
		t.Fatalf("trimmed mean at n=5 let an update of 100s through: global norm %.2f -> %.2f", g0, g1)
	}
}
