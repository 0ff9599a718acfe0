package modes_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

// badBoxes makes a device seal garbage into every share box it sends.
func badBoxes(step string, out []byte) []byte {
	if step != "sa.share" {
		return out
	}
	var m secagg.SharesMsg
	if err := model.UnmarshalLoose(out, &m); err != nil {
		panic(err)
	}
	for i := range m.Shares {
		b := append([]byte(nil), m.Shares[i].Box...)
		b[len(b)-1] ^= 1
		m.Shares[i].Box = b
	}
	b, err := model.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// A device that sends bad share boxes to every neighbour, over the real
// step link: the honest devices complain instead of aborting, the hub
// excludes it before anyone masks, the round completes with the honest
// quorum and the hub names the culprit by device id; the next round it sits
// out (quarantine) and the federation carries on.
func TestSecAggBadBoxesExcludeSender(t *testing.T) {
	const n, params = 5, 40
	f := newFed(t, modes.SecAgg, modes.Config{}, n, params)
	evil := f.ids[2]
	f.tamperStep[evil] = badBoxes
	for r := uint64(1); r <= 2; r++ {
		deltas := randomDeltas(f.ids, params, 0.2, r)
		before := f.global
		next, _, err := f.round(t, r, deltas, nil, nil)
		if err != nil {
			t.Fatalf("round %d with a device sending bad boxes: %v", r, err)
		}
		want := plainMean(before, deltas, without(f.ids, map[string]bool{evil: true}))
		if d := maxDiff(next, want); d > 1e-6 {
			t.Fatalf("round %d: aggregate differs from the honest devices' mean by %g", r, d)
		}
		st := f.hub.Status()
		if st.Contributors != n-1 || st.Culprits[evil] != 1 || len(st.Culprits) != 1 {
			t.Fatalf("round %d: status %+v, want %d contributors and %s named once", r, st, n-1, evil)
		}
	}
}

// A device that encodes values outside its clip range before masking
// (here: +C on every value, the most that passes the per-value check) in
// secagg+dp, where honest devices clip their delta to L2 norm C, and in
// secagg with NormBound C. The masked input cannot be inspected, but the
// aggregate can: the hub projects it onto the ball of radius k*C, so the
// device moves the mean by less than (2k-1)/k*C in L2 — not sqrt(params)*C/k
// as it could before.
func TestSecAggBoundsHostileDevice(t *testing.T) {
	const n, params, C = 3, 300, 1.0
	for _, tc := range []struct {
		mode string
		cfg  modes.Config
	}{
		{modes.SecAggDP, modes.Config{Clip: C, NoiseMultiplier: 1e-4}},
		{modes.SecAgg, modes.Config{NormBound: C}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFed(t, tc.mode, tc.cfg, n, params)
			evil := f.ids[1]
			// +C per value, in the round's fixed point (the scale depends
			// only on the number of clients and the clip).
			q := secagg.Config{RoundID: []byte{1}, NumClients: n, Threshold: 2, VectorLen: 1, Clip: C}.Quantize([]float32{C})[0]
			f.tamperUpdate[evil] = func(m *model.Model) {
				for ti := range m.Tensors {
					if m.Tensors[ti].Dtype != model.F32 {
						continue
					}
					d := m.Tensors[ti].Data
					for i := 0; i+4 <= len(d); i += 4 {
						binary.LittleEndian.PutUint32(d[i:], binary.LittleEndian.Uint32(d[i:])+q)
					}
				}
			}
			deltas := randomDeltas(f.ids, params, 0.001, 3)
			deltas[evil] = make([]float32, params)
			before := f.global
			next, _, err := f.round(t, 1, deltas, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			// All n contribute (central DP divides by n sampled anyway).
			want := plainMean(before, deltas, f.ids)
			got := next.Flatten()
			var shift float64
			for i := range got {
				d := float64(got[i]) - want[i]
				shift += d * d
			}
			shift = math.Sqrt(shift)
			if lim := float64(2*n-1) / n * C; shift > lim {
				t.Fatalf("one device moved the mean by %.3g in L2, bound (2n-1)/n*C = %.3g", shift, lim)
			}
			if st := f.hub.Status(); st.OutOfRange != 1 {
				t.Fatalf("status %+v: the out-of-range aggregate was not counted", st)
			}
			// Honest rounds are left alone.
			f.tamperUpdate[evil] = nil
			deltas = randomDeltas(f.ids, params, 0.05, 4)
			before = f.global
			if next, _, err = f.round(t, 2, deltas, nil, nil); err != nil {
				t.Fatal(err)
			}
			if st := f.hub.Status(); st.OutOfRange != 1 {
				t.Fatalf("status %+v: an honest round was flagged", st)
			}
			if d := maxDiff(next, plainMean(before, deltas, f.ids)); d > 1e-3 {
				t.Fatalf("honest round differs from the plain mean by %g", d)
			}
		})
	}
}
