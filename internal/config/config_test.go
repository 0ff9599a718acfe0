package config_test

import (
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/config"
)

func TestDefault(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v, want time.Duration
		err     bool
	}{
		{"zero takes the default", 0, time.Second, false},
		{"set is kept", 3 * time.Millisecond, 3 * time.Millisecond, false},
		{"negative is an error", -1, -1, true},
	} {
		v := tc.v
		err := config.Default("x config: Tick", &v, time.Second)
		if (err != nil) != tc.err || v != tc.want {
			t.Errorf("%s: Default(%v) = %v, %v", tc.name, tc.v, v, err)
		}
		if err != nil && !strings.Contains(err.Error(), "x config: Tick") {
			t.Errorf("%s: error %q does not name the field", tc.name, err)
		}
	}
	nan := math.NaN()
	if err := config.Default("f", &nan, 1); err == nil {
		t.Error("NaN accepted")
	}
	if err := config.NonNegative("n", 0); err != nil {
		t.Error(err)
	}
	if config.Logger(nil) != slog.Default() {
		t.Error("nil logger is not slog.Default()")
	}
}
