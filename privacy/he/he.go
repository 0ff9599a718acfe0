package he

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// context holds the scheme objects shared by a party or the hub.
type context struct {
	setup  Setup
	params ckks.Parameters
	enc    *ckks.Encoder
	ckg    multiparty.PublicKeyGenProtocol
	crp    multiparty.PublicKeyGenCRP
	cks    multiparty.KeySwitchProtocol
	ctSize int
}

func newContext(s Setup) (*context, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	pi, _ := lookup(s.Params)
	params, err := ckks.NewParametersFromLiteral(pi.lit)
	if err != nil {
		return nil, fmt.Errorf("he: parameters: %w", err)
	}
	crs, err := sampling.NewKeyedPRNG(s.CRS)
	if err != nil {
		return nil, err
	}
	ckg := multiparty.NewPublicKeyGenProtocol(params)
	sigma := math.Exp2(float64(pi.floodLog))
	cks, err := multiparty.NewKeySwitchProtocol(params, ring.DiscreteGaussian{Sigma: sigma, Bound: 6 * sigma})
	if err != nil {
		return nil, err
	}
	c := &context{setup: s, params: params, enc: ckks.NewEncoder(params, 53), ckg: ckg, crp: ckg.SampleCRP(crs), cks: cks}
	c.ctSize = ckks.NewCiphertext(params, 1, params.MaxLevel()).BinarySize()
	return c, nil
}

// Slots is the number of values one ciphertext carries.
func (c *context) Slots() int { return c.params.MaxSlots() }

func (c *context) numCts(n int) int { return (n + c.Slots() - 1) / c.Slots() }

// decodeCt decodes and checks a fresh ciphertext of the expected shape.
func (c *context) decodeCt(b []byte) (*rlwe.Ciphertext, error) {
	if len(b) != c.ctSize {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes, want %d", ErrMessage, len(b), c.ctSize)
	}
	ct := ckks.NewCiphertext(c.params, 1, c.params.MaxLevel())
	if err := unmarshalBinary(ct, b, "ciphertext"); err != nil {
		return nil, err
	}
	if ct.Degree() != 1 || ct.Level() != c.params.MaxLevel() || !ct.IsNTT || ct.Value[0].N() != c.params.N() ||
		ct.Scale.Cmp(c.params.DefaultScale()) != 0 {
		return nil, fmt.Errorf("%w: ciphertext has the wrong shape, level or scale", ErrMessage)
	}
	return ct, nil
}

func (c *context) decodePoly(b []byte, level int, what string) (ring.Poly, error) {
	want := c.params.RingQ().AtLevel(level).NewPoly()
	if len(b) != want.BinarySize() {
		return ring.Poly{}, fmt.Errorf("%w: %s of %d bytes, want %d", ErrMessage, what, len(b), want.BinarySize())
	}
	p := ring.Poly{}
	if err := unmarshalBinary(&p, b, what); err != nil {
		return ring.Poly{}, err
	}
	if p.N() != want.N() || p.Level() != level {
		return ring.Poly{}, fmt.Errorf("%w: %s has the wrong shape", ErrMessage, what)
	}
	return p, nil
}

func checkIDs(ids []uint32, n int, what string) (map[uint32]bool, error) {
	m := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		if id < 1 || int(id) > n || m[id] {
			return nil, fmt.Errorf("%w: %s lists %d twice or out of range", ErrMessage, what, id)
		}
		m[id] = true
	}
	return m, nil
}

// Party is one device. Its secret key and threshold share stay inside it:
// only public-key shares, encrypted threshold shares, ciphertexts and
// flooded decryption shares leave.
type Party struct {
	ctx       *context
	id        uint32
	sk        *rlwe.SecretKey
	boxSK     *ecdh.PrivateKey
	pk        *rlwe.PublicKey
	boxPubs   map[uint32][]byte
	tsk       *multiparty.ShamirSecretShare
	lastRound uint64
	phase     int
}

// NewParty creates device id (1..Parties) and its secret key.
func NewParty(s Setup, id uint32) (*Party, error) {
	ctx, err := newContext(s)
	if err != nil {
		return nil, err
	}
	if id < 1 || int(id) > s.Parties {
		return nil, fmt.Errorf("he: party id %d outside 1..%d", id, s.Parties)
	}
	bk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Party{ctx: ctx, id: id, sk: rlwe.NewKeyGenerator(ctx.params).GenSecretKeyNew(), boxSK: bk}, nil
}

// Slots is the number of values per ciphertext.
func (p *Party) Slots() int { return p.ctx.Slots() }

// KeyGenShare returns this device's share of the collective public key.
func (p *Party) KeyGenShare() ([]byte, error) {
	if p.phase != 0 {
		return nil, fmt.Errorf("%w: KeyGenShare twice", ErrPhase)
	}
	sh := p.ctx.ckg.AllocateShare()
	p.ctx.ckg.GenShare(p.sk, p.ctx.crp, &sh)
	b, err := sh.MarshalBinary()
	if err != nil {
		return nil, err
	}
	p.phase = 1
	return marshal(KeyShareMsg{From: p.id, Share: b, BoxPub: p.boxSK.PublicKey().Bytes()})
}

// SetPublicKey installs the collective public key from the hub.
func (p *Party) SetPublicKey(msg []byte) error {
	if p.phase != 1 {
		return fmt.Errorf("%w: SetPublicKey before KeyGenShare or twice", ErrPhase)
	}
	var m PublicKeyMsg
	if err := unmarshal(msg, &m, "public key"); err != nil {
		return err
	}
	pk := rlwe.NewPublicKey(p.ctx.params)
	if err := unmarshalBinary(pk, m.PublicKey, "public key"); err != nil {
		return err
	}
	if pk.BinarySize() != rlwe.NewPublicKey(p.ctx.params).BinarySize() {
		return fmt.Errorf("%w: public key has the wrong shape", ErrMessage)
	}
	if len(m.BoxPubs) != p.ctx.setup.Parties || !bytes.Equal(m.BoxPubs[p.id], p.boxSK.PublicKey().Bytes()) {
		return fmt.Errorf("%w: directory does not list every party, or not this party's key", ErrMessage)
	}
	p.pk, p.boxPubs = pk, m.BoxPubs
	p.phase = 2
	return nil
}

func boxKey(priv *ecdh.PrivateKey, peer []byte, crs []byte, from, to uint32) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: bad box key: %v", ErrMessage, err)
	}
	sh, err := priv.ECDH(pub)
	if err != nil {
		return nil, err
	}
	info := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte("fennec/he/threshold"), from), to)
	return hkdf.Key(sha256.New, sh, crs, string(info), 32)
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// ThresholdShares (t < N only) returns Shamir shares of this device's
// secret key for every other device, each encrypted to it.
func (p *Party) ThresholdShares() ([]byte, error) {
	t := p.ctx.setup.threshold()
	if t == p.ctx.setup.Parties {
		return nil, fmt.Errorf("%w: N-of-N setup has no threshold shares", ErrPhase)
	}
	if p.phase != 2 {
		return nil, fmt.Errorf("%w: ThresholdShares before SetPublicKey or twice", ErrPhase)
	}
	thr := multiparty.NewThresholdizer(p.ctx.params)
	poly, err := thr.GenShamirPolynomial(t, p.sk)
	if err != nil {
		return nil, err
	}
	msg := ThresholdMsg{From: p.id}
	for to := uint32(1); int(to) <= p.ctx.setup.Parties; to++ {
		sh := thr.AllocateThresholdSecretShare()
		thr.GenShamirSecretShare(multiparty.ShamirPublicPoint(to), poly, &sh)
		if to == p.id {
			p.tsk = &sh
			continue
		}
		pt, err := sh.MarshalBinary()
		if err != nil {
			return nil, err
		}
		key, err := boxKey(p.boxSK, p.boxPubs[to], p.ctx.setup.CRS, p.id, to)
		if err != nil {
			return nil, err
		}
		a, err := gcm(key)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, a.NonceSize())
		rand.Read(nonce)
		msg.Shares = append(msg.Shares, Sealed{Peer: to, Box: a.Seal(nonce, nonce, pt, nil)})
	}
	p.phase = 3
	return marshal(msg)
}

// ReceiveThresholdShares (t < N only) opens the shares from every other
// device and sums them into this device's threshold secret share.
func (p *Party) ReceiveThresholdShares(msg []byte) error {
	if p.phase != 3 {
		return fmt.Errorf("%w: ReceiveThresholdShares before ThresholdShares or twice", ErrPhase)
	}
	var d ThresholdDelivery
	if err := unmarshal(msg, &d, "threshold delivery"); err != nil {
		return err
	}
	if d.To != p.id || len(d.Shares) != p.ctx.setup.Parties-1 {
		return fmt.Errorf("%w: threshold delivery for %d with %d shares", ErrMessage, d.To, len(d.Shares))
	}
	thr := multiparty.NewThresholdizer(p.ctx.params)
	acc := thr.AllocateThresholdSecretShare()
	if err := thr.AggregateShares(acc, *p.tsk, &acc); err != nil {
		return err
	}
	seen := map[uint32]bool{p.id: true}
	for _, s := range d.Shares {
		if seen[s.Peer] || s.Peer < 1 || int(s.Peer) > p.ctx.setup.Parties {
			return fmt.Errorf("%w: threshold share from %d repeated or out of range", ErrMessage, s.Peer)
		}
		seen[s.Peer] = true
		key, err := boxKey(p.boxSK, p.boxPubs[s.Peer], p.ctx.setup.CRS, s.Peer, p.id)
		if err != nil {
			return err
		}
		a, err := gcm(key)
		if err != nil {
			return err
		}
		if len(s.Box) < a.NonceSize()+a.Overhead() {
			return fmt.Errorf("%w: threshold share box too short", ErrMessage)
		}
		pt, err := a.Open(nil, s.Box[:a.NonceSize()], s.Box[a.NonceSize():], nil)
		if err != nil {
			return fmt.Errorf("%w: threshold share from %d does not authenticate", ErrMessage, s.Peer)
		}
		sh := thr.AllocateThresholdSecretShare()
		if len(pt) != sh.BinarySize() {
			return fmt.Errorf("%w: threshold share from %d has the wrong size", ErrMessage, s.Peer)
		}
		if err := unmarshalBinary(&sh, pt, "threshold share"); err != nil {
			return err
		}
		if err := thr.AggregateShares(acc, sh, &acc); err != nil {
			return fmt.Errorf("%w: %v", ErrMessage, err)
		}
	}
	p.tsk = &acc
	p.phase = 2
	return nil
}

// MaxUpdate is the most values one update may carry.
const MaxUpdate = 1 << 28

// cborHead is the length of a CBOR item head carrying argument v.
func cborHead(v uint64) int {
	switch {
	case v < 24:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

// putCBORHead appends the head of major type major with argument v.
func putCBORHead(dst []byte, major byte, v uint64) []byte {
	m := major << 5
	switch cborHead(v) {
	case 1:
		return append(dst, m|byte(v))
	case 2:
		return append(dst, m|24, byte(v))
	case 3:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(v))
	case 5:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), v)
}

// ciphertextMsgLen is the length of the deterministic CBOR CiphertextMsg
// from party from carrying n values: a map of three pairs (keys 1, 2, 3),
// From and Len as unsigned integers, and an array of numCts(n) byte
// strings of ctSize bytes each.
func (c *context) ciphertextMsgLen(from uint32, n int) int {
	cts := c.numCts(n)
	return 1 + 1 + cborHead(uint64(from)) + 1 + cborHead(uint64(n)) + 1 + cborHead(uint64(cts)) +
		cts*(cborHead(uint64(c.ctSize))+c.ctSize)
}

// checkUpdateLen checks the number of values of an update.
func checkUpdateLen(n int) error {
	if n < 1 || n > MaxUpdate {
		return fmt.Errorf("he: update of %d values (want 1..%d)", n, MaxUpdate)
	}
	return nil
}

// EncryptedLen is the length of the message Encrypt returns for n values,
// computed from the parameters (nothing is encrypted or allocated). Like
// Encrypt it fails with ErrPhase before SetPublicKey.
func (p *Party) EncryptedLen(n int) (int, error) {
	if p.pk == nil {
		return 0, fmt.Errorf("%w: Encrypt before SetPublicKey", ErrPhase)
	}
	if err := checkUpdateLen(n); err != nil {
		return 0, err
	}
	return p.ctx.ciphertextMsgLen(p.id, n), nil
}

// EncryptScratch is the host memory EncryptTo uses besides dst and update,
// whatever the update's length: one plaintext, one ciphertext and its
// encoding at a time, and the encoder's slot vector.
func (p *Party) EncryptScratch() int {
	return 3*p.ctx.ctSize + 8*p.Slots()
}

// Encrypt encrypts update under the collective public key. NaN and Inf
// values are encrypted as 0; a value above MaxAbsSum/Parties in absolute
// value is an error (the aggregate could wrap around the modulus).
func (p *Party) Encrypt(update []float32) ([]byte, error) {
	n, err := p.EncryptedLen(len(update))
	if err != nil {
		return nil, err
	}
	msg := make([]byte, n)
	if _, err := p.EncryptTo(msg, update); err != nil {
		return nil, err
	}
	return msg, nil
}

// EncryptTo is Encrypt writing the message into dst, which must hold at
// least EncryptedLen(len(update)) bytes, one ciphertext at a time: besides
// dst it uses EncryptScratch bytes, however long the update. It returns the
// message's length.
func (p *Party) EncryptTo(dst []byte, update []float32) (int, error) {
	need, err := p.EncryptedLen(len(update))
	if err != nil {
		return 0, err
	}
	if len(dst) < need {
		return 0, fmt.Errorf("he: message buffer of %d bytes, the update needs %d", len(dst), need)
	}
	lim := float64(MaxAbsSum) / float64(p.ctx.setup.Parties)
	for i, v := range update {
		if math.Abs(float64(v)) > lim {
			return 0, fmt.Errorf("he: update value %d is %v; values must be within +-%v (MaxAbsSum/Parties)", i, v, lim)
		}
	}
	enc := rlwe.NewEncryptor(p.ctx.params, p.pk)
	slots := p.Slots()
	// The deterministic CBOR of CiphertextMsg{From, Len, Cts}, as marshal
	// writes it (TestEncryptToMatchesMarshal).
	out := putCBORHead(dst[:0], 5, 3)
	out = putCBORHead(out, 0, 1)
	out = putCBORHead(out, 0, uint64(p.id))
	out = putCBORHead(out, 0, 2)
	out = putCBORHead(out, 0, uint64(len(update)))
	out = putCBORHead(out, 0, 3)
	out = putCBORHead(out, 4, uint64(p.ctx.numCts(len(update))))
	vals := make([]float64, slots)
	pt := ckks.NewPlaintext(p.ctx.params, p.ctx.params.MaxLevel())
	ct := ckks.NewCiphertext(p.ctx.params, 1, p.ctx.params.MaxLevel())
	for off := 0; off < len(update); off += slots {
		clear(vals)
		for i, v := range update[off:min(off+slots, len(update))] {
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
				vals[i] = f
			}
		}
		if err := p.ctx.enc.Encode(vals, pt); err != nil {
			return 0, err
		}
		if err := enc.Encrypt(pt, ct); err != nil {
			return 0, err
		}
		b, err := ct.MarshalBinary()
		if err != nil {
			return 0, err
		}
		if len(b) != p.ctx.ctSize {
			return 0, fmt.Errorf("he: ciphertext encoded to %d bytes, want %d", len(b), p.ctx.ctSize)
		}
		out = putCBORHead(out, 2, uint64(len(b)))
		out = append(out, b...)
	}
	if len(out) != need || &out[0] != &dst[0] {
		return 0, fmt.Errorf("he: internal error: message of %d bytes, computed %d", len(out), need)
	}
	return need, nil
}

// MaxCiphertextMsgLen is the longest valid CiphertextMsg of the current
// round (0 when no round is open): an he_add of a longer message is refused
// before it is decoded.
func (a *Aggregator) MaxCiphertextMsgLen() int {
	if a.contrib == nil || a.n == 0 {
		return 0
	}
	return a.ctx.ciphertextMsgLen(uint32(a.ctx.setup.Parties), a.n)
}

// DecryptShare returns this device's decryption share for the aggregate in
// the request. It refuses a request for fewer than MinAggregate
// contributions, one that does not list it as active, one with fewer than
// the threshold active, and any round number it has already answered.
func (p *Party) DecryptShare(req []byte) ([]byte, error) {
	if p.pk == nil {
		return nil, fmt.Errorf("%w: DecryptShare before setup", ErrPhase)
	}
	var r DecryptRequest
	if err := unmarshal(req, &r, "decrypt request"); err != nil {
		return nil, err
	}
	s := p.ctx.setup
	contrib, err := checkIDs(r.Contributors, s.Parties, "contributors")
	if err != nil {
		return nil, err
	}
	active, err := checkIDs(r.Active, s.Parties, "active")
	if err != nil {
		return nil, err
	}
	switch {
	case len(contrib) < s.minAggregate():
		return nil, fmt.Errorf("%w: refusing to decrypt an aggregate of %d contributions (minimum %d)", ErrMessage, len(contrib), s.minAggregate())
	case !active[p.id]:
		return nil, fmt.Errorf("%w: this party is not in the active set", ErrMessage)
	case len(active) != s.threshold():
		return nil, fmt.Errorf("%w: %d active parties, need exactly %d", ErrMessage, len(active), s.threshold())
	case r.Round <= p.lastRound:
		return nil, fmt.Errorf("%w: round %d already answered (last %d)", ErrMessage, r.Round, p.lastRound)
	case len(r.C1) == 0 || len(r.C1) > p.ctx.numCts(1<<28):
		return nil, fmt.Errorf("%w: %d ciphertexts", ErrMessage, len(r.C1))
	}
	sk := p.sk
	if s.threshold() < s.Parties {
		if p.tsk == nil {
			return nil, fmt.Errorf("%w: threshold setup not finished", ErrPhase)
		}
		var others []multiparty.ShamirPublicPoint
		pts := make([]multiparty.ShamirPublicPoint, 0, len(r.Active))
		for _, id := range r.Active {
			pts = append(pts, multiparty.ShamirPublicPoint(id))
			if id != p.id {
				others = append(others, multiparty.ShamirPublicPoint(id))
			}
		}
		cmb := multiparty.NewCombiner(p.ctx.params.Parameters, multiparty.ShamirPublicPoint(p.id), others, s.threshold())
		sk = rlwe.NewSecretKey(p.ctx.params)
		if err := cmb.GenAdditiveShare(pts, multiparty.ShamirPublicPoint(p.id), *p.tsk, sk); err != nil {
			return nil, err
		}
	}
	zero := rlwe.NewSecretKey(p.ctx.params)
	level := p.ctx.params.MaxLevel()
	out := DecryptShareMsg{From: p.id, Round: r.Round}
	cks := p.ctx.cks.ShallowCopy()
	for i, b := range r.C1 {
		c1, err := p.ctx.decodePoly(b, level, fmt.Sprintf("c1[%d]", i))
		if err != nil {
			return nil, err
		}
		ct := ckks.NewCiphertext(p.ctx.params, 1, level)
		ct.Value[1] = c1
		sh := cks.AllocateShare(level)
		cks.GenShare(sk, zero, ct, &sh)
		sb, err := sh.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out.Shares = append(out.Shares, sb)
	}
	p.lastRound = r.Round
	return marshal(out)
}

// Aggregator is the hub. It never holds a secret key.
type Aggregator struct {
	ctx      *context
	keyShare multiparty.PublicKeyGenShare
	keyFrom  map[uint32]bool
	boxPubs  map[uint32][]byte
	pkMsg    []byte
	relay    map[uint32][]Sealed
	relayed  map[uint32]bool

	round   uint64
	n       int
	agg     []*rlwe.Ciphertext
	contrib map[uint32]bool
	active  map[uint32]bool
	decAgg  []multiparty.KeySwitchShare
	decFrom map[uint32]bool
}

// NewAggregator prepares the hub.
func NewAggregator(s Setup) (*Aggregator, error) {
	ctx, err := newContext(s)
	if err != nil {
		return nil, err
	}
	return &Aggregator{ctx: ctx, keyShare: ctx.ckg.AllocateShare(), keyFrom: map[uint32]bool{}, boxPubs: map[uint32][]byte{},
		relay: map[uint32][]Sealed{}, relayed: map[uint32]bool{}}, nil
}

// Slots is the number of values per ciphertext.
func (a *Aggregator) Slots() int { return a.ctx.Slots() }

// AddKeyShare accepts a device's public-key share.
func (a *Aggregator) AddKeyShare(msg []byte) error {
	if a.pkMsg != nil {
		return fmt.Errorf("%w: public key already generated", ErrPhase)
	}
	var m KeyShareMsg
	if err := unmarshal(msg, &m, "key share"); err != nil {
		return err
	}
	if m.From < 1 || int(m.From) > a.ctx.setup.Parties || a.keyFrom[m.From] || len(m.BoxPub) != 32 {
		return fmt.Errorf("%w: key share from %d unexpected, repeated or malformed", ErrMessage, m.From)
	}
	sh := a.ctx.ckg.AllocateShare()
	if len(m.Share) != sh.BinarySize() {
		return fmt.Errorf("%w: key share of %d bytes, want %d", ErrMessage, len(m.Share), sh.BinarySize())
	}
	if err := unmarshalBinary(&sh, m.Share, "key share"); err != nil {
		return err
	}
	if sh.BinarySize() != a.keyShare.BinarySize() {
		return fmt.Errorf("%w: key share has the wrong shape", ErrMessage)
	}
	a.ctx.ckg.AggregateShares(a.keyShare, sh, &a.keyShare)
	a.keyFrom[m.From] = true
	a.boxPubs[m.From] = m.BoxPub
	return nil
}

// PublicKey returns, once every device's share is in, the message carrying
// the collective public key and the devices' box keys.
func (a *Aggregator) PublicKey() ([]byte, error) {
	if a.pkMsg != nil {
		return a.pkMsg, nil
	}
	if len(a.keyFrom) != a.ctx.setup.Parties {
		return nil, fmt.Errorf("%w: %d of %d key shares; key generation needs every party", ErrAbort, len(a.keyFrom), a.ctx.setup.Parties)
	}
	pk := rlwe.NewPublicKey(a.ctx.params)
	a.ctx.ckg.GenPublicKey(a.keyShare, a.ctx.crp, pk)
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if a.pkMsg, err = marshal(PublicKeyMsg{PublicKey: b, BoxPubs: a.boxPubs}); err != nil {
		return nil, err
	}
	return a.pkMsg, nil
}

// AddThresholdShares accepts a device's encrypted threshold shares (t < N).
func (a *Aggregator) AddThresholdShares(msg []byte) error {
	if a.pkMsg == nil {
		return fmt.Errorf("%w: threshold shares before the public key", ErrPhase)
	}
	var m ThresholdMsg
	if err := unmarshal(msg, &m, "threshold shares"); err != nil {
		return err
	}
	if !a.keyFrom[m.From] || a.relayed[m.From] || len(m.Shares) != a.ctx.setup.Parties-1 {
		return fmt.Errorf("%w: threshold shares from %d unexpected, repeated or incomplete", ErrMessage, m.From)
	}
	if _, err := checkIDs(append(slices.Collect(func(y func(uint32) bool) {
		for _, s := range m.Shares {
			if !y(s.Peer) {
				return
			}
		}
	}), m.From), a.ctx.setup.Parties, "threshold shares"); err != nil {
		return err
	}
	for _, s := range m.Shares {
		a.relay[s.Peer] = append(a.relay[s.Peer], Sealed{Peer: m.From, Box: s.Box})
	}
	a.relayed[m.From] = true
	return nil
}

// ThresholdDeliveries returns, once every device sent its shares, each
// device's delivery.
func (a *Aggregator) ThresholdDeliveries() (map[uint32][]byte, error) {
	if len(a.relayed) != a.ctx.setup.Parties {
		return nil, fmt.Errorf("%w: %d of %d devices sent threshold shares", ErrAbort, len(a.relayed), a.ctx.setup.Parties)
	}
	out := map[uint32][]byte{}
	for to, l := range a.relay {
		b, err := marshal(ThresholdDelivery{To: to, Shares: l})
		if err != nil {
			return nil, err
		}
		out[to] = b
	}
	a.relay = nil
	return out, nil
}

// StartRound begins aggregating updates of n values.
func (a *Aggregator) StartRound(n int) error {
	if a.pkMsg == nil {
		return fmt.Errorf("%w: no public key yet", ErrPhase)
	}
	if n < 1 || n > 1<<28 {
		return fmt.Errorf("he: update length %d", n)
	}
	a.round++
	a.n = n
	a.agg = nil
	a.contrib = map[uint32]bool{}
	a.active, a.decAgg, a.decFrom = nil, nil, nil
	return nil
}

// AddCiphertext adds a device's encrypted update to the aggregate.
func (a *Aggregator) AddCiphertext(msg []byte) error {
	if a.contrib == nil || a.active != nil {
		return fmt.Errorf("%w: no round collecting updates", ErrPhase)
	}
	var m CiphertextMsg
	if err := unmarshal(msg, &m, "ciphertexts"); err != nil {
		return err
	}
	if m.From < 1 || int(m.From) > a.ctx.setup.Parties || a.contrib[m.From] {
		return fmt.Errorf("%w: update from %d unexpected or repeated", ErrMessage, m.From)
	}
	if m.Len != a.n || len(m.Cts) != a.ctx.numCts(a.n) {
		return fmt.Errorf("%w: update of %d values in %d ciphertexts, round expects %d in %d", ErrMessage, m.Len, len(m.Cts), a.n, a.ctx.numCts(a.n))
	}
	cts := make([]*rlwe.Ciphertext, len(m.Cts))
	for i, b := range m.Cts {
		ct, err := a.ctx.decodeCt(b)
		if err != nil {
			return err
		}
		cts[i] = ct
	}
	rq := a.ctx.params.RingQ().AtLevel(a.ctx.params.MaxLevel())
	if a.agg == nil {
		a.agg = cts
	} else {
		for i, ct := range cts {
			rq.Add(a.agg[i].Value[0], ct.Value[0], a.agg[i].Value[0])
			rq.Add(a.agg[i].Value[1], ct.Value[1], a.agg[i].Value[1])
		}
	}
	a.contrib[m.From] = true
	return nil
}

// DecryptionRequest closes the collection of updates and returns the
// request to send to the active devices (all N for N-of-N, exactly t for
// t-of-N).
func (a *Aggregator) DecryptionRequest(active []uint32) ([]byte, error) {
	if a.contrib == nil || a.active != nil {
		return nil, fmt.Errorf("%w: no round collecting updates", ErrPhase)
	}
	s := a.ctx.setup
	act, err := checkIDs(active, s.Parties, "active")
	if err != nil {
		return nil, err
	}
	if len(act) != s.threshold() {
		return nil, fmt.Errorf("%w: %d active decryptors, need %d", ErrAbort, len(act), s.threshold())
	}
	if len(a.contrib) < s.minAggregate() {
		return nil, fmt.Errorf("%w: %d updates, devices decrypt only aggregates of %d or more", ErrAbort, len(a.contrib), s.minAggregate())
	}
	r := DecryptRequest{Round: a.round, Contributors: sortedIDs(a.contrib), Active: sortedIDs(act)}
	for _, ct := range a.agg {
		b, err := ct.Value[1].MarshalBinary()
		if err != nil {
			return nil, err
		}
		r.C1 = append(r.C1, b)
	}
	a.active = act
	a.decFrom = map[uint32]bool{}
	return marshal(r)
}

// AddDecryptionShare accepts an active device's decryption share.
func (a *Aggregator) AddDecryptionShare(msg []byte) error {
	if a.active == nil {
		return fmt.Errorf("%w: no decryption requested", ErrPhase)
	}
	var m DecryptShareMsg
	if err := unmarshal(msg, &m, "decryption share"); err != nil {
		return err
	}
	if !a.active[m.From] || a.decFrom[m.From] || m.Round != a.round || len(m.Shares) != len(a.agg) {
		return fmt.Errorf("%w: decryption share from %d unexpected, repeated or for another round", ErrMessage, m.From)
	}
	level := a.ctx.params.MaxLevel()
	shares := make([]multiparty.KeySwitchShare, len(m.Shares))
	for i, b := range m.Shares {
		p, err := a.ctx.decodePoly(b, level, "decryption share")
		if err != nil {
			return err
		}
		shares[i] = multiparty.KeySwitchShare{Value: p}
	}
	if a.decAgg == nil {
		a.decAgg = shares
	} else {
		for i := range shares {
			if err := a.ctx.cks.AggregateShares(a.decAgg[i], shares[i], &a.decAgg[i]); err != nil {
				return fmt.Errorf("%w: %v", ErrMessage, err)
			}
		}
	}
	a.decFrom[m.From] = true
	return nil
}

// Result decrypts the aggregate once every active device's share is in and
// returns the sum of the contributed updates (within CKKS precision) and
// the contributors.
func (a *Aggregator) Result() ([]float64, []uint32, error) {
	if a.active == nil || len(a.decFrom) != len(a.active) {
		return nil, nil, fmt.Errorf("%w: decryption shares incomplete", ErrAbort)
	}
	zero := rlwe.NewSecretKey(a.ctx.params)
	dec := rlwe.NewDecryptor(a.ctx.params, zero)
	slots := a.Slots()
	out := make([]float64, 0, len(a.agg)*slots)
	vals := make([]float64, slots)
	for i, ct := range a.agg {
		ks := ckks.NewCiphertext(a.ctx.params, 1, ct.Level())
		a.ctx.cks.KeySwitch(ct, a.decAgg[i], ks)
		pt := dec.DecryptNew(ks)
		if err := a.ctx.enc.Decode(pt, vals); err != nil {
			return nil, nil, err
		}
		out = append(out, vals...)
	}
	contributors := sortedIDs(a.contrib)
	a.contrib, a.active = nil, nil
	return out[:a.n], contributors, nil
}

func sortedIDs(m map[uint32]bool) []uint32 {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
