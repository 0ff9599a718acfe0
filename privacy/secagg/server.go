package secagg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/fennec-edge/fennec/privacy/internal/shamir"
)

type serverPhase int

const (
	sKeys serverPhase = iota
	sShares
	sMasked
	sUnmask
	sDone
)

// Server is the hub's side of a round. It sees only public keys, encrypted
// shares it cannot open, masked inputs and the shares needed to remove the
// masks from the sum. Each phase collects messages (AddXxx, in any order,
// from any subset of clients) until the federation layer closes it by asking
// for the next broadcast (Directory, Deliveries, UnmaskRequest, Result);
// clients that have not answered by then count as dropped. Not safe for
// concurrent use.
type Server struct {
	cfg   Config
	nbrs  map[uint32][]uint32
	phase serverPhase

	keys   map[uint32]KeysMsg
	boxes  map[uint32][]SealedShare // by recipient, Peer = sender
	u1     map[uint32]bool          // sent shares
	u2     map[uint32]bool          // sent masked input
	sum    []uint32
	selfSh map[uint32]map[uint32][]byte // of -> from -> share
	maskSh map[uint32]map[uint32][]byte
	u3     map[uint32]bool // answered unmask

	delivered  map[uint32][]uint32 // recipient -> senders whose boxes it was given
	complaints map[uint32][]uint32 // complainer -> senders of its bad boxes
	closed     bool                // the complaint step is over
	culprits   []Culprit
	outOfRange int
}

// Culprit is a client the server holds responsible for a failure.
type Culprit struct {
	ID     uint32
	Reason string
	// Disputed: one complaint between two clients that nothing else
	// corroborates; either may be at fault, and both were excluded.
	Disputed bool
}

// NewServer prepares the hub for a round.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, nbrs: cfg.neighbours(),
		keys: map[uint32]KeysMsg{}, boxes: map[uint32][]SealedShare{},
		u1: map[uint32]bool{}, u2: map[uint32]bool{}, u3: map[uint32]bool{},
		selfSh: map[uint32]map[uint32][]byte{}, maskSh: map[uint32]map[uint32][]byte{},
		delivered: map[uint32][]uint32{}, complaints: map[uint32][]uint32{},
	}, nil
}

func (s *Server) want(p serverPhase, what string) error {
	if s.phase != p {
		return fmt.Errorf("%w: %s not accepted now", ErrPhase, what)
	}
	return nil
}

// AddKeys accepts a client's KeysMsg (round 0).
func (s *Server) AddKeys(msg []byte) error {
	if err := s.want(sKeys, "keys"); err != nil {
		return err
	}
	var k KeysMsg
	if err := unmarshal(msg, &k, "keys"); err != nil {
		return err
	}
	if err := checkKeys(s.cfg, k); err != nil {
		return err
	}
	if _, dup := s.keys[k.From]; dup {
		return fmt.Errorf("%w: keys from %d twice", ErrMessage, k.From)
	}
	s.keys[k.From] = k
	return nil
}

// Directory closes round 0 and returns the Directory to broadcast to the
// clients that advertised keys. Fewer than Threshold+1 clients abort.
func (s *Server) Directory() ([]byte, error) {
	if err := s.want(sKeys, "Directory"); err != nil {
		return nil, err
	}
	if len(s.keys) < s.cfg.Threshold+1 {
		return nil, fmt.Errorf("%w: %d clients advertised keys, need %d", ErrAbort, len(s.keys), s.cfg.Threshold+1)
	}
	var d Directory
	for _, id := range sortedKeys(s.keys) {
		d.Keys = append(d.Keys, s.keys[id])
	}
	s.phase = sShares
	return marshal(d)
}

// AddShares accepts a client's SharesMsg (round 1): exactly one box for
// each of its neighbours that advertised keys.
func (s *Server) AddShares(msg []byte) error {
	if err := s.want(sShares, "shares"); err != nil {
		return err
	}
	var m SharesMsg
	if err := unmarshal(msg, &m, "shares"); err != nil {
		return err
	}
	if _, ok := s.keys[m.From]; !ok {
		return fmt.Errorf("%w: shares from %d, which advertised no keys", ErrMessage, m.From)
	}
	if s.u1[m.From] {
		return fmt.Errorf("%w: shares from %d twice", ErrMessage, m.From)
	}
	var expect []uint32
	for _, v := range s.nbrs[m.From] {
		if _, ok := s.keys[v]; ok {
			expect = append(expect, v)
		}
	}
	if len(m.Shares) != len(expect) {
		return fmt.Errorf("%w: client %d sent %d shares, expected %d", ErrMessage, m.From, len(m.Shares), len(expect))
	}
	seen := map[uint32]bool{}
	for _, sh := range m.Shares {
		if _, found := slices.BinarySearch(expect, sh.Peer); !found || seen[sh.Peer] {
			return fmt.Errorf("%w: client %d sent a share for %d", ErrMessage, m.From, sh.Peer)
		}
		if len(sh.Box) > 1024 {
			return fmt.Errorf("%w: share box of %d bytes", ErrMessage, len(sh.Box))
		}
		seen[sh.Peer] = true
	}
	for _, sh := range m.Shares {
		s.boxes[sh.Peer] = append(s.boxes[sh.Peer], SealedShare{Peer: m.From, Box: sh.Box})
	}
	s.u1[m.From] = true
	return nil
}

// Deliveries closes round 1 and returns, for each client that sent shares,
// the Delivery of the shares addressed to it.
func (s *Server) Deliveries() (map[uint32][]byte, error) {
	if err := s.want(sShares, "Deliveries"); err != nil {
		return nil, err
	}
	if len(s.u1) < s.cfg.Threshold+1 {
		return nil, fmt.Errorf("%w: %d clients sent shares, need %d", ErrAbort, len(s.u1), s.cfg.Threshold+1)
	}
	out := map[uint32][]byte{}
	for id := range s.u1 {
		var d Delivery
		d.To = id
		for _, b := range s.boxes[id] {
			if s.u1[b.Peer] {
				d.Shares = append(d.Shares, b)
				s.delivered[id] = append(s.delivered[id], b.Peer)
			}
		}
		slices.SortFunc(d.Shares, func(a, b SealedShare) int { return int(a.Peer) - int(b.Peer) })
		slices.Sort(s.delivered[id])
		raw, err := marshal(d)
		if err != nil {
			return nil, err
		}
		out[id] = raw
	}
	s.boxes = nil
	s.sum = make([]uint32, s.cfg.VectorLen)
	s.phase = sMasked
	return out, nil
}

// AddComplaint accepts a client's ComplaintMsg (after the delivery, before
// the first masked input): the neighbours whose boxes to it did not open.
func (s *Server) AddComplaint(msg []byte) error {
	if err := s.want(sMasked, "complaint"); err != nil {
		return err
	}
	if s.closed {
		return fmt.Errorf("%w: complaint after the exclusions were fixed", ErrPhase)
	}
	var m ComplaintMsg
	if err := unmarshal(msg, &m, "complaint"); err != nil {
		return err
	}
	if !s.u1[m.From] {
		return fmt.Errorf("%w: complaint from %d, which sent no shares", ErrMessage, m.From)
	}
	if _, dup := s.complaints[m.From]; dup {
		return fmt.Errorf("%w: complaint from %d twice", ErrMessage, m.From)
	}
	for i, v := range m.Bad {
		if _, ok := slices.BinarySearch(s.delivered[m.From], v); !ok || slices.Contains(m.Bad[:i], v) {
			return fmt.Errorf("%w: client %d complains about %d, whose box it was not given (or twice)", ErrMessage, m.From, v)
		}
	}
	s.complaints[m.From] = slices.Clone(m.Bad)
	return nil
}

// Exclude closes the complaint step and returns the clients excluded from
// the round, which every remaining client must be told (Client.MaskInput):
// they count as having never sent shares, so no one masks with them, their
// masked inputs are refused and their secrets are never needed.
//
// Each complaint is an edge between complainer and accused. With a hub that
// relays boxes unchanged, every edge has a faulty end: either the sender
// sealed a bad box, or the recipient lies about it. The server cannot tell
// which (it cannot open boxes), so it excludes a small vertex cover of the
// complaint graph: repeatedly the client on the most remaining edges while
// that is at least two (a faulty client that sends several bad boxes, or
// complains about several neighbours, is the common end), then both ends of
// each remaining isolated edge (Disputed). One faulty client so costs at
// most one honest client its round, and none when it is on two edges or more.
// Without a call to Exclude before the first AddMasked, no one is excluded.
func (s *Server) Exclude() ([]uint32, error) {
	if err := s.want(sMasked, "Exclude"); err != nil {
		return nil, err
	}
	if s.closed {
		return nil, fmt.Errorf("%w: Exclude twice or after masked inputs", ErrPhase)
	}
	s.closed = true
	type edge struct{ a, b uint32 }
	edges := map[edge]bool{}
	for from, l := range s.complaints {
		for _, v := range l {
			edges[edge{min(from, v), max(from, v)}] = true
		}
	}
	var out []uint32
	exclude := func(id uint32, why string, disputed bool) {
		out = append(out, id)
		s.culprits = append(s.culprits, Culprit{ID: id, Reason: why, Disputed: disputed})
		delete(s.u1, id)
	}
	for len(edges) > 0 { // each pass removes at least one edge
		deg := map[uint32]int{}
		for e := range edges {
			deg[e.a]++
			deg[e.b]++
		}
		best, bd := uint32(0), 0
		for _, id := range sortedKeys(deg) {
			if deg[id] > bd {
				best, bd = id, deg[id]
			}
		}
		if bd < 2 {
			break
		}
		exclude(best, fmt.Sprintf("on %d share-box complaints (bad boxes sent or claimed)", bd), false)
		for e := range edges {
			if e.a == best || e.b == best {
				delete(edges, e)
			}
		}
	}
	rest := make([]edge, 0, len(edges))
	for e := range edges {
		rest = append(rest, e)
	}
	slices.SortFunc(rest, func(x, y edge) int { return int(x.a) - int(y.a) })
	for _, e := range rest {
		exclude(e.a, fmt.Sprintf("disputed share box with client %d", e.b), true)
		exclude(e.b, fmt.Sprintf("disputed share box with client %d", e.a), true)
	}
	slices.Sort(out)
	if len(s.u1) < s.cfg.Threshold+1 {
		return out, fmt.Errorf("%w: %d clients remain after excluding %v, need %d", ErrAbort, len(s.u1), out, s.cfg.Threshold+1)
	}
	return out, nil
}

// Culprits returns the clients held responsible so far: excluded for share
// boxes (Exclude), or caught sending unmask shares inconsistent with a
// verified reconstruction (Result).
func (s *Server) Culprits() []Culprit { return slices.Clone(s.culprits) }

// OutOfRange is the number of values of the last Result that lay outside
// the range honest inputs can reach (survivors * Clip) and were clamped to
// it: some client encoded values beyond its clip range (not attributable,
// the inputs being masked).
func (s *Server) OutOfRange() int { return s.outOfRange }

// AddMasked accepts a client's MaskedMsg (round 2) and adds it to the
// running sum; individual masked inputs are not kept.
func (s *Server) AddMasked(msg []byte) error {
	if err := s.want(sMasked, "masked input"); err != nil {
		return err
	}
	var m MaskedMsg
	if err := unmarshal(msg, &m, "masked input"); err != nil {
		return err
	}
	s.closed = true
	if !s.u1[m.From] || s.u2[m.From] {
		return fmt.Errorf("%w: masked input from %d unexpected, excluded or repeated", ErrMessage, m.From)
	}
	if len(m.Data) != 4*s.cfg.VectorLen {
		return fmt.Errorf("%w: masked input from %d has %d bytes, want %d", ErrMessage, m.From, len(m.Data), 4*s.cfg.VectorLen)
	}
	for i := range s.sum {
		s.sum[i] += binary.LittleEndian.Uint32(m.Data[4*i:])
	}
	s.u2[m.From] = true
	return nil
}

// UnmaskRequest closes round 2 and returns the UnmaskRequest to broadcast
// to the survivors. Fewer than Threshold survivors abort.
func (s *Server) UnmaskRequest() ([]byte, error) {
	if err := s.want(sMasked, "UnmaskRequest"); err != nil {
		return nil, err
	}
	if len(s.u2) < s.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d masked inputs, need %d", ErrAbort, len(s.u2), s.cfg.Threshold)
	}
	var r UnmaskRequest
	for _, id := range sortedKeys(s.u1) {
		if s.u2[id] {
			r.Survivors = append(r.Survivors, id)
		} else {
			r.Dropped = append(r.Dropped, id)
		}
	}
	s.phase = sUnmask
	return marshal(r)
}

// AddUnmask accepts a survivor's UnmaskMsg (round 3).
func (s *Server) AddUnmask(msg []byte) error {
	if err := s.want(sUnmask, "unmask shares"); err != nil {
		return err
	}
	var m UnmaskMsg
	if err := unmarshal(msg, &m, "unmask"); err != nil {
		return err
	}
	if !s.u2[m.From] || s.u3[m.From] {
		return fmt.Errorf("%w: unmask from %d unexpected or repeated", ErrMessage, m.From)
	}
	nb := s.nbrs[m.From]
	check := func(l []ShareOf, survivor bool) error {
		seen := map[uint32]bool{}
		for _, sh := range l {
			if _, ok := slices.BinarySearch(nb, sh.Of); !ok && sh.Of != m.From || seen[sh.Of] || !s.u1[sh.Of] || s.u2[sh.Of] != survivor || len(sh.Y) != shamir.ShareSize {
				return fmt.Errorf("%w: client %d sent an unexpected share of %d", ErrMessage, m.From, sh.Of)
			}
			seen[sh.Of] = true
		}
		return nil
	}
	if err := check(m.Self, true); err != nil {
		return err
	}
	if err := check(m.Mask, false); err != nil {
		return err
	}
	for _, sh := range m.Self {
		put(s.selfSh, sh.Of, m.From, sh.Y)
	}
	for _, sh := range m.Mask {
		put(s.maskSh, sh.Of, m.From, sh.Y)
	}
	s.u3[m.From] = true
	return nil
}

func put(m map[uint32]map[uint32][]byte, of, from uint32, y []byte) {
	if m[of] == nil {
		m[of] = map[uint32][]byte{}
	}
	m[of][from] = y
}

// maxSubsets bounds the Shamir subsets tried per secret when the first t
// shares do not reconstruct the committed value.
const maxSubsets = 256

// reconstruct combines t of the shares of one secret (holder -> share) into
// a value that check accepts (the commitment or public key published in
// round 0): first the lowest t holders not yet caught, then up to
// maxSubsets pseudo-random t-subsets, so that a few bad shares cannot
// poison it. Once a subset verifies, every other share is checked against
// it and its holder, when inconsistent, recorded as a culprit.
func (s *Server) reconstruct(shares map[uint32][]byte, of uint32, what string, check func([]byte) bool) ([]byte, error) {
	t := s.cfg.Threshold
	if len(shares) < t {
		return nil, fmt.Errorf("%w: only %d shares of client %d's %s, threshold %d", ErrAbort, len(shares), of, what, t)
	}
	caught := map[uint32]bool{}
	for _, c := range s.culprits {
		caught[c.ID] = true
	}
	xs := sortedKeys(shares)
	slices.SortStableFunc(xs, func(a, b uint32) int { return boolInt(caught[a]) - boolInt(caught[b]) })
	interp := func(sub []uint32) []byte {
		ys := make([][]byte, len(sub))
		for i, x := range sub {
			ys[i] = shares[x]
		}
		sec, err := shamir.Combine(sub, ys)
		if err != nil {
			return nil
		}
		return sec
	}
	combine := func(sub []uint32) []byte {
		if sec := interp(sub); sec != nil && check(sec) {
			return sec
		}
		return nil
	}
	seed := sha256.Sum256(u32(append([]byte("fennec/secagg/subsets\x00"), s.cfg.RoundID...), of))
	r := rand.New(rand.NewChaCha8(seed))
	base := slices.Clone(xs[:t])
	sec := combine(base)
	for try := 1; sec == nil && try < maxSubsets && len(xs) > t; try++ {
		perm := r.Perm(len(xs))
		for i := range base {
			base[i] = xs[perm[i]]
		}
		sec = combine(base)
	}
	if sec == nil {
		// Honest holders forward what the dealer sealed for them; with at
		// most len(xs)-t bad holders some subset would verify (and would
		// likely be found), so the likely culprit is the dealer.
		s.culprits = append(s.culprits, Culprit{ID: of, Reason: fmt.Sprintf("its shares of its %s reconstruct to no value it committed to (or more than %d of holders %v sent bad shares)", what, len(xs)-t, xs)})
		return nil, fmt.Errorf("%w: client %d's %s: no %d of the shares from holders %v reconstruct the value it committed to (a holder sent bad shares)", ErrAbort, of, what, t, xs)
	}
	// base verified: it lies on the dealer's polynomial. Any other share
	// that, swapped in, changes the secret is not.
	for _, x := range xs {
		if slices.Contains(base, x) {
			continue
		}
		sub := append(slices.Clone(base[1:]), x)
		if !bytes.Equal(interp(sub), sec) && !caught[x] {
			caught[x] = true
			s.culprits = append(s.culprits, Culprit{ID: x, Reason: fmt.Sprintf("sent a bad share of client %d's %s", of, what)})
		}
	}
	return sec, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Result closes round 3, removes the masks and returns the sum of the
// survivors' clipped, quantised updates (dequantised) and the survivors'
// IDs. The integer sum is exact; each value differs from the sum of the
// clipped float inputs by at most len(survivors)*Resolution()/2.
func (s *Server) Result() (sum []float64, survivors []uint32, err error) {
	raw, survivors, err := s.resultRaw()
	if err != nil {
		return nil, nil, err
	}
	return s.cfg.Dequantize(raw), survivors, nil
}

func (s *Server) resultRaw() ([]uint32, []uint32, error) {
	if err := s.want(sUnmask, "Result"); err != nil {
		return nil, nil, err
	}
	s.phase = sDone
	sum := s.sum
	s.sum = nil
	survivors := sortedKeys(s.u2)
	for _, u := range survivors {
		seed, err := s.reconstruct(s.selfSh[u], u, "self-mask seed", func(b []byte) bool {
			return bytes.Equal(selfCommit(s.cfg.RoundID, u, b), s.keys[u].SelfCommit)
		})
		if err != nil {
			return nil, nil, err
		}
		applyMask(sum, seed, -1)
	}
	for _, u := range sortedKeys(s.u1) {
		if s.u2[u] {
			continue
		}
		skb, err := s.reconstruct(s.maskSh[u], u, "mask key", func(b []byte) bool {
			k, err := ecdh.X25519().NewPrivateKey(b)
			return err == nil && bytes.Equal(k.PublicKey().Bytes(), s.keys[u].MaskPub)
		})
		if err != nil {
			return nil, nil, err
		}
		sk, err := ecdh.X25519().NewPrivateKey(skb)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range s.nbrs[u] {
			if !s.u2[v] {
				continue
			}
			seed, err := maskSeed(sk, s.keys[v].MaskPub, s.cfg.RoundID, u, v)
			if err != nil {
				return nil, nil, err
			}
			// v applied +mask if v < u, -mask otherwise; undo it.
			if v < u {
				applyMask(sum, seed, -1)
			} else {
				applyMask(sum, seed, +1)
			}
		}
	}
	s.outOfRange = s.cfg.clampSum(sum, len(survivors))
	return sum, survivors, nil
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	ks := make([]uint32, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
