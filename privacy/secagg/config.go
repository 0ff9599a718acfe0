// Package secagg implements secure aggregation by pairwise masking
// (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
// Machine Learning", CCS 2017) over a sparse neighbour graph as in SecAgg+
// (Bell et al., CCS 2020; Flower's SecAgg+ is the practical anchor): the hub
// learns the sum of the clients' quantised updates and nothing else, and the
// round survives clients dropping out as long as every client that matters
// keeps Threshold live neighbours.
//
// Each party step is a plain function from CBOR bytes to CBOR bytes, so the
// federation layer can carry them over any transport (NATS):
//
//	client                          hub (Server)
//	AdvertiseKeys()        ----->   AddKeys            (round 0)
//	                       <-----   Directory()
//	ShareKeys(dir)         ----->   AddShares          (round 1)
//	                       <-----   Deliveries()[id]
//	MaskedInput(del, x)    ----->   AddMasked          (round 2)
//	                       <-----   UnmaskRequest()
//	Unmask(req)            ----->   AddUnmask          (round 3)
//	                                Result()
//
// Cryptography is the standard library's: X25519 (crypto/ecdh) key
// agreement, HKDF-SHA256 (crypto/hkdf) key derivation, AES-256-GCM for the
// shares in transit through the hub, AES-256-CTR as the mask generator, and
// Shamir sharing of the seeds over GF(2^521-1) (privacy/internal/shamir).
//
// Threat model: an honest-but-curious hub that may also see up to
// Threshold-1 colluding clients per neighbourhood, and clients that drop out
// at any point. A client answers the unmasking request once, and never
// reveals for the same peer both the self-mask seed and the mask key, so a
// hub that lies about who dropped out learns no individual input either.
// Malicious clients cannot learn inputs, nor abort a round with bad share
// boxes (recipients complain, Server.Exclude removes the sender before
// masking) or bad unmask shares (Result reconstructs from verified subsets
// and names the holders, Culprits). They can still shift the sum within
// the range honest inputs reach (Result clamps it there and counts values
// beyond, OutOfRange) and, by dealing shares of a secret other than the one
// they committed to, lose the round at unmasking (the dealer is named).
// Holding each input to its clip range needs zero-knowledge proofs, which
// are out of scope.
//
// The full round with the complaint step:
//
//	ReceiveShares(del)     ----->   AddComplaint       (after round 1)
//	                       <-----   Exclude()
//	MaskInput(x, excluded) ----->   AddMasked          (round 2)
package secagg

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Errors.
var (
	// ErrAbort: too few clients remain to finish the round; nothing about
	// any input is revealed, the round must be restarted.
	ErrAbort = errors.New("secagg: round aborted")
	// ErrMessage: a malformed, unexpected or inconsistent message.
	ErrMessage = errors.New("secagg: bad message")
	// ErrPhase: the call is not valid in the current phase.
	ErrPhase = errors.New("secagg: wrong phase")
)

// Config is the public configuration of one round, the same at every party.
type Config struct {
	// RoundID uniquely names the round (1..64 bytes, e.g. 16 random bytes);
	// keys and masks are bound to it, so nothing carries across rounds.
	RoundID []byte
	// NumClients is the number of clients, with IDs 1..NumClients.
	NumClients int
	// Neighbors is the SecAgg+ graph degree k (rounded up to even); 0, or
	// NumClients-1 and above, gives the complete graph of the original
	// protocol. A client's secrets are shared among its neighbours.
	Neighbors int
	// Threshold t is the number of shares needed to recover a client's
	// secrets, which are shared among the client itself and its neighbours
	// (degree+1 holders); 2t must exceed the degree and t must not exceed
	// it. A round survives as long as every client that shared keys keeps t
	// holders answering the unmask request.
	Threshold int
	// VectorLen is the number of values each client contributes.
	VectorLen int
	// Clip bounds each value to [-Clip, Clip] before quantisation.
	Clip float64
}

// MaxVectorLen bounds VectorLen (2^28 values = 1 GiB per masked vector).
const MaxVectorLen = 1 << 28

// MaxClients bounds NumClients.
const MaxClients = 1 << 16

// Degree returns the effective neighbour-graph degree.
func (c Config) Degree() int {
	k := c.Neighbors
	if k == 0 || k >= c.NumClients-1 {
		return c.NumClients - 1
	}
	return k + k%2
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case len(c.RoundID) == 0 || len(c.RoundID) > 64:
		return fmt.Errorf("secagg: config RoundID: must be 1..64 bytes, got %d", len(c.RoundID))
	case c.NumClients < 2 || c.NumClients > MaxClients:
		return fmt.Errorf("secagg: config NumClients: must be 2..%d, got %d", MaxClients, c.NumClients)
	case c.Neighbors < 0:
		return fmt.Errorf("secagg: config Neighbors: must be >= 0, got %d", c.Neighbors)
	case c.VectorLen < 1 || c.VectorLen > MaxVectorLen:
		return fmt.Errorf("secagg: config VectorLen: must be 1..%d, got %d", MaxVectorLen, c.VectorLen)
	case !(c.Clip > 0) || math.IsInf(c.Clip, 0):
		return fmt.Errorf("secagg: config Clip: must be positive and finite, got %v", c.Clip)
	}
	k := c.Degree()
	if c.Threshold < 1 || c.Threshold > k || 2*c.Threshold <= k {
		return fmt.Errorf("secagg: config Threshold: must satisfy degree/2 < t <= degree (degree %d), got %d", k, c.Threshold)
	}
	return nil
}

// Headroom is the factor of unused range in the ring: NumClients values of
// magnitude at most Clip*scale+1/2 sum to less than 2^31/Headroom in
// absolute value, so the sum in the ring Z_{2^32}, read as a signed
// integer, is the exact integer sum, and a sum beyond the honest range
// (survivors*Clip) is visible after unmasking: a client that encodes values
// outside its clip range (or garbage) lands there with probability at least
// 1-1/Headroom per value. Server.Result clamps such values and counts them
// (Server.OutOfRange). It costs log2(Headroom) bits of resolution.
const Headroom = 4

// scale is the fixed-point factor (see Headroom).
func (c Config) scale() float64 {
	return (math.MaxInt32 - float64(c.NumClients)) / (Headroom * float64(c.NumClients) * c.Clip)
}

// clampSum clamps a ring sum of n inputs to the range n honest inputs can
// reach, returning how many values lay outside it.
func (c Config) clampSum(sum []uint32, n int) int {
	lim := int64(n) * (int64(c.Clip*c.scale()) + 1)
	out := 0
	for i, v := range sum {
		switch x := int64(int32(v)); {
		case x > lim:
			sum[i], out = uint32(int32(lim)), out+1
		case x < -lim:
			sum[i], out = uint32(int32(-lim)), out+1
		}
	}
	return out
}

// Resolution is the quantisation step of one value: the sum is exact over
// the quantised values, each within Resolution/2 of the clipped input.
func (c Config) Resolution() float64 { return 1 / c.scale() }

// Quantize clips and quantises x into ring elements.
func (c Config) Quantize(x []float32) []uint32 {
	s := c.scale()
	out := make([]uint32, len(x))
	for i, v := range x {
		f := float64(v)
		switch {
		case math.IsNaN(f):
			f = 0
		case f > c.Clip:
			f = c.Clip
		case f < -c.Clip:
			f = -c.Clip
		}
		out[i] = uint32(int32(math.RoundToEven(f * s)))
	}
	return out
}

// Dequantize maps a ring sum back to real values.
func (c Config) Dequantize(sum []uint32) []float64 {
	s := c.scale()
	out := make([]float64, len(sum))
	for i, v := range sum {
		out[i] = float64(int32(v)) / s
	}
	return out
}

// neighbours returns the sorted neighbour IDs of every client: a Harary
// graph H(n, k) (each client joined to k/2 clients on either side on a
// ring) over a permutation of the IDs derived from the round ID, so the
// graph is public, random and the same at every party.
func (c Config) neighbours() map[uint32][]uint32 {
	n, k := c.NumClients, c.Degree()
	out := make(map[uint32][]uint32, n)
	if k == n-1 {
		for u := 1; u <= n; u++ {
			l := make([]uint32, 0, n-1)
			for v := 1; v <= n; v++ {
				if v != u {
					l = append(l, uint32(v))
				}
			}
			out[uint32(u)] = l
		}
		return out
	}
	seed := sha256.Sum256(append([]byte("fennec/secagg/graph\x00"), c.RoundID...))
	r := rand.New(rand.NewChaCha8(seed))
	perm := r.Perm(n)
	for pos, idx := range perm {
		u := uint32(idx + 1)
		var l []uint32
		for j := 1; j <= k/2; j++ {
			l = append(l, uint32(perm[(pos+j)%n]+1), uint32(perm[(pos-j+n)%n]+1))
		}
		slices.Sort(l)
		out[u] = slices.Compact(l)
	}
	return out
}
