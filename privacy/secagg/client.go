package secagg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/fennec-edge/fennec/privacy/internal/shamir"
)

type clientPhase int

const (
	cNew clientPhase = iota
	cAdvertised
	cShared
	cReceived
	cMasked
	cDone
)

// Client is one device's side of a secure-aggregation round. Its secrets
// (X25519 private keys, self-mask seed) never leave it except as Shamir
// shares encrypted to its neighbours. A Client is not safe for concurrent
// use; each method must be called once, in order.
type Client struct {
	cfg      Config
	id       uint32
	nbrs     []uint32
	encSK    *ecdh.PrivateKey
	maskSK   *ecdh.PrivateKey
	selfSeed []byte
	phase    clientPhase
	dir      map[uint32]KeysMsg  // neighbours' keys
	peers    []uint32            // neighbours whose share boxes the hub delivered
	held     map[uint32]shareBox // the boxes among them that opened
	bad      []uint32            // senders of boxes that did not open
	own      shareBox            // this client's own shares of its secrets
}

// NewClient prepares client id (1..NumClients) for the round.
func NewClient(cfg Config, id uint32) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if id < 1 || int(id) > cfg.NumClients {
		return nil, fmt.Errorf("secagg: client id %d outside 1..%d", id, cfg.NumClients)
	}
	c := &Client{cfg: cfg, id: id, nbrs: cfg.neighbours()[id]}
	var err error
	if c.encSK, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if c.maskSK, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	c.selfSeed = make([]byte, 32)
	rand.Read(c.selfSeed)
	return c, nil
}

// ID returns the client's ID.
func (c *Client) ID() uint32 { return c.id }

// AdvertiseKeys returns the round-0 message (KeysMsg).
func (c *Client) AdvertiseKeys() ([]byte, error) {
	if c.phase != cNew {
		return nil, fmt.Errorf("%w: AdvertiseKeys called twice", ErrPhase)
	}
	c.phase = cAdvertised
	return marshal(KeysMsg{From: c.id, EncPub: c.encSK.PublicKey().Bytes(), MaskPub: c.maskSK.PublicKey().Bytes(), SelfCommit: selfCommit(c.cfg.RoundID, c.id, c.selfSeed)})
}

func (c *Client) shareAAD(from, to uint32) []byte {
	return u32(u32(append([]byte("fennec/secagg/box\x00"), c.cfg.RoundID...), from), to)
}

// ShareKeys consumes the hub's Directory and returns the round-1 message
// (SharesMsg): Shamir shares of the self-mask seed and of the mask private
// key, one pair per neighbour that advertised keys, each encrypted to it.
func (c *Client) ShareKeys(directory []byte) ([]byte, error) {
	if c.phase != cAdvertised {
		return nil, fmt.Errorf("%w: ShareKeys before AdvertiseKeys or twice", ErrPhase)
	}
	var d Directory
	if err := unmarshal(directory, &d, "directory"); err != nil {
		return nil, err
	}
	all, err := checkDirectory(c.cfg, d)
	if err != nil {
		return nil, err
	}
	me, ok := all[c.id]
	if !ok || !bytes.Equal(me.EncPub, c.encSK.PublicKey().Bytes()) || !bytes.Equal(me.MaskPub, c.maskSK.PublicKey().Bytes()) {
		return nil, fmt.Errorf("%w: directory does not carry this client's own keys", ErrMessage)
	}
	c.dir = map[uint32]KeysMsg{}
	var xs []uint32
	for _, v := range c.nbrs {
		if k, ok := all[v]; ok {
			c.dir[v] = k
			xs = append(xs, v)
		}
	}
	// The client holds a share of its own secrets too (as in Bonawitz et
	// al., where every client shares to all, itself included).
	xs = append(xs, c.id)
	slices.Sort(xs)
	if len(xs) < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: only %d neighbours advertised keys, threshold %d", ErrAbort, len(xs)-1, c.cfg.Threshold)
	}
	selfShares, err := shamir.Split(nil, c.selfSeed, c.cfg.Threshold, xs)
	if err != nil {
		return nil, err
	}
	maskShares, err := shamir.Split(nil, c.maskSK.Bytes(), c.cfg.Threshold, xs)
	if err != nil {
		return nil, err
	}
	msg := SharesMsg{From: c.id}
	for i, v := range xs {
		if v == c.id {
			c.own = shareBox{From: c.id, To: c.id, Self: selfShares[i], Mask: maskShares[i]}
			continue
		}
		key, err := pairKey(c.encSK, c.dir[v].EncPub, c.cfg.RoundID, "fennec/secagg/box", c.id, v)
		if err != nil {
			return nil, err
		}
		pt, err := marshal(shareBox{From: c.id, To: v, Self: selfShares[i], Mask: maskShares[i]})
		if err != nil {
			return nil, err
		}
		box, err := seal(key, c.shareAAD(c.id, v), pt)
		if err != nil {
			return nil, err
		}
		msg.Shares = append(msg.Shares, SealedShare{Peer: v, Box: box})
	}
	c.phase = cShared
	return marshal(msg)
}

// checkDirectory validates a directory and indexes it by client ID.
func checkDirectory(cfg Config, d Directory) (map[uint32]KeysMsg, error) {
	all := make(map[uint32]KeysMsg, len(d.Keys))
	for _, k := range d.Keys {
		if err := checkKeys(cfg, k); err != nil {
			return nil, err
		}
		if _, dup := all[k.From]; dup {
			return nil, fmt.Errorf("%w: directory lists client %d twice", ErrMessage, k.From)
		}
		all[k.From] = k
	}
	return all, nil
}

func checkKeys(cfg Config, k KeysMsg) error {
	if k.From < 1 || int(k.From) > cfg.NumClients {
		return fmt.Errorf("%w: client id %d outside 1..%d", ErrMessage, k.From, cfg.NumClients)
	}
	if len(k.EncPub) != 32 || len(k.MaskPub) != 32 || len(k.SelfCommit) != 32 {
		return fmt.Errorf("%w: client %d: keys must be 32 bytes", ErrMessage, k.From)
	}
	if bytes.Equal(k.EncPub, k.MaskPub) {
		return fmt.Errorf("%w: client %d: the two public keys must differ", ErrMessage, k.From)
	}
	return nil
}

// ReceiveShares consumes the hub's Delivery of the share boxes addressed to
// this client and returns its ComplaintMsg: the senders whose boxes did not
// open (AEAD failure, undecodable or inconsistent contents). A bad box does
// not abort the round: it only costs this client its share of the sender's
// secrets. Every box is bound to (round, sender, recipient) by its key and
// associated data, so as long as the hub relays boxes unchanged, a box that
// fails is the sender's doing (a hub that alters a box in transit can make a
// recipient complain about an honest sender; see Server.Exclude).
func (c *Client) ReceiveShares(delivery []byte) ([]byte, error) {
	if c.phase != cShared {
		return nil, fmt.Errorf("%w: ReceiveShares before ShareKeys or twice", ErrPhase)
	}
	var d Delivery
	if err := unmarshal(delivery, &d, "delivery"); err != nil {
		return nil, err
	}
	if d.To != c.id {
		return nil, fmt.Errorf("%w: delivery addressed to %d, not %d", ErrMessage, d.To, c.id)
	}
	held := map[uint32]shareBox{}
	var peers, bad []uint32
	for _, s := range d.Shares {
		k, ok := c.dir[s.Peer]
		if !ok {
			return nil, fmt.Errorf("%w: delivery carries a share from %d, not a neighbour with keys", ErrMessage, s.Peer)
		}
		if slices.Contains(peers, s.Peer) {
			return nil, fmt.Errorf("%w: delivery carries two shares from %d", ErrMessage, s.Peer)
		}
		peers = append(peers, s.Peer)
		if b, ok := c.openBox(k, s); ok {
			held[s.Peer] = b
		} else {
			bad = append(bad, s.Peer)
		}
	}
	slices.Sort(peers)
	slices.Sort(bad)
	c.peers, c.held, c.bad = peers, held, bad
	c.phase = cReceived
	return marshal(ComplaintMsg{From: c.id, Bad: bad})
}

// openBox opens one share box from s.Peer; false when it does not
// authenticate or its contents are not the shares it must hold.
func (c *Client) openBox(k KeysMsg, s SealedShare) (shareBox, bool) {
	key, err := pairKey(c.encSK, k.EncPub, c.cfg.RoundID, "fennec/secagg/box", s.Peer, c.id)
	if err != nil {
		return shareBox{}, false
	}
	pt, err := open(key, c.shareAAD(s.Peer, c.id), s.Box)
	if err != nil {
		return shareBox{}, false
	}
	var b shareBox
	if unmarshal(pt, &b, "share box") != nil || b.From != s.Peer || b.To != c.id ||
		len(b.Self) != shamir.ShareSize || len(b.Mask) != shamir.ShareSize {
		return shareBox{}, false
	}
	return b, true
}

// Bad returns the senders whose share boxes did not open (after
// ReceiveShares).
func (c *Client) Bad() []uint32 { return slices.Clone(c.bad) }

// MaskedInput is ReceiveShares followed by MaskInput with no exclusions,
// for a federation that runs no complaint step: a bad box then only costs
// this client the sender's share.
func (c *Client) MaskedInput(delivery []byte, update []float32) ([]byte, error) {
	if c.phase != cShared {
		return nil, fmt.Errorf("%w: MaskedInput before ShareKeys or twice", ErrPhase)
	}
	if len(update) != c.cfg.VectorLen {
		return nil, fmt.Errorf("secagg: update has %d values, round expects %d", len(update), c.cfg.VectorLen)
	}
	if _, err := c.ReceiveShares(delivery); err != nil {
		return nil, err
	}
	return c.MaskInput(update, nil)
}

// MaskInput returns the round-2 message (MaskedMsg): update, clipped and
// quantised, plus the self mask, plus or minus the pairwise mask with every
// neighbour whose shares the hub delivered, except the clients the hub
// excluded (Server.Exclude), which count as having never sent shares.
func (c *Client) MaskInput(update []float32, excluded []uint32) ([]byte, error) {
	if c.phase != cReceived {
		return nil, fmt.Errorf("%w: MaskInput before ReceiveShares or twice", ErrPhase)
	}
	if len(update) != c.cfg.VectorLen {
		return nil, fmt.Errorf("secagg: update has %d values, round expects %d", len(update), c.cfg.VectorLen)
	}
	if len(excluded) > c.cfg.NumClients {
		return nil, fmt.Errorf("%w: %d exclusions for %d clients", ErrMessage, len(excluded), c.cfg.NumClients)
	}
	if slices.Contains(excluded, c.id) {
		return nil, fmt.Errorf("%w: the hub excluded this client (%d) from the round", ErrAbort, c.id)
	}
	var peers []uint32
	for _, v := range c.peers {
		if !slices.Contains(excluded, v) {
			peers = append(peers, v)
		}
	}
	// A kept client whose box to us failed is masked with all the same
	// (the hub's sum expects it); we just hold no share of its secrets.
	for _, v := range excluded {
		delete(c.held, v)
	}
	c.peers = peers
	if len(c.held)+1 < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: shares from only %d neighbours, threshold %d", ErrAbort, len(c.held), c.cfg.Threshold)
	}
	y := c.cfg.Quantize(update)
	applyMask(y, c.selfSeed, +1)
	for _, v := range peers {
		seed, err := maskSeed(c.maskSK, c.dir[v].MaskPub, c.cfg.RoundID, c.id, v)
		if err != nil {
			return nil, err
		}
		if c.id < v {
			applyMask(y, seed, +1)
		} else {
			applyMask(y, seed, -1)
		}
	}
	c.phase = cMasked
	return marshal(MaskedMsg{From: c.id, Data: encodeVec(y)})
}

// Unmask consumes the hub's UnmaskRequest and returns the round-3 message
// (UnmaskMsg): for each neighbour whose shares this client holds, its share
// of the self-mask seed if the neighbour survived, or of its mask key if it
// dropped out — never both, and only once per round.
func (c *Client) Unmask(request []byte) ([]byte, error) {
	if c.phase != cMasked {
		return nil, fmt.Errorf("%w: Unmask before MaskedInput or twice", ErrPhase)
	}
	var r UnmaskRequest
	if err := unmarshal(request, &r, "unmask request"); err != nil {
		return nil, err
	}
	surv, drop, err := checkRequest(c.cfg, r)
	if err != nil {
		return nil, err
	}
	if !surv[c.id] {
		return nil, fmt.Errorf("%w: this client is not listed as a survivor", ErrMessage)
	}
	if len(surv) < c.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d survivors, threshold %d", ErrAbort, len(surv), c.cfg.Threshold)
	}
	c.phase = cDone // answer at most once, whatever happens next
	msg := UnmaskMsg{From: c.id, Self: []ShareOf{{Of: c.id, Y: c.own.Self}}}
	for _, v := range c.nbrs {
		b, ok := c.held[v]
		if !ok {
			continue
		}
		switch {
		case surv[v]:
			msg.Self = append(msg.Self, ShareOf{Of: v, Y: b.Self})
		case drop[v]:
			msg.Mask = append(msg.Mask, ShareOf{Of: v, Y: b.Mask})
		default:
			return nil, fmt.Errorf("%w: neighbour %d shared keys but is neither survivor nor dropped", ErrMessage, v)
		}
	}
	return marshal(msg)
}

// checkRequest validates an UnmaskRequest: IDs in range, no repeats, the
// two lists disjoint.
func checkRequest(cfg Config, r UnmaskRequest) (surv, drop map[uint32]bool, err error) {
	surv, drop = map[uint32]bool{}, map[uint32]bool{}
	for _, l := range []struct {
		ids []uint32
		m   map[uint32]bool
	}{{r.Survivors, surv}, {r.Dropped, drop}} {
		for _, v := range l.ids {
			if v < 1 || int(v) > cfg.NumClients || surv[v] || drop[v] {
				return nil, nil, fmt.Errorf("%w: unmask request lists %d twice or out of range", ErrMessage, v)
			}
			l.m[v] = true
		}
	}
	return surv, drop, nil
}
