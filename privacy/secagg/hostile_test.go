package secagg

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// hostile is what a malicious client does to its own messages before they
// reach the hub (nil: honest).
type hostile struct {
	shares       func(m *SharesMsg)    // round 1
	masked       func(m *MaskedMsg)    // round 2
	unmask       func(m *UnmaskMsg)    // round 3
	complain     func(m *ComplaintMsg) // after the delivery
	deal         func(c *Client)       // before round 1
	noComplaints bool                  // drive the round without the complaint step
}

type played struct {
	srv      *Server
	sum      []uint32
	surv     []uint32
	excluded []uint32
	errs     map[uint32]error // honest clients' errors
	refused  map[uint32]error // complaints the server refused
}

// play runs a round in memory in which the clients in bad tamper with their
// own messages as told; every other client is honest.
func play(t *testing.T, cfg Config, inputs [][]float32, bad map[uint32]hostile) (*played, error) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &played{srv: srv, errs: map[uint32]error{}, refused: map[uint32]error{}}
	cs := map[uint32]*Client{}
	for id := uint32(1); int(id) <= cfg.NumClients; id++ {
		if cs[id], err = NewClient(cfg, id); err != nil {
			t.Fatal(err)
		}
		m, _ := cs[id].AdvertiseKeys()
		if err := srv.AddKeys(m); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := srv.Directory()
	if err != nil {
		return p, err
	}
	for id, c := range cs {
		if h := bad[id].deal; h != nil {
			h(c)
		}
		m, err := c.ShareKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		if h := bad[id].shares; h != nil {
			var sm SharesMsg
			_ = unmarshal(m, &sm, "shares")
			h(&sm)
			m, _ = marshal(sm)
		}
		if err := srv.AddShares(m); err != nil {
			t.Fatal(err)
		}
	}
	dels, err := srv.Deliveries()
	if err != nil {
		return p, err
	}
	useComplaints := true
	for _, h := range bad {
		useComplaints = useComplaints && !h.noComplaints
	}
	masked := map[uint32]bool{}
	if !useComplaints {
		for _, id := range sortedKeys(dels) {
			m, err := cs[id].MaskedInput(dels[id], inputs[id-1])
			if err != nil {
				p.errs[id] = err
				continue
			}
			p.addMasked(t, id, m, bad)
			masked[id] = true
		}
	} else {
		for _, id := range sortedKeys(dels) {
			m, err := cs[id].ReceiveShares(dels[id])
			if err != nil {
				p.errs[id] = err
				continue
			}
			if h := bad[id].complain; h != nil {
				var cm ComplaintMsg
				_ = unmarshal(m, &cm, "complaint")
				h(&cm)
				m, _ = marshal(cm)
			}
			if err := srv.AddComplaint(m); err != nil {
				p.refused[id] = err
			}
		}
		if p.excluded, err = srv.Exclude(); err != nil {
			return p, err
		}
		for _, id := range sortedKeys(dels) {
			if p.errs[id] != nil || slices.Contains(p.excluded, id) {
				continue
			}
			m, err := cs[id].MaskInput(inputs[id-1], p.excluded)
			if err != nil {
				p.errs[id] = err
				continue
			}
			p.addMasked(t, id, m, bad)
			masked[id] = true
		}
	}
	req, err := srv.UnmaskRequest()
	if err != nil {
		return p, err
	}
	for _, id := range sortedKeys(masked) {
		m, err := cs[id].Unmask(req)
		if err != nil {
			p.errs[id] = err
			continue
		}
		if h := bad[id].unmask; h != nil {
			var um UnmaskMsg
			_ = unmarshal(m, &um, "unmask")
			h(&um)
			m, _ = marshal(um)
		}
		if err := srv.AddUnmask(m); err != nil {
			t.Fatal(err)
		}
	}
	p.sum, p.surv, err = srv.resultRaw()
	return p, err
}

func (p *played) addMasked(t *testing.T, id uint32, m []byte, bad map[uint32]hostile) {
	t.Helper()
	if h := bad[id].masked; h != nil {
		var mm MaskedMsg
		_ = unmarshal(m, &mm, "masked")
		h(&mm)
		m, _ = marshal(mm)
	}
	if err := p.srv.AddMasked(m); err != nil {
		t.Fatal(err)
	}
}

// corrupt flips a bit of a sealed box's tag.
func corrupt(b []byte) []byte {
	b = slices.Clone(b)
	b[len(b)-1] ^= 1
	return b
}

func sumOK(t *testing.T, cfg Config, in [][]float32, p *played, want []uint32) {
	t.Helper()
	if !slices.Equal(p.surv, want) {
		t.Fatalf("survivors %v, want %v", p.surv, want)
	}
	exp := expected(cfg, in, want)
	for i := range exp {
		if p.sum[i] != exp[i] {
			t.Fatalf("value %d: ring sum %d, want the honest survivors' %d", i, p.sum[i], exp[i])
		}
	}
}

// One malicious client sends one share box that does not open. Honest
// clients must not abort: the box only costs its recipient a share of the
// sender's secrets, which the other holders still cover, so the round
// completes with every client (driven without the complaint step, as the
// MaskedInput shortcut does).
func TestOneBadShareBoxDoesNotAbort(t *testing.T) {
	cfg := Config{RoundID: []byte("bad-box"), NumClients: 6, Threshold: 4, VectorLen: 64, Clip: 2}
	in := randomInputs(6, 64, 3)
	bad := map[uint32]hostile{3: {noComplaints: true, shares: func(m *SharesMsg) {
		m.Shares[0].Box = corrupt(m.Shares[0].Box)
	}}}
	p, err := play(t, cfg, in, bad)
	if err != nil {
		t.Fatalf("round failed: %v (honest clients' errors %v)", err, p.errs)
	}
	if len(p.errs) != 0 {
		t.Fatalf("honest clients aborted: %v", p.errs)
	}
	sumOK(t, cfg, in, p, []uint32{1, 2, 3, 4, 5, 6})
}

// A malicious holder sends a wrong Shamir share of a survivor's self-mask
// seed. The hub must not take the first t shares and give up: it tries
// other subsets, checks each reconstruction against the commitment, finishes
// the round, and names the holder (not the survivor) as the culprit.
func TestBadUnmaskShareIsOutvoted(t *testing.T) {
	cfg := Config{RoundID: []byte("bad-share"), NumClients: 7, Threshold: 4, VectorLen: 32, Clip: 2}
	in := randomInputs(7, 32, 4)
	bad := map[uint32]hostile{2: {unmask: func(m *UnmaskMsg) {
		for i := range m.Self {
			if m.Self[i].Of != 2 { // poison its share of every other survivor's seed
				y := slices.Clone(m.Self[i].Y)
				y[len(y)-1] ^= 0x5a
				m.Self[i].Y = y
			}
		}
	}}}
	p, err := play(t, cfg, in, bad)
	if err != nil {
		t.Fatalf("round failed on one bad holder: %v", err)
	}
	sumOK(t, cfg, in, p, []uint32{1, 2, 3, 4, 5, 6, 7})
	cs := p.srv.Culprits()
	if len(cs) != 1 || cs[0].ID != 2 {
		t.Fatalf("culprits %+v, want client 2 alone", cs)
	}
}

// A malicious client seals every box with garbage, so no one can help
// recover its secrets. The recipients complain, the hub excludes it before
// anyone masks, and the round completes with the honest quorum; the culprit
// is named, its victims are not.
func TestBadBoxSenderIsExcluded(t *testing.T) {
	cfg := Config{RoundID: []byte("bad-sender"), NumClients: 6, Threshold: 4, VectorLen: 48, Clip: 2}
	in := randomInputs(6, 48, 5)
	bad := map[uint32]hostile{3: {shares: func(m *SharesMsg) {
		for i := range m.Shares {
			m.Shares[i].Box = corrupt(m.Shares[i].Box)
		}
	}}}
	p, err := play(t, cfg, in, bad)
	if err != nil {
		t.Fatalf("round failed: %v (errors %v)", err, p.errs)
	}
	if !slices.Equal(p.excluded, []uint32{3}) {
		t.Fatalf("excluded %v, want [3]", p.excluded)
	}
	sumOK(t, cfg, in, p, []uint32{1, 2, 4, 5, 6})
	cs := p.srv.Culprits()
	if len(cs) != 1 || cs[0].ID != 3 || cs[0].Disputed {
		t.Fatalf("culprits %+v, want client 3", cs)
	}
	// Its masked input, if it still sends one, is refused.
	mm, _ := marshal(MaskedMsg{From: 3, Data: make([]byte, 4*cfg.VectorLen)})
	srv, _ := NewServer(cfg)
	srv.phase, srv.closed, srv.u1 = sMasked, true, map[uint32]bool{1: true}
	if err := srv.AddMasked(mm); !errors.Is(err, ErrMessage) {
		t.Fatalf("masked input of an excluded client: %v", err)
	}
}

// A malicious client that lies in its complaint: about two honest
// neighbours it is the common end and is excluded alone; about one, the
// dispute cannot be resolved and both are excluded — one faulty client
// costs at most one honest client its round.
func TestFalseComplaints(t *testing.T) {
	cfg := Config{RoundID: []byte("liar"), NumClients: 7, Threshold: 4, VectorLen: 16, Clip: 2}
	in := randomInputs(7, 16, 6)
	for _, tc := range []struct {
		accuse []uint32
		excl   []uint32
	}{{[]uint32{1, 4}, []uint32{2}}, {[]uint32{5}, []uint32{2, 5}}} {
		bad := map[uint32]hostile{2: {complain: func(m *ComplaintMsg) { m.Bad = tc.accuse }}}
		p, err := play(t, cfg, in, bad)
		if err != nil {
			t.Fatalf("accusing %v: %v", tc.accuse, err)
		}
		if !slices.Equal(p.excluded, tc.excl) {
			t.Fatalf("accusing %v: excluded %v, want %v", tc.accuse, p.excluded, tc.excl)
		}
		var want []uint32
		for id := uint32(1); id <= 7; id++ {
			if !slices.Contains(tc.excl, id) {
				want = append(want, id)
			}
		}
		sumOK(t, cfg, in, p, want)
	}
	// A complaint about itself (whose box it was not given) is refused and
	// excludes no one.
	p, err := play(t, cfg, in, map[uint32]hostile{2: {complain: func(m *ComplaintMsg) { m.Bad = []uint32{2} }}})
	if err != nil || !errors.Is(p.refused[2], ErrMessage) || len(p.excluded) != 0 {
		t.Fatalf("self-complaint: %v, refused %v, excluded %v", err, p.refused, p.excluded)
	}
}

// A malicious client encodes values far outside its clip range before
// masking (here: adds 2^30 to every ring element of its masked input, twice
// the whole honest range). Masked values cannot be
// inspected, but the sum can: it lies outside survivors*Clip, the hub
// clamps it there and counts it.
func TestOutOfRangeSumIsClampedAndCounted(t *testing.T) {
	cfg := Config{RoundID: []byte("range"), NumClients: 5, Threshold: 3, VectorLen: 40, Clip: 1}
	in := randomInputs(5, 40, 7)
	bad := map[uint32]hostile{4: {masked: func(m *MaskedMsg) {
		for i := 0; i < len(m.Data); i += 4 {
			binary.LittleEndian.PutUint32(m.Data[i:], binary.LittleEndian.Uint32(m.Data[i:])+1<<30)
		}
	}}}
	p, err := play(t, cfg, in, bad)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.srv.OutOfRange(); got != cfg.VectorLen {
		t.Fatalf("%d values flagged out of range, want all %d", got, cfg.VectorLen)
	}
	for i, v := range cfg.Dequantize(p.sum) {
		if v > 5*cfg.Clip*(1+1e-6) || v < -5*cfg.Clip*(1+1e-6) {
			t.Fatalf("value %d: %v beyond survivors*Clip = %v", i, v, 5*cfg.Clip)
		}
	}
	// Honest rounds flag nothing.
	p, err = play(t, cfg, in, nil)
	if err != nil || p.srv.OutOfRange() != 0 {
		t.Fatalf("honest round: %v, %d out of range", err, p.srv.OutOfRange())
	}
}

// A malicious client deals shares of a seed other than the one it committed
// to, in boxes that open: no one can tell before unmasking, and no subset
// of shares reconstructs its commitment. The round is lost, but the dealer,
// not its holders, is named.
func TestInconsistentDealerIsNamed(t *testing.T) {
	cfg := Config{RoundID: []byte("dealer"), NumClients: 6, Threshold: 4, VectorLen: 8, Clip: 2}
	in := randomInputs(6, 8, 8)
	bad := map[uint32]hostile{5: {deal: func(c *Client) { c.selfSeed = make([]byte, 32) }}}
	p, err := play(t, cfg, in, bad)
	if !errors.Is(err, ErrAbort) {
		t.Fatalf("round with an inconsistent dealer: %v", err)
	}
	cs := p.srv.Culprits()
	if len(cs) != 1 || cs[0].ID != 5 {
		t.Fatalf("culprits %+v, want the dealer 5 alone", cs)
	}
}
