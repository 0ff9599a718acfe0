package leaf

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte("device = \"bed1\"\nhub = \"tls://hub:7422\"\ndir = \"/var/lib/fennec/leaf\"\nmax_bytes = 134217728\nmax_age = \"48h\"\n"), "leaf.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Device != "bed1" || c.MaxBytes != 128<<20 || c.MaxAge != 48*time.Hour {
		t.Fatalf("%+v", c)
	}
	for _, tc := range []struct{ toml, want string }{
		{"device = \"bed1\"\ndir = \"d\"\ncolour = 1\n", `leaf.toml:3: field "colour": unknown field`},
		{"device = \"bed1\"\ndir = \"d\"\nmax_bytes = 10\n", `leaf.toml:3: field "max_bytes"`},
		{"dir = \"d\"\ndevice = \"a.b\"\n", `leaf.toml:2: field "device"`},
		{"device = \"bed1\"\ndir = \"d\"\nsubjects = [\"ok\", \"$JS.>\"]\n", `leaf.toml:3: field "subjects"`},
		{"device = \"bed1\"\ndir = \"d\"\nmax_age = 5\n", `leaf.toml:3: field "max_age"`},
		{"device = \"bed1\"\ndir = \"d\"\nhub = \"http://x:1\"\n", `leaf.toml:3: field "hub"`},
		{"device = [\n", "leaf.toml:"},
	} {
		if _, err := ParseConfig([]byte(tc.toml), "leaf.toml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.toml, err, tc.want)
		}
	}
}

// ParseConfig never panics, and what it accepts New accepts.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("device = \"bed1\"\ndir = \"d\"\n"))
	f.Add([]byte("device = \"bed1\"\ndir = \"d\"\nsubjects = [\"alerts.bed1.>\"]\nmax_age = \"1h\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "fuzz.toml")
		if err != nil {
			return
		}
		if _, err := New(c); err != nil {
			t.Fatalf("accepted %q, New refuses: %v", b, err)
		}
	})
}
