package modes

import (
	"errors"
	"fmt"
	"math"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

// Task and update extras, and step names (see the package comment).
const (
	extraParams = "mode.params" // task: roundParams

	stepSAKeys    = "sa.keys"
	stepSAShare   = "sa.share"
	stepSADeliver = "sa.deliver"
	stepSAUnmask  = "sa.unmask"
	stepHEKeygen  = "he.keygen"
	stepHEPK      = "he.pk"
	stepHETShares = "he.tshares"
	stepHETDel    = "he.tdeliver"
	stepHECollect = "he.collect"
	stepHEDecrypt = "he.decrypt"
)

// roundParams travel in the task (extra "mode.params").
type roundParams struct {
	Mode     string  `cbor:"mode"`
	Clip     float64 `cbor:"clip"`                // C of this round (DP modes)
	Bound    float64 `cbor:"bound"`               // per-value clamp of the secure sum
	DevSigma float64 `cbor:"dev_sigma,omitempty"` // distributed noise std per device
	Adaptive bool    `cbor:"adaptive,omitempty"`  // append the unclipped bit
	Len      int     `cbor:"len"`                 // vector length (model f32 params [+1])
	// Excluded: secagg client ids the hub excluded after the share-box
	// complaints (secagg.Server.Exclude); no one masks with them.
	Excluded []uint32 `cbor:"excluded,omitempty"`
	// SGD: the DP-SGD modes' parameters (dpsgd.go).
	SGD *sgdParams `cbor:"sgd,omitempty"`
}

func (p *roundParams) check() error {
	ok := func(x float64) bool { return x >= 0 && !math.IsInf(x, 0) && !math.IsNaN(x) }
	if !ok(p.Clip) || !ok(p.Bound) || !ok(p.DevSigma) || p.Len < 1 || p.Len > secagg.MaxVectorLen || len(p.Excluded) > secagg.MaxClients {
		return fmt.Errorf("modes: task parameters out of range (clip %v, bound %v, sigma %v, len %d)", p.Clip, p.Bound, p.DevSigma, p.Len)
	}
	if p.SGD != nil {
		return p.SGD.check()
	}
	return nil
}

func decodeParams(extra map[string][]byte) (roundParams, error) {
	var p roundParams
	b, ok := extra[extraParams]
	if !ok {
		return p, errors.New("modes: task carries no mode parameters")
	}
	if err := model.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("modes: task parameters: %w", err)
	}
	return p, p.check()
}

// saSetup is the sa.keys request: the round's public secagg configuration
// and the device's client id.
type saSetup struct {
	RoundID    []byte  `cbor:"round_id"`
	NumClients int     `cbor:"n"`
	Neighbors  int     `cbor:"k"`
	Threshold  int     `cbor:"t"`
	VectorLen  int     `cbor:"len"`
	Clip       float64 `cbor:"clip"`
	ID         uint32  `cbor:"id"`
}

func (s saSetup) config() secagg.Config {
	return secagg.Config{RoundID: s.RoundID, NumClients: s.NumClients, Neighbors: s.Neighbors, Threshold: s.Threshold,
		VectorLen: s.VectorLen, Clip: s.Clip}
}

// heKeygen is the he.keygen request: the federation's public HE setup and
// the device's party id.
type heKeygen struct {
	Setup he.Setup `cbor:"setup"`
	ID    uint32   `cbor:"id"`
}

// fromOf reads the sender id (CBOR key 1) of a privacy-library message, to
// check it against the device the link authenticated.
func fromOf(b []byte) (uint32, error) {
	var m struct {
		From uint32 `cbor:"1,keyasint"`
	}
	if err := model.UnmarshalLoose(b, &m); err != nil {
		return 0, err
	}
	return m.From, nil
}
