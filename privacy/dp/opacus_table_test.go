package dp

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"
)

// opacusTable is testdata/opacus_rdp.json, written by
// bench/flower/opacus_eps.py (`bench/flower/run.sh opacus`) from Opacus's
// own RDPAccountant.
type opacusTable struct {
	Source string    `json:"source"`
	Alphas []float64 `json:"alphas"`
	Cases  []struct {
		Sigma   float64  `json:"sigma"`
		Q       float64  `json:"q"`
		Steps   int      `json:"steps"`
		Delta   float64  `json:"delta"`
		Epsilon *float64 `json:"epsilon"` // null: unbounded
		Alpha   *float64 `json:"alpha"`
	} `json:"cases"`
}

// TestOpacusTable checks our accountant against Opacus's RDPAccountant over
// a grid of DP-SGD parameters (sigma 0.5..10, q 0.001..1, steps 1..10^4,
// delta 1e-5 and 1e-3). On Opacus's alpha grid epsilon must agree to 1e-6
// relative and pick the same order: both evaluate Balle et al. 2020's
// conversion on the same subsampled-Gaussian RDP. On our DefaultOrders
// (Opacus's grid plus 128..1024) epsilon must never be larger, and equal
// where the optimal order is inside Opacus's grid. One more difference, by
// design: like dp_accounting we report epsilon 0 when the RDP is so small
// that delta >= sqrt(1-exp(-rdp)) (the KL-divergence bound); Opacus does not
// apply that bound and reports its formula's small positive value.
func TestOpacusTable(t *testing.T) {
	b, err := os.ReadFile("testdata/opacus_rdp.json")
	if err != nil {
		t.Fatal(err)
	}
	var tab opacusTable
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatalf("testdata/opacus_rdp.json: %v", err)
	}
	opacusGrid := DefaultOrders[:len(DefaultOrders)-4]
	if !slices.Equal(tab.Alphas, opacusGrid) {
		t.Fatalf("Opacus's DEFAULT_ALPHAS (%d orders) are not our DefaultOrders minus 128..1024 (%d)", len(tab.Alphas), len(opacusGrid))
	}
	if len(tab.Cases) < 500 {
		t.Fatalf("only %d cases", len(tab.Cases))
	}
	var maxRel float64
	tighter, kl := 0, 0
	for _, c := range tab.Cases {
		want := math.Inf(1)
		if c.Epsilon != nil {
			want = *c.Epsilon
		}
		for _, orders := range [][]float64{opacusGrid, DefaultOrders} {
			a, err := NewAccountant(orders)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.ComposeSubsampledGaussian(c.Q, c.Sigma, c.Steps); err != nil {
				t.Fatal(err)
			}
			eps, order, err := a.Epsilon(c.Delta)
			if err != nil {
				t.Fatal(err)
			}
			ours := len(orders) == len(DefaultOrders)
			switch {
			case math.IsInf(want, 1) || math.IsInf(eps, 1):
				if !(ours && !math.IsInf(eps, 1)) && math.IsInf(want, 1) != math.IsInf(eps, 1) {
					t.Errorf("sigma %g q %g steps %d delta %g: eps %v, Opacus %v", c.Sigma, c.Q, c.Steps, c.Delta, eps, want)
				}
			case ours && order > 63:
				if eps > want*(1+1e-12) {
					t.Errorf("sigma %g q %g steps %d delta %g: our orders give %.12g at order %g, larger than Opacus's %.12g", c.Sigma, c.Q, c.Steps, c.Delta, eps, order, want)
				}
				tighter++
			case eps == 0 && want > 0:
				// dp_accounting's KL bound, which Opacus does not apply: an
				// RDP r with delta >= sqrt(1-exp(-r)) is (0, delta)-DP.
				r := a.RDP()[slices.Index(orders, order)]
				if !(c.Delta*c.Delta+math.Expm1(-r) > 0) {
					t.Errorf("sigma %g q %g steps %d delta %g: eps 0 at order %g without the KL bound (RDP %g); Opacus %.12g", c.Sigma, c.Q, c.Steps, c.Delta, order, r, want)
				}
				if !ours {
					kl++
				}
			default:
				r := relErr(eps, want)
				maxRel = math.Max(maxRel, r)
				if r > 1e-6 {
					t.Errorf("sigma %g q %g steps %d delta %g: eps %.12g, Opacus %.12g (relative %.2g)", c.Sigma, c.Q, c.Steps, c.Delta, eps, want, r)
				}
				if c.Alpha != nil && order != *c.Alpha {
					t.Errorf("sigma %g q %g steps %d delta %g: optimal order %g, Opacus %g", c.Sigma, c.Q, c.Steps, c.Delta, order, *c.Alpha)
				}
			}
		}
	}
	t.Logf("%s: %d cases; max relative difference %.3g where both use the same bound; epsilon 0 by the KL bound where Opacus reports > 0: %d; our extra orders 128..1024 give a smaller epsilon: %d", tab.Source, len(tab.Cases), maxRel, kl, tighter)
}
