package benchsuite

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/bench"
)

// TestSDKBenchCases runs the sdk cases in quick mode: each reports a
// positive ns/op, or (the C guest without clang) a skip note.
func TestSDKBenchCases(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasm guests; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build the guests")
	}
	cs := bench.Cases("sdk")
	if len(cs) != 4 {
		t.Fatalf("%d sdk cases registered, want 4", len(cs))
	}
	o := bench.Options{Quick: true, MinTime: 2e6}
	for _, c := range cs {
		rs, err := c.Run(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(rs) != 1 {
			t.Fatalf("%s: %d results", c.Name, len(rs))
		}
		r := rs[0]
		t.Logf("%-18s %12.0f %s  %s", r.Name, r.Value, r.Unit, r.Note)
		switch {
		case r.Group != "sdk" || r.Name != c.Name || r.Unit != "ns/op":
			t.Errorf("%s: result %+v", c.Name, r)
		case r.Value > 0:
		case c.Name == "c-zscore" && strings.HasPrefix(r.Note, "skipped: needs prebuilt modules"):
		default:
			t.Errorf("%s: no figure: %+v", c.Name, r)
		}
	}
}

// TestSDKBenchSkipsWithoutModules: pointed at a directory without prebuilt
// modules, every case reports a clear skip instead of failing.
func TestSDKBenchSkipsWithoutModules(t *testing.T) {
	t.Setenv("FENNEC_BENCH_WASM", t.TempDir())
	for _, c := range bench.Cases("sdk") {
		rs, err := c.Run(context.Background(), bench.Options{Quick: true})
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(rs) != 1 || rs[0].Value != 0 || !strings.HasPrefix(rs[0].Note, "skipped: needs prebuilt modules") {
			t.Fatalf("%s: %+v", c.Name, rs)
		}
	}
}
