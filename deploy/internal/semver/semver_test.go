package semver

import (
	"fmt"
	"testing"
)

func TestPrecedenceChain(t *testing.T) {
	// The example chain from semver.org section 11, plus numeric ordering.
	chain := []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1",
		"1.2.0", "1.10.0", "2.0.0-0", "2.0.0", "10.0.0",
	}
	for i := range chain {
		for j := range chain {
			a, err := Parse(chain[i])
			if err != nil {
				t.Fatal(err)
			}
			b, err := Parse(chain[j])
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", chain[i], chain[j], got, want)
			}
		}
	}
}

func TestBuildIgnored(t *testing.T) {
	a, _ := Parse("1.2.3+build.7")
	b, _ := Parse("1.2.3+other")
	if Compare(a, b) != 0 {
		t.Fatal("build metadata must not affect precedence")
	}
	if a.String() != "1.2.3+build.7" {
		t.Fatal(a.String())
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{
		"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03",
		"1.2.3-", "1.2.3-01", "1.2.3-a..b", "1.2.3+", "1.2.3-a_b", "1.2.-3",
		"18446744073709551616.0.0", " 1.2.3",
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1.0.0", "1.0.0-alpha.1+b", "0.0.0-0.a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		w, err := Parse(v.String())
		if err != nil || Compare(v, w) != 0 || v.String() != w.String() {
			t.Fatalf("round trip %q -> %q: %v", s, v.String(), err)
		}
	})
}

func ExampleCompare() {
	a, _ := Parse("1.0.0-rc.1")
	b, _ := Parse("1.0.0")
	fmt.Println(Compare(a, b))
	// Output: -1
}
