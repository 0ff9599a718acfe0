package cuda

import "testing"

func TestVersionString(t *testing.T) {
	for _, tc := range []struct {
		v    int
		want string
	}{{12020, "12.2"}, {13000, "13.0"}, {11080, "11.8"}, {12090, "12.9"}, {0, "unknown"}, {-1, "unknown"}} {
		if got := versionString(tc.v); got != tc.want {
			t.Errorf("versionString(%d) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
