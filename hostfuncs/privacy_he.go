package hostfuncs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/tetratelabs/wazero/api"
)

// HEParty is a device's side of the federation's threshold-HE setup, as
// he_encrypt uses it. Its keys stay inside it: only ciphertext messages
// come out. NewHEDevice adapts a *he.Party.
type HEParty interface {
	// MaxAbs is the largest absolute value Encrypt accepts.
	MaxAbs() float64
	// EncryptedLen is the length of the message EncryptTo writes for n
	// values. It must be computed, not measured: he_encrypt's size query
	// calls it before anything is allocated.
	EncryptedLen(n int) (int, error)
	// EncryptScratch is the host memory EncryptTo uses besides dst and
	// update, whatever the update's length.
	EncryptScratch() int
	// EncryptTo encrypts update under the collective public key into dst
	// (at least EncryptedLen(len(update)) bytes) as the CBOR
	// he.CiphertextMsg and returns its length. Errors wrap he.ErrPhase
	// before the key setup is complete.
	EncryptTo(dst []byte, update []float32) (int, error)
}

// HEHub is the hub's aggregation of the current round, as he_add and
// he_decrypt_aggregate use it. NewHEAggregation adapts a *he.Aggregator.
type HEHub interface {
	// Add adds a device's he.CiphertextMsg to the round's aggregate and
	// returns the number of contributions so far. msg is the guest's
	// memory: Add must not keep it past the call. Errors wrap
	// he.ErrMessage (malformed or repeated) or he.ErrPhase (no round).
	Add(msg []byte) (contributions int, err error)
	// Round describes the round now collecting updates.
	Round() HERound
	// Decrypt runs the collective decryption of the aggregate (the devices
	// answer with decryption shares) and returns the sum of the updates.
	// It closes the round.
	Decrypt(ctx context.Context) ([]float64, error)
}

// HERound is the state of the hub's current round.
type HERound struct {
	Open          bool // collecting updates
	Len           int  // values per update
	Contributions int  // updates added so far
	MinAggregate  int  // the least number of updates that may be decrypted
	MaxMessage    int  // the longest valid he.CiphertextMsg of the round (0: no bound known)
}

// HEDevice adapts a device's *he.Party for PrivacyServices.HE. It
// serialises use of the party (lattigo's encoder is not safe for
// concurrent use).
type HEDevice struct {
	mu     sync.Mutex
	p      *he.Party
	maxAbs float64
}

// NewHEDevice wraps party p of setup s.
func NewHEDevice(p *he.Party, s he.Setup) (*HEDevice, error) {
	if p == nil {
		return nil, errors.New("hostfuncs: NewHEDevice: nil party")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("hostfuncs: NewHEDevice: %w", err)
	}
	return &HEDevice{p: p, maxAbs: float64(he.MaxAbsSum) / float64(s.Parties)}, nil
}

// MaxAbs implements HEParty: he.MaxAbsSum / Parties.
func (d *HEDevice) MaxAbs() float64 { return d.maxAbs }

// EncryptTo implements HEParty.
func (d *HEDevice) EncryptTo(dst []byte, update []float32) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.p.EncryptTo(dst, update)
}

// EncryptedLen implements HEParty with he.Party.EncryptedLen: arithmetic on
// the parameters, nothing is encrypted.
func (d *HEDevice) EncryptedLen(n int) (int, error) { return d.p.EncryptedLen(n) }

// EncryptScratch implements HEParty.
func (d *HEDevice) EncryptScratch() int { return d.p.EncryptScratch() }

// ErrNoHEParty is the error an HESlot answers with while it holds no
// party; it wraps he.ErrPhase, so he_encrypt answers ESTATE.
var ErrNoHEParty = fmt.Errorf("%w: no homomorphic-encryption party on this host yet (a federation device has one after its he or he+dp key setup)", he.ErrPhase)

// HESlot is an HEParty whose party is set after the engine is built: a
// federation device learns its HE party only when the hub's key setup runs,
// and a new setup replaces it. Until Set (and after Set(nil)) it answers
// with ErrNoHEParty. It is safe for concurrent use.
type HESlot struct {
	mu sync.RWMutex
	p  HEParty
}

// Set makes p (nil: none) the party the slot forwards to.
func (s *HESlot) Set(p HEParty) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p = p
}

func (s *HESlot) get() HEParty {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.p
}

// MaxAbs implements HEParty (0 without a party).
func (s *HESlot) MaxAbs() float64 {
	if p := s.get(); p != nil {
		return p.MaxAbs()
	}
	return 0
}

// EncryptedLen implements HEParty.
func (s *HESlot) EncryptedLen(n int) (int, error) {
	if p := s.get(); p != nil {
		return p.EncryptedLen(n)
	}
	return 0, ErrNoHEParty
}

// EncryptScratch implements HEParty (0 without a party).
func (s *HESlot) EncryptScratch() int {
	if p := s.get(); p != nil {
		return p.EncryptScratch()
	}
	return 0
}

// EncryptTo implements HEParty.
func (s *HESlot) EncryptTo(dst []byte, update []float32) (int, error) {
	if p := s.get(); p != nil {
		return p.EncryptTo(dst, update)
	}
	return 0, ErrNoHEParty
}

// HEDecryptors reaches the devices that take part in a collective
// decryption. The federation layer implements it over its transport.
type HEDecryptors interface {
	// Active returns the parties that will decrypt: all N for N-of-N, or
	// exactly t reachable ones for t-of-N.
	Active(ctx context.Context) ([]uint32, error)
	// Shares sends the he.DecryptRequest req to the active parties and
	// returns their he.DecryptShareMsg answers.
	Shares(ctx context.Context, req []byte, active []uint32) ([][]byte, error)
}

// HEAggregation adapts the hub's *he.Aggregator for PrivacyServices.HEHub.
// The federation layer calls StartRound; guests add updates and decrypt
// the aggregate. It is safe for concurrent use.
type HEAggregation struct {
	mu    sync.Mutex
	agg   *he.Aggregator
	dec   HEDecryptors
	min   int
	n     int
	count int
	open  bool
}

// NewHEAggregation wraps the hub's aggregator of setup s; d collects the
// decryption shares.
func NewHEAggregation(agg *he.Aggregator, s he.Setup, d HEDecryptors) (*HEAggregation, error) {
	if agg == nil || d == nil {
		return nil, errors.New("hostfuncs: NewHEAggregation: nil aggregator or decryptors")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("hostfuncs: NewHEAggregation: %w", err)
	}
	m := s.MinAggregate
	if m == 0 {
		m = 2 // he.Setup's default
	}
	return &HEAggregation{agg: agg, dec: d, min: m}, nil
}

// StartRound begins collecting updates of n values (abandoning any
// unfinished round).
func (a *HEAggregation) StartRound(n int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.agg.StartRound(n); err != nil {
		return err
	}
	a.n, a.count, a.open = n, 0, true
	return nil
}

// Add implements HEHub.
func (a *HEAggregation) Add(msg []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.open {
		return 0, fmt.Errorf("%w: no round is collecting updates", he.ErrPhase)
	}
	if err := a.agg.AddCiphertext(msg); err != nil {
		return a.count, err
	}
	a.count++
	return a.count, nil
}

// Round implements HEHub.
func (a *HEAggregation) Round() HERound {
	a.mu.Lock()
	defer a.mu.Unlock()
	return HERound{Open: a.open, Len: a.n, Contributions: a.count, MinAggregate: a.min, MaxMessage: a.agg.MaxCiphertextMsgLen()}
}

// Decrypt implements HEHub. Whatever the outcome the round is closed: a
// failed decryption needs a new round.
func (a *HEAggregation) Decrypt(ctx context.Context) ([]float64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.open {
		return nil, fmt.Errorf("%w: no round is collecting updates", he.ErrPhase)
	}
	if a.count < a.min {
		return nil, fmt.Errorf("%w: %d updates, at least %d are needed to decrypt", he.ErrAbort, a.count, a.min)
	}
	active, err := a.dec.Active(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: choosing decryptors: %v", he.ErrAbort, err)
	}
	req, err := a.agg.DecryptionRequest(active)
	if err != nil {
		return nil, err
	}
	a.open = false
	shares, err := a.dec.Shares(ctx, req, active)
	if err != nil {
		return nil, fmt.Errorf("%w: collecting decryption shares: %v", he.ErrAbort, err)
	}
	for _, sh := range shares {
		if err := a.agg.AddDecryptionShare(sh); err != nil {
			return nil, fmt.Errorf("%w: a device's decryption share: %v", he.ErrAbort, err)
		}
	}
	sum, _, err := a.agg.Result()
	return sum, err
}

// he_encrypt(h, buf_ptr, buf_cap) -> length
func heEncrypt(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "privacy.he_encrypt"
	h, ptr, capacity := int32(stack[0]), uint32(stack[1]), int32(stack[2])
	ps := in.privacyServices()
	if ps == nil || ps.HE == nil {
		return in.fail(ESTATE, "%s: no homomorphic-encryption party on this host: HE keys exist only on a federation device after its he or he+dp key setup (fennec agent), never in a standalone run", op)
	}
	if capacity < 0 {
		return in.fail(EMEM, "%s: negative buffer capacity %d", op, capacity)
	}
	t, c, okh := in.f32Tensor(op, h)
	if !okh {
		return c
	}
	if t.Len() == 0 {
		return in.fail(ESHAPE, "%s: the tensor is empty", op)
	}
	if capacity > 0 {
		if _, okm := mem(mod, ptr, capacity); !okm {
			return in.fail(EMEM, "%s: buffer [%d, +%d) is outside guest memory", op, ptr, capacity)
		}
	}
	// The size query is arithmetic: nothing is read, allocated or
	// encrypted before the guest has a buffer of the message's length.
	need, err := ps.HE.EncryptedLen(t.Len())
	if err != nil {
		return in.failPrivacy(op, err)
	}
	if need > int(capacity) {
		return in.ciphertextLen(op, need)
	}
	buf, okm := mem(mod, ptr, int32(need))
	if !okm {
		return in.fail(EMEM, "%s: buffer [%d, +%d) is outside guest memory", op, ptr, need)
	}
	// The message is written into guest memory ciphertext by ciphertext;
	// the host holds a copy of the tensor and one ciphertext's scratch.
	scratch := int64(ps.HE.EncryptScratch()) // and readF32's copy, which it counts itself
	if c, okq := in.hold(op, "encryption scratch", scratch); !okq {
		return c
	}
	defer in.unhold(scratch)
	x, err := in.readF32(t)
	if err != nil {
		return in.failErr(op, err)
	}
	lim := ps.HE.MaxAbs()
	for i, v := range x {
		if math.Abs(float64(v)) > lim { // NaN passes and is encrypted as 0
			return in.fail(EINVAL, "%s: element %d is %v; values must lie within +-%v (he.MaxAbsSum/parties) so the aggregate cannot wrap", op, i, v, lim)
		}
	}
	n, err := ps.HE.EncryptTo(buf, x)
	if err != nil {
		return in.failPrivacy(op, err)
	}
	return ok(int32(n))
}

func (in *Instance) ciphertextLen(op string, n int) uint64 {
	if n > math.MaxInt32 {
		return in.fail(ETOOBIG, "%s: the ciphertext message would be %d bytes", op, n)
	}
	return ok(int32(n))
}

// he_add(ptr, len) -> contributions
func heAdd(ctx context.Context, in *Instance, mod api.Module, stack []uint64) uint64 {
	const op = "privacy.he_add"
	ptr, n := uint32(stack[0]), int32(stack[1])
	ps := in.privacyServices()
	if ps == nil || ps.HEHub == nil {
		return in.fail(ESTATE, "%s: this host aggregates no homomorphically encrypted round", op)
	}
	raw, okm := mem(mod, ptr, n)
	if !okm {
		return in.fail(EMEM, "%s: message [%d, +%d) is outside guest memory", op, ptr, n)
	}
	if n == 0 {
		return in.fail(EINVAL, "%s: empty message", op)
	}
	// A message longer than the round's is refused before it is decoded
	// (decoding copies it); the hub decodes straight from guest memory.
	if r := ps.HEHub.Round(); r.MaxMessage > 0 && int(n) > r.MaxMessage {
		return in.fail(EINVAL, "%s: message of %d bytes; this round's messages are at most %d", op, n, r.MaxMessage)
	}
	count, err := ps.HEHub.Add(raw)
	if err != nil {
		return in.failPrivacy(op, err)
	}
	return ok(int32(count))
}

// he_decrypt_aggregate(out) -> handle
func heDecryptAggregate(ctx context.Context, in *Instance, _ api.Module, stack []uint64) uint64 {
	const op = "privacy.he_decrypt_aggregate"
	out := int32(stack[0])
	ps := in.privacyServices()
	if ps == nil || ps.HEHub == nil {
		return in.fail(ESTATE, "%s: this host aggregates no homomorphically encrypted round", op)
	}
	r := ps.HEHub.Round()
	if !r.Open {
		return in.fail(ESTATE, "%s: no round is collecting updates", op)
	}
	if r.Contributions < r.MinAggregate {
		return in.fail(EDENIED, "%s: the aggregate holds %d updates; only aggregates of %d or more are decrypted", op, r.Contributions, r.MinAggregate)
	}
	o, oh, fresh, c, okr := in.result(op, out, gpu.F32, []int{r.Len})
	if !okr {
		return c
	}
	// The decrypted sum (f64) and its f32 copy.
	scratch := 12 * int64(r.Len)
	if c, okq := in.hold(op, "decryption scratch", scratch); !okq {
		if fresh {
			in.release(oh)
		}
		return c
	}
	defer in.unhold(scratch)
	sum, err := ps.HEHub.Decrypt(ctx)
	if err == nil && len(sum) != r.Len {
		err = fmt.Errorf("decryption returned %d values, the round has %d", len(sum), r.Len)
	}
	if err != nil {
		if fresh {
			in.release(oh)
		}
		c := EINTERNAL // the devices' or the transport's failure, not the guest's
		if errors.Is(err, he.ErrPhase) {
			c = ESTATE
		}
		return in.fail(c, "%s: %v", op, err)
	}
	x := make([]float32, len(sum))
	for i, v := range sum {
		x[i] = float32(v)
	}
	if err := in.writeF32(o, x); err != nil {
		if fresh {
			in.release(oh)
		}
		return in.failErr(op, err)
	}
	return ok(oh)
}
