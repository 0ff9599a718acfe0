package dp

import (
	"math"
	"testing"
)

// Reference values of dp_accounting 0.6.0's
// _compute_rdp_sample_wor_gaussian_scalar(q, sigma, alpha), covering
// fractional orders, the exact range and the orders above 256.
var worRef = [][4]float64{
	{0.2, 1.0, 1.5, 0.19676881268969687},
	{0.2, 1.0, 2, 0.19676881268969687},
	{0.2, 1.0, 3, 0.3399692214043939},
	{0.2, 1.0, 3.5, 0.45306679921515086},
	{0.2, 1.0, 10, 3.289440716669009},
	{0.2, 1.0, 32, 14.361004322021751},
	{0.2, 1.0, 63, 29.875783204793734},
	{0.2, 1.0, 256, 126.38696879057815},
	{0.2, 1.0, 300, 148.38749757006798},
	{0.2, 1.0, 1024, 510.3896663977009},
	{0.01, 2.0, 1.5, 0.00011360371352886809},
	{0.01, 2.0, 3, 0.000171288979794885},
	{0.01, 2.0, 3.5, 0.00020625101303126272},
	{0.01, 2.0, 10, 0.0005912554593388907},
	{0.01, 2.0, 32, 0.0020793016331292226},
	{0.01, 2.0, 63, 3.206751524839353},
	{0.01, 2.0, 256, 27.37948854732396},
	{0.01, 2.0, 1024, 123.3910057446029},
	{0.5, 0.8, 3, 1.7819619696256375},
	{0.5, 0.8, 10, 7.119354555371255},
	{0.5, 0.8, 300, 233.68185281944},
	{0.1, 5.0, 2, 0.0016311000005411794},
	{0.1, 5.0, 10, 0.00871593291812867},
	{0.1, 5.0, 63, 0.038137259948423215},
	{0.1, 5.0, 256, 2.811477201319241},
	{0.1, 5.0, 1024, 18.17584165391462},
}

func TestRDPSampledWithoutReplacementReference(t *testing.T) {
	for _, r := range worRef {
		got, err := RDPSampledWithoutReplacementGaussian(r[0], r[1], r[2])
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-r[3]) > 1e-9*math.Max(1, r[3]) {
			t.Errorf("q=%v sigma=%v alpha=%v: %v, dp_accounting %v", r[0], r[1], r[2], got, r[3])
		}
	}
}

// Sampling without replacement is never charged less than the plain
// Gaussian's share, equals it at q = 1, and at small q costs more than the
// Poisson bound at the same rate (its q^2 term is larger).
func TestRDPSampledWithoutReplacementEdges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		q, sigma float64
		alpha    float64
		want     float64
	}{
		{"no sample", 0, 1, 10, 0},
		{"whole population", 1, 2, 10, 10.0 / 8},
		{"no noise", 0.5, 0, 10, math.Inf(1)},
	} {
		got, err := RDPSampledWithoutReplacementGaussian(tc.q, tc.sigma, tc.alpha)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range [][3]float64{{-0.1, 1, 2}, {1.1, 1, 2}, {0.5, -1, 2}, {0.5, 1, 1}, {0.5, 1, 0.5}, {0.5, math.NaN(), 2}} {
		if _, err := RDPSampledWithoutReplacementGaussian(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("q=%v sigma=%v alpha=%v accepted", bad[0], bad[1], bad[2])
		}
	}
	wor, _ := RDPSampledWithoutReplacementGaussian(0.05, 1, 8)
	poi, _ := RDPSubsampledGaussian(0.05, 1, 8)
	if !(wor > poi) {
		t.Errorf("q=0.05: without replacement %v not above Poisson %v", wor, poi)
	}
}

func TestNoiseMultiplierWithoutReplacement(t *testing.T) {
	const eps, delta, q, steps = 3.0, 1e-5, 0.2, 20
	z, err := NoiseMultiplierWithoutReplacement(eps, delta, q, steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := NewAccountant(nil)
	if err := acc.ComposeSampledWithoutReplacementGaussian(q, z, steps); err != nil {
		t.Fatal(err)
	}
	got, _, err := acc.Epsilon(delta)
	if err != nil || got > eps || got < eps*0.999 {
		t.Fatalf("z=%v gives epsilon %v, %v; want just below %v", z, got, err, eps)
	}
	if zp, _ := NoiseMultiplier(eps, delta, q, steps, nil); !(z > zp) {
		t.Errorf("without replacement z=%v not above the Poisson z=%v", z, zp)
	}
}
