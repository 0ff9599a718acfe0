// Package he implements threshold homomorphic aggregation with CKKS from
// github.com/tuneinsight/lattigo/v6 (its multiparty package): the devices
// generate a collective public key whose secret key is the sum of their own
// secret keys, each device encrypts its update under it, the hub adds the
// ciphertexts, and decrypting the aggregate needs decryption shares from the
// devices — all N of them (N-of-N), or any t of them when the devices also
// ran the threshold (Shamir) setup (t-of-N). Neither the hub nor any single
// device holds a key that decrypts another device's ciphertext, unlike a
// design that gives every client one shared secret key.
//
// Decryption is a collective key switch to the zero key with noise flooding
// (smudging), so the decryption shares do not leak the devices' secret keys.
// Each party step is a plain function on CBOR byte messages for the
// federation layer's transport:
//
//	device (Party)                       hub (Aggregator)
//	KeyGenShare()              ----->    AddKeyShare
//	                           <-----    PublicKey()       (key + directory)
//	SetPublicKey(msg)
//	[t<N] ThresholdShares()    ----->    AddThresholdShares
//	                           <-----    ThresholdDeliveries()[id]
//	[t<N] ReceiveThresholdShares(msg)
//	Encrypt(update)            ----->    AddCiphertext   (each round)
//	                           <-----    DecryptionRequest(active)
//	DecryptShare(req)          ----->    AddDecryptionShare
//	                                     Result()
//
// Security model: passive (honest-but-curious) hub and devices, as in
// lattigo's multiparty package; a device only contributes a decryption
// share for an aggregate of at least Setup.MinAggregate contributions, and
// only once per round.
package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// ParamSet names a CKKS parameter set.
type ParamSet string

const (
	// Agg14 is the default: ring degree N = 2^14 on the conjugate-invariant
	// ring (16,384 real slots per ciphertext), one 60-bit prime modulus Q
	// (no special modulus P: aggregation needs no evaluation keys), scale
	// 2^45. log Q = 60 is far below the 237 bits the
	// HomomorphicEncryption.org standard allows N = 2^14 at 256-bit
	// classical security with ternary secrets (438 bits at 128-bit).
	// Additions only: depth 0. Decryption shares are flooded with discrete
	// Gaussian noise of sigma 2^23 (about 2^12 times the noise of a sum of
	// fresh ciphertexts). Trade-off, since decoding is modulo Q:
	// sums must stay below MaxAbsSum = 2^13 in absolute value (Encrypt
	// enforces |value| <= MaxAbsSum/Parties), and the decryption error has
	// standard deviation about 2^23 * sqrt(N * parties) / 2^45 per value
	// (1e-4 for 10 parties; measured maximum over 1M values 7.4e-4).
	Agg14 ParamSet = "agg14"
	// Test10 is N = 2^10 (1,024 slots) for fast tests only: it is NOT
	// secure and is refused unless Setup.AllowInsecure is set.
	Test10 ParamSet = "test10-insecure"
)

// MaxAbsSum bounds the absolute value of every aggregated value.
const MaxAbsSum = 1 << 13

type paramInfo struct {
	lit       ckks.ParametersLiteral
	floodLog  int
	secure    bool
	securityS string
}

func lookup(ps ParamSet) (paramInfo, error) {
	switch ps {
	case Agg14, "":
		return paramInfo{
			lit:       ckks.ParametersLiteral{LogN: 14, LogQ: []int{60}, LogDefaultScale: 45, RingType: ring.ConjugateInvariant},
			floodLog:  23,
			secure:    true,
			securityS: "logN 14, logQ 60: far beyond 256-bit classical security (HE standard allows logQ <= 237 at 256-bit for N=2^14)",
		}, nil
	case Test10:
		return paramInfo{
			lit:       ckks.ParametersLiteral{LogN: 10, LogQ: []int{60}, LogDefaultScale: 45, RingType: ring.ConjugateInvariant},
			floodLog:  23,
			securityS: "INSECURE test parameters",
		}, nil
	}
	return paramInfo{}, fmt.Errorf("he: unknown parameter set %q", ps)
}

// ParamsInfo describes a parameter set: slots per ciphertext, ciphertext
// size in bytes and its security statement.
func ParamsInfo(ps ParamSet) (slots, ctBytes int, security string, err error) {
	pi, err := lookup(ps)
	if err != nil {
		return 0, 0, "", err
	}
	p, err := ckks.NewParametersFromLiteral(pi.lit)
	if err != nil {
		return 0, 0, "", err
	}
	ct := ckks.NewCiphertext(p, 1, p.MaxLevel())
	return p.MaxSlots(), ct.BinarySize(), pi.securityS, nil
}
