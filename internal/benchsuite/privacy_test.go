package benchsuite

import (
	"context"
	"os"
	"testing"

	"github.com/fennec-edge/fennec/internal/bench"
)

// TestPrivacyBenchCases runs the privacy benchmark cases in quick mode (so
// they cannot rot); FENNEC_PRIVACY_BENCH=full runs the full sizes and logs
// the figures recorded in BENCHMARKS.md.
func TestPrivacyBenchCases(t *testing.T) {
	o := bench.Options{Quick: os.Getenv("FENNEC_PRIVACY_BENCH") != "full"}
	only := os.Getenv("FENNEC_PRIVACY_BENCH_CASE")
	for _, c := range bench.Cases("privacy") {
		if only != "" && c.Name != only {
			continue
		}
		rs, err := c.Run(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, r := range rs {
			t.Logf("%-34s %14.6g %-9s ratio %.3g  ref %.6g  target %q  %s", r.Name, r.Value, r.Unit, r.Ratio, r.RefValue, r.Target, r.Note)
			if r.Value < 0 {
				t.Errorf("%s: negative value", r.Name)
			}
		}
	}
}
