package benchsuite

import (
	"context"
	"testing"

	"github.com/fennec-edge/fennec/internal/bench"
)

// TestKernelBenchCases runs the gemm, elementwise and int8 cases in quick
// mode so that they cannot rot, and checks that they report sane figures.
func TestKernelBenchCases(t *testing.T) {
	o := bench.Options{Quick: true, MinTime: 2e6}
	for _, g := range []string{"gemm", "elementwise", "int8"} {
		cs := bench.Cases(g)
		if len(cs) == 0 {
			t.Fatalf("no %s cases registered", g)
		}
		for _, c := range cs {
			rs, err := c.Run(context.Background(), o)
			if err != nil {
				t.Fatalf("%s/%s: %v", g, c.Name, err)
			}
			if len(rs) == 0 {
				t.Errorf("%s/%s reported nothing", g, c.Name)
			}
			for _, r := range rs {
				t.Logf("%-24s %10.4g %-8s ratio %.3g %s", r.Name, r.Value, r.Unit, r.Ratio, r.Note)
				if !(r.Value > 0) || r.Group != g {
					t.Errorf("%s: value %v group %q", r.Name, r.Value, r.Group)
				}
			}
		}
	}
}
