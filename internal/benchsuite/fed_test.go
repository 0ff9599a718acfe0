package benchsuite

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/bench"
)

// The fed cases run in Quick mode (small sizes) and report sane figures.
func TestBenchFedQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs federated simulations")
	}
	for _, c := range bench.Cases("fed") {
		if c.Name == "fashion" || c.Name == "poison" || c.Name == "wdbc" {
			continue // need ../shared/data and take longer; run with `fennec bench fed`
		}
		t.Run(c.Name, func(t *testing.T) {
			res, err := c.Run(context.Background(), bench.Options{Quick: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if !(r.Value > 0) {
					t.Fatalf("%s: value %v", r.Name, r.Value)
				}
				t.Logf("%s: %.4g %s (ref %.4g, ratio %.3g) %s", r.Name, r.Value, r.Unit, r.RefValue, r.Ratio, r.Note)
			}
		})
	}
}

// TestBenchFedFull runs the named fed cases at full size when
// FENNEC_FED_BENCH lists them ("all" for every case): the figures of
// BENCHMARKS.md (`fennec bench fed` runs the same cases).
func TestBenchFedFull(t *testing.T) {
	want := os.Getenv("FENNEC_FED_BENCH")
	if want == "" {
		t.Skip("set FENNEC_FED_BENCH=all (or a comma list of case names) to run the full fed benchmarks")
	}
	for _, c := range bench.Cases("fed") {
		if want != "all" && !slices.Contains(strings.Split(want, ","), c.Name) {
			continue
		}
		start := time.Now()
		res, err := c.Run(context.Background(), bench.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, r := range res {
			b, _ := json.Marshal(r)
			t.Logf("%s", b)
		}
		t.Logf("%s took %v", c.Name, time.Since(start).Round(time.Second))
	}
}
