package secagg

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Wire messages, CBOR maps with small integer keys. Every field is checked
// by the receiver; see the decode functions.

// KeysMsg (client -> hub, round 0): a client's two X25519 public keys and a
// commitment to its self-mask seed.
type KeysMsg struct {
	From       uint32 `cbor:"1,keyasint"`
	EncPub     []byte `cbor:"2,keyasint"` // for encrypting shares between clients
	MaskPub    []byte `cbor:"3,keyasint"` // for pairwise mask agreement
	SelfCommit []byte `cbor:"4,keyasint"` // SHA-256(round, id, self-mask seed)
}

// Directory (hub -> clients, after round 0): every advertised key set.
type Directory struct {
	Keys []KeysMsg `cbor:"1,keyasint"`
}

// SealedShare is one encrypted share pair addressed to a neighbour.
type SealedShare struct {
	Peer uint32 `cbor:"1,keyasint"` // To (in SharesMsg) or From (in Delivery)
	Box  []byte `cbor:"2,keyasint"`
}

// SharesMsg (client -> hub, round 1): encrypted shares for each neighbour.
type SharesMsg struct {
	From   uint32        `cbor:"1,keyasint"`
	Shares []SealedShare `cbor:"2,keyasint"`
}

// Delivery (hub -> one client, after round 1): the shares addressed to it.
type Delivery struct {
	To     uint32        `cbor:"1,keyasint"`
	Shares []SealedShare `cbor:"2,keyasint"`
}

// MaskedMsg (client -> hub, round 2): the masked quantised input,
// VectorLen little-endian uint32 ring elements.
type MaskedMsg struct {
	From uint32 `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint"`
}

// ComplaintMsg (client -> hub, after the delivery): the neighbours whose
// share boxes to this client did not open.
type ComplaintMsg struct {
	From uint32   `cbor:"1,keyasint"`
	Bad  []uint32 `cbor:"2,keyasint"`
}

// UnmaskRequest (hub -> clients, after round 2): who sent a masked input
// (survivors) and who shared keys but did not (dropped).
type UnmaskRequest struct {
	Survivors []uint32 `cbor:"1,keyasint"`
	Dropped   []uint32 `cbor:"2,keyasint"`
}

// ShareOf is a client's share of peer Of's secret.
type ShareOf struct {
	Of uint32 `cbor:"1,keyasint"`
	Y  []byte `cbor:"2,keyasint"`
}

// UnmaskMsg (client -> hub, round 3): shares of the survivors' self-mask
// seeds and of the dropped clients' mask keys.
type UnmaskMsg struct {
	From uint32    `cbor:"1,keyasint"`
	Self []ShareOf `cbor:"2,keyasint"`
	Mask []ShareOf `cbor:"3,keyasint"`
}

// shareBox is the plaintext inside a SealedShare.
type shareBox struct {
	From uint32 `cbor:"1,keyasint"`
	To   uint32 `cbor:"2,keyasint"`
	Self []byte `cbor:"3,keyasint"`
	Mask []byte `cbor:"4,keyasint"`
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
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   8,
		MaxArrayElements:  MaxClients * 2,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		IndefLength:       cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
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
