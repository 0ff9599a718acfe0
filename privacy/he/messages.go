package he

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Errors.
var (
	ErrMessage = errors.New("he: bad message")
	ErrPhase   = errors.New("he: wrong phase")
	ErrAbort   = errors.New("he: round aborted")
)

// Setup is the public configuration, the same at every party.
type Setup struct {
	Params ParamSet `cbor:"1,keyasint"`
	// Parties is N; party IDs are 1..N.
	Parties int `cbor:"2,keyasint"`
	// Threshold t: 0 or N for N-of-N decryption, 1 < t < N for t-of-N.
	Threshold int `cbor:"3,keyasint"`
	// CRS is a public random 32-byte seed for the common reference
	// polynomials (the hub draws it and sends it with the setup).
	CRS []byte `cbor:"4,keyasint"`
	// MinAggregate is the least number of contributions a device accepts
	// to help decrypt (default 2): no single update is ever decrypted.
	MinAggregate int `cbor:"5,keyasint"`
	// AllowInsecure permits Test10 parameters.
	AllowInsecure bool `cbor:"6,keyasint"`
}

func (s Setup) threshold() int {
	if s.Threshold == 0 {
		return s.Parties
	}
	return s.Threshold
}

func (s Setup) minAggregate() int {
	if s.MinAggregate == 0 {
		return 2
	}
	return s.MinAggregate
}

// Validate checks the setup.
func (s Setup) Validate() error {
	pi, err := lookup(s.Params)
	if err != nil {
		return err
	}
	switch {
	case !pi.secure && !s.AllowInsecure:
		return fmt.Errorf("he: setup Params: %q is insecure; set AllowInsecure (tests only)", s.Params)
	case s.Parties < 2 || s.Parties > 1024:
		return fmt.Errorf("he: setup Parties: must be 2..1024, got %d", s.Parties)
	case s.Threshold < 0 || s.Threshold == 1 || s.Threshold > s.Parties:
		return fmt.Errorf("he: setup Threshold: must be 0 or 2..%d, got %d", s.Parties, s.Threshold)
	case len(s.CRS) != 32:
		return fmt.Errorf("he: setup CRS: must be 32 bytes, got %d", len(s.CRS))
	case s.MinAggregate < 0 || s.MinAggregate > s.Parties:
		return fmt.Errorf("he: setup MinAggregate: must be 0..%d, got %d", s.Parties, s.MinAggregate)
	}
	return nil
}

// KeyShareMsg (device -> hub): a share of the collective public key and the
// device's X25519 key for receiving threshold shares.
type KeyShareMsg struct {
	From   uint32 `cbor:"1,keyasint"`
	Share  []byte `cbor:"2,keyasint"`
	BoxPub []byte `cbor:"3,keyasint"`
}

// PublicKeyMsg (hub -> devices): the collective public key and every
// device's box key.
type PublicKeyMsg struct {
	PublicKey []byte            `cbor:"1,keyasint"`
	BoxPubs   map[uint32][]byte `cbor:"2,keyasint"`
}

// Sealed is an encrypted Shamir share of a device's secret key for one peer.
type Sealed struct {
	Peer uint32 `cbor:"1,keyasint"`
	Box  []byte `cbor:"2,keyasint"`
}

// ThresholdMsg (device -> hub, t < N): encrypted shares for every other device.
type ThresholdMsg struct {
	From   uint32   `cbor:"1,keyasint"`
	Shares []Sealed `cbor:"2,keyasint"`
}

// ThresholdDelivery (hub -> one device): the shares addressed to it.
type ThresholdDelivery struct {
	To     uint32   `cbor:"1,keyasint"`
	Shares []Sealed `cbor:"2,keyasint"`
}

// CiphertextMsg (device -> hub): an update of Len values as ceil(Len/slots)
// ciphertexts.
type CiphertextMsg struct {
	From uint32   `cbor:"1,keyasint"`
	Len  int      `cbor:"2,keyasint"`
	Cts  [][]byte `cbor:"3,keyasint"`
}

// DecryptRequest (hub -> decrypting devices): the second components (c1)
// of the aggregate ciphertexts, who contributed, and who decrypts.
type DecryptRequest struct {
	Round        uint64   `cbor:"1,keyasint"`
	Contributors []uint32 `cbor:"2,keyasint"`
	Active       []uint32 `cbor:"3,keyasint"`
	C1           [][]byte `cbor:"4,keyasint"`
}

// DecryptShareMsg (device -> hub): one decryption share per ciphertext.
type DecryptShareMsg struct {
	From   uint32   `cbor:"1,keyasint"`
	Round  uint64   `cbor:"2,keyasint"`
	Shares [][]byte `cbor:"3,keyasint"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   8,
		MaxArrayElements:  1 << 16,
		MaxMapPairs:       2048,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		IndefLength:       cbor.IndefLengthForbidden,
	}).DecMode(); err != nil {
		panic(err)
	}
}

func marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

func unmarshal(data []byte, v any, what string) error {
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMessage, what, err)
	}
	return nil
}

// unmarshalBinary wraps lattigo's decoders, which may panic on hostile input.
func unmarshalBinary(u interface{ UnmarshalBinary([]byte) error }, b []byte, what string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: malformed (%v)", ErrMessage, what, r)
		}
	}()
	if err := u.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMessage, what, err)
	}
	return nil
}
