package secagg

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// stage is how far a client gets before dropping out.
type stage int

const (
	full     stage = iota
	noKeys         // never advertises
	noShares       // advertises keys only
	noMasked       // shares keys, never sends its masked input
	noUnmask       // sends its masked input, never answers the unmask request
)

type view struct {
	keys, shares, masked, unmask map[uint32][]byte
}

// runRound plays a whole round in memory; it returns the raw ring sum, the
// survivors and everything the hub received.
func runRound(t *testing.T, cfg Config, inputs [][]float32, drop map[uint32]stage) ([]uint32, []uint32, *view, error) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := &view{map[uint32][]byte{}, map[uint32][]byte{}, map[uint32][]byte{}, map[uint32][]byte{}}
	clients := map[uint32]*Client{}
	for id := uint32(1); int(id) <= cfg.NumClients; id++ {
		c, err := NewClient(cfg, id)
		if err != nil {
			t.Fatal(err)
		}
		clients[id] = c
	}
	alive := func(id uint32, s stage) bool { d, ok := drop[id]; return !ok || d > s }
	for id, c := range clients {
		if !alive(id, noKeys) {
			continue
		}
		m, err := c.AdvertiseKeys()
		if err != nil {
			t.Fatal(err)
		}
		v.keys[id] = m
		if err := srv.AddKeys(m); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := srv.Directory()
	if err != nil {
		return nil, nil, v, err
	}
	for id, c := range clients {
		if !alive(id, noShares) || !alive(id, noKeys) {
			continue
		}
		m, err := c.ShareKeys(dir)
		if err != nil {
			return nil, nil, v, err
		}
		v.shares[id] = m
		if err := srv.AddShares(m); err != nil {
			t.Fatal(err)
		}
	}
	dels, err := srv.Deliveries()
	if err != nil {
		return nil, nil, v, err
	}
	for id, d := range dels {
		if !alive(id, noMasked) {
			continue
		}
		m, err := clients[id].MaskedInput(d, inputs[id-1])
		if err != nil {
			return nil, nil, v, err
		}
		v.masked[id] = m
		if err := srv.AddMasked(m); err != nil {
			t.Fatal(err)
		}
	}
	req, err := srv.UnmaskRequest()
	if err != nil {
		return nil, nil, v, err
	}
	for id := range v.masked {
		if !alive(id, noUnmask) {
			continue
		}
		m, err := clients[id].Unmask(req)
		if err != nil {
			return nil, nil, v, err
		}
		v.unmask[id] = m
		if err := srv.AddUnmask(m); err != nil {
			t.Fatal(err)
		}
	}
	sum, surv, err := srv.resultRaw()
	return sum, surv, v, err
}

func randomInputs(n, l int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	in := make([][]float32, n)
	for i := range in {
		in[i] = make([]float32, l)
		for j := range in[i] {
			in[i][j] = float32(r.NormFloat64())
		}
	}
	return in
}

// expected is the exact ring sum of the survivors' quantised inputs.
func expected(cfg Config, inputs [][]float32, survivors []uint32) []uint32 {
	sum := make([]uint32, cfg.VectorLen)
	for _, id := range survivors {
		for i, q := range cfg.Quantize(inputs[id-1]) {
			sum[i] += q
		}
	}
	return sum
}

func TestExactSum(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		drop map[uint32]stage
	}{
		{"complete graph", Config{RoundID: []byte("r1"), NumClients: 8, Threshold: 5, VectorLen: 1000, Clip: 4}, nil},
		{"secagg+ graph", Config{RoundID: []byte("r2"), NumClients: 30, Neighbors: 8, Threshold: 5, VectorLen: 777, Clip: 4}, nil},
		{"dropouts at every stage", Config{RoundID: []byte("r3"), NumClients: 12, Threshold: 7, VectorLen: 500, Clip: 3},
			map[uint32]stage{2: noKeys, 5: noShares, 7: noMasked, 11: noMasked, 12: noUnmask}},
		{"secagg+ with dropouts", Config{RoundID: []byte("r4"), NumClients: 40, Neighbors: 10, Threshold: 6, VectorLen: 300, Clip: 3},
			map[uint32]stage{1: noMasked, 9: noMasked, 17: noShares, 30: noUnmask, 31: noMasked}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inputs := randomInputs(c.cfg.NumClients, c.cfg.VectorLen, 42)
			sum, surv, _, err := runRound(t, c.cfg, inputs, c.drop)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range surv {
				if d, ok := c.drop[id]; ok && d < noUnmask {
					t.Errorf("client %d dropped at stage %d but counted", id, d)
				}
			}
			if want := c.cfg.NumClients - countBefore(c.drop, noUnmask); len(surv) != want {
				t.Errorf("%d survivors, want %d", len(surv), want)
			}
			want := expected(c.cfg, inputs, surv)
			for i := range want {
				if sum[i] != want[i] {
					t.Fatalf("value %d: ring sum %d, want %d", i, sum[i], want[i])
				}
			}
			// And the dequantised sum is within quantisation error of the float sum.
			got := c.cfg.Dequantize(sum)
			for i := range got {
				var f float64
				for _, id := range surv {
					f += math.Max(-c.cfg.Clip, math.Min(c.cfg.Clip, float64(inputs[id-1][i])))
				}
				if math.Abs(got[i]-f) > float64(len(surv))*c.cfg.Resolution() {
					t.Fatalf("value %d: %v, float sum %v", i, got[i], f)
				}
			}
		})
	}
}

func countBefore(drop map[uint32]stage, s stage) int {
	n := 0
	for _, d := range drop {
		if d < s {
			n++
		}
	}
	return n
}

func TestAbortBelowThreshold(t *testing.T) {
	cfg := Config{RoundID: []byte("abort"), NumClients: 6, Threshold: 4, VectorLen: 10, Clip: 1}
	in := randomInputs(6, 10, 1)
	// Three of six never send masked inputs: 3 survivors < threshold 4.
	_, _, _, err := runRound(t, cfg, in, map[uint32]stage{1: noMasked, 2: noMasked, 3: noMasked})
	if !errors.Is(err, ErrAbort) {
		t.Errorf("3 survivors of threshold 4: %v", err)
	}
	// Survivors enough, but three of them do not answer the unmask request:
	// only 3 shares of each secret remain.
	_, _, _, err = runRound(t, cfg, in, map[uint32]stage{1: noUnmask, 2: noUnmask, 3: noUnmask})
	if !errors.Is(err, ErrAbort) {
		t.Errorf("3 unmask answers of threshold 4: %v", err)
	}
	// Too few clients at the start.
	_, _, _, err = runRound(t, cfg, in, map[uint32]stage{1: noKeys, 2: noKeys, 3: noKeys})
	if !errors.Is(err, ErrAbort) {
		t.Errorf("3 of 6 advertising keys: %v", err)
	}
}

// The hub's view reveals no individual update: it holds shares of the
// survivors' self-mask seeds but never of their mask keys, and after
// removing a survivor's self mask its masked input is still uniformly
// distributed in the ring, whatever the input.
func TestHubViewRevealsNoInput(t *testing.T) {
	cfg := Config{RoundID: []byte("view"), NumClients: 10, Threshold: 6, VectorLen: 20000, Clip: 1}
	in := make([][]float32, cfg.NumClients)
	for i := range in {
		in[i] = make([]float32, cfg.VectorLen)
		for j := range in[i] {
			in[i][j] = float32(i%3) * 0.5 // highly structured inputs
		}
	}
	drop := map[uint32]stage{4: noMasked}
	_, surv, v, err := runRound(t, cfg, in, drop)
	if err != nil {
		t.Fatal(err)
	}
	// Replay the hub's received unmask messages into a fresh server state to
	// see exactly which shares it obtained.
	selfOf, maskOf := map[uint32]int{}, map[uint32]int{}
	for _, raw := range v.unmask {
		var m UnmaskMsg
		if err := unmarshal(raw, &m, "unmask"); err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Self {
			selfOf[s.Of]++
		}
		for _, s := range m.Mask {
			maskOf[s.Of]++
		}
	}
	for id := range maskOf {
		if id != 4 {
			t.Errorf("hub received shares of survivor %d's mask key", id)
		}
	}
	if selfOf[4] != 0 {
		t.Error("hub received shares of the dropped client's self-mask seed")
	}
	// Reconstruct each survivor's self seed as the hub can, remove it, and
	// test the remainder for uniformity (top bit and low byte).
	srvCfg := cfg
	for _, id := range surv {
		var m MaskedMsg
		_ = unmarshal(v.masked[id], &m, "masked")
		y := make([]uint32, cfg.VectorLen)
		for i := range y {
			y[i] = uint32(m.Data[4*i]) | uint32(m.Data[4*i+1])<<8 | uint32(m.Data[4*i+2])<<16 | uint32(m.Data[4*i+3])<<24
		}
		shares := map[uint32][]byte{}
		for from, raw := range v.unmask {
			var um UnmaskMsg
			_ = unmarshal(raw, &um, "unmask")
			for _, s := range um.Self {
				if s.Of == id {
					shares[from] = s.Y
				}
			}
		}
		srv := &Server{cfg: srvCfg}
		seed, err := srv.reconstruct(shares, id, "self", func([]byte) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		applyMask(y, seed, -1)
		q := cfg.Quantize(in[id-1])
		same, top := 0, 0
		var lowHist [256]int
		for i := range y {
			if y[i] == q[i] {
				same++
			}
			top += int(y[i] >> 31)
			lowHist[y[i]&0xff]++
		}
		n := float64(len(y))
		if same > 2 {
			t.Errorf("client %d: %d values equal the input after removing the self mask", id, same)
		}
		if math.Abs(float64(top)-n/2) > 5*math.Sqrt(n/4) {
			t.Errorf("client %d: top bit set in %d of %v values", id, top, n)
		}
		var chi float64
		for _, c := range lowHist {
			d := float64(c) - n/256
			chi += d * d / (n / 256)
		}
		if chi > 400 { // 255 degrees of freedom; mean 255, sd 22.6
			t.Errorf("client %d: low byte chi-square %v", id, chi)
		}
	}
}

func TestClientRefusesBadRequests(t *testing.T) {
	cfg := Config{RoundID: []byte("req"), NumClients: 4, Threshold: 3, VectorLen: 4, Clip: 1}
	srv, _ := NewServer(cfg)
	cs := make([]*Client, 4)
	for i := range cs {
		cs[i], _ = NewClient(cfg, uint32(i+1))
		m, _ := cs[i].AdvertiseKeys()
		if err := srv.AddKeys(m); err != nil {
			t.Fatal(err)
		}
	}
	dir, _ := srv.Directory()
	for _, c := range cs {
		m, err := c.ShareKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.AddShares(m)
	}
	dels, _ := srv.Deliveries()
	for _, c := range cs {
		if _, err := c.MaskedInput(dels[c.ID()], make([]float32, 4)); err != nil {
			t.Fatal(err)
		}
	}
	both, _ := marshal(UnmaskRequest{Survivors: []uint32{1, 2, 3}, Dropped: []uint32{3, 4}})
	if _, err := cs[0].Unmask(both); !errors.Is(err, ErrMessage) {
		t.Errorf("client listed as survivor and dropped: %v", err)
	}
	ok1, _ := marshal(UnmaskRequest{Survivors: []uint32{1, 2, 3}, Dropped: []uint32{4}})
	if _, err := cs[0].Unmask(ok1); err != nil {
		t.Fatal(err)
	}
	// A second request (say, now claiming 2 dropped) is refused: answering it
	// would give the hub both secrets of client 2.
	ok2, _ := marshal(UnmaskRequest{Survivors: []uint32{1, 3, 4}, Dropped: []uint32{2}})
	if _, err := cs[0].Unmask(ok2); !errors.Is(err, ErrPhase) {
		t.Errorf("second unmask request: %v", err)
	}
	if _, err := cs[1].MaskedInput(dels[2], make([]float32, 4)); !errors.Is(err, ErrPhase) {
		t.Errorf("second masked input: %v", err)
	}
	// Wrong-length update and a delivery for someone else.
	c5, _ := NewClient(cfg, 1)
	if _, err := c5.MaskedInput(dels[1], nil); !errors.Is(err, ErrPhase) {
		t.Errorf("out of order: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{RoundID: []byte("x"), NumClients: 10, Threshold: 6, VectorLen: 1, Clip: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.RoundID = nil },
		func(c *Config) { c.NumClients = 1 },
		func(c *Config) { c.Threshold = 4 }, // 2t <= 9
		func(c *Config) { c.Threshold = 10 },
		func(c *Config) { c.VectorLen = 0 },
		func(c *Config) { c.Clip = math.NaN() },
		func(c *Config) { c.Neighbors = -1 },
	}
	for i, f := range bad {
		c := good
		f(&c)
		if c.Validate() == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
	// The SecAgg+ graph is symmetric and regular.
	g := Config{RoundID: []byte("g"), NumClients: 50, Neighbors: 7, Threshold: 5, VectorLen: 1, Clip: 1}
	nb := g.neighbours()
	for u, l := range nb {
		if len(l) != g.Degree() {
			t.Errorf("client %d has %d neighbours, want %d", u, len(l), g.Degree())
		}
		for _, v := range l {
			found := false
			for _, w := range nb[v] {
				found = found || w == u
			}
			if !found || v == u {
				t.Errorf("edge %d-%d not symmetric", u, v)
			}
		}
	}
}

// Fuzz targets: every decoder of network bytes, on both sides.

func FuzzServerMessages(f *testing.F) {
	cfg := Config{RoundID: []byte("fz"), NumClients: 4, Threshold: 3, VectorLen: 3, Clip: 1}
	c, _ := NewClient(cfg, 1)
	k, _ := c.AdvertiseKeys()
	f.Add(uint8(0), k)
	f.Add(uint8(1), []byte{0xa2, 0x01, 0x01, 0x02, 0x80})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		srv, _ := NewServer(cfg)
		_ = srv.AddKeys(data)
		srv.phase = sShares
		_ = srv.AddShares(data)
		srv.phase = sMasked
		srv.u1[1] = true
		srv.sum = make([]uint32, 3)
		srv.delivered[1] = []uint32{2, 3}
		_ = srv.AddComplaint(data)
		_, _ = srv.Exclude()
		_ = srv.AddMasked(data)
		srv.phase = sUnmask
		srv.u2[1] = true
		_ = srv.AddUnmask(data)
	})
}

func FuzzClientMessages(f *testing.F) {
	cfg := Config{RoundID: []byte("fz"), NumClients: 4, Threshold: 3, VectorLen: 3, Clip: 1}
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _ := NewClient(cfg, 1)
		_, _ = c.AdvertiseKeys()
		_, _ = c.ShareKeys(data)
		c.phase = cShared
		c.dir = map[uint32]KeysMsg{}
		_, _ = c.MaskedInput(data, make([]float32, 3))
		c.phase = cMasked
		_, _ = c.Unmask(data)
	})
}

func ExampleServer() {
	cfg := Config{RoundID: []byte("round-1"), NumClients: 3, Threshold: 2, VectorLen: 2, Clip: 10}
	srv, _ := NewServer(cfg)
	clients := []*Client{}
	for id := uint32(1); id <= 3; id++ {
		c, _ := NewClient(cfg, id)
		clients = append(clients, c)
		m, _ := c.AdvertiseKeys()
		_ = srv.AddKeys(m)
	}
	dir, _ := srv.Directory()
	for _, c := range clients {
		m, _ := c.ShareKeys(dir)
		_ = srv.AddShares(m)
	}
	dels, _ := srv.Deliveries()
	updates := [][]float32{{1, 2}, {3, 4}, {5, 6}}
	for i, c := range clients[:2] { // client 3 drops out
		m, _ := c.MaskedInput(dels[c.ID()], updates[i])
		_ = srv.AddMasked(m)
	}
	req, _ := srv.UnmaskRequest()
	for _, c := range clients[:2] {
		m, _ := c.Unmask(req)
		_ = srv.AddUnmask(m)
	}
	sum, survivors, err := srv.Result()
	fmt.Printf("%.4f from %v, %v\n", sum, survivors, err)
	// Output: [4.0000 6.0000] from [1 2], <nil>
}
