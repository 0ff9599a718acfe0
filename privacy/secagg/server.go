package secagg

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"fmt"
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
			}
		}
		slices.SortFunc(d.Shares, func(a, b SealedShare) int { return int(a.Peer) - int(b.Peer) })
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
	if !s.u1[m.From] || s.u2[m.From] {
		return fmt.Errorf("%w: masked input from %d unexpected or repeated", ErrMessage, m.From)
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

// reconstruct combines the first Threshold shares of one secret.
func (s *Server) reconstruct(shares map[uint32][]byte, of uint32, what string) ([]byte, error) {
	if len(shares) < s.cfg.Threshold {
		return nil, fmt.Errorf("%w: only %d shares of client %d's %s, threshold %d", ErrAbort, len(shares), of, what, s.cfg.Threshold)
	}
	xs := sortedKeys(shares)[:s.cfg.Threshold]
	ys := make([][]byte, len(xs))
	for i, x := range xs {
		ys[i] = shares[x]
	}
	sec, err := shamir.Combine(xs, ys)
	if err != nil {
		return nil, fmt.Errorf("%w: client %d's %s: %v", ErrAbort, of, what, err)
	}
	return sec, nil
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
		seed, err := s.reconstruct(s.selfSh[u], u, "self-mask seed")
		if err != nil {
			return nil, nil, err
		}
		if !bytes.Equal(selfCommit(s.cfg.RoundID, u, seed), s.keys[u].SelfCommit) {
			return nil, nil, fmt.Errorf("%w: client %d's self-mask seed does not match its commitment (bad shares)", ErrAbort, u)
		}
		applyMask(sum, seed, -1)
	}
	for _, u := range sortedKeys(s.u1) {
		if s.u2[u] {
			continue
		}
		skb, err := s.reconstruct(s.maskSh[u], u, "mask key")
		if err != nil {
			return nil, nil, err
		}
		sk, err := ecdh.X25519().NewPrivateKey(skb)
		if err != nil || !bytes.Equal(sk.PublicKey().Bytes(), s.keys[u].MaskPub) {
			return nil, nil, fmt.Errorf("%w: client %d's mask key does not match its public key (bad shares)", ErrAbort, u)
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
