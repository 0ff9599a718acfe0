// Package config holds the rules every Config in fennec follows, so that
// they live in one place:
//
//   - a numeric field (a count, a size, a duration, a rate) left zero takes
//     its documented default, and a negative one is a validation error that
//     names the field (Default, NonNegative);
//   - a nil *slog.Logger means slog.Default() (Logger); discarding is
//     explicit, slog.New(slog.DiscardHandler).
package config

import (
	"fmt"
	"log/slog"
)

// Signed are the kinds of numeric fields the rules apply to
// (time.Duration is an int64).
type Signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Default sets *v to def when it is zero and returns an error naming field
// ("hub config: Deadline") when it is negative (or NaN).
func Default[T Signed](field string, v *T, def T) error {
	if err := NonNegative(field, *v); err != nil {
		return err
	}
	if *v == 0 {
		*v = def
	}
	return nil
}

// NonNegative returns an error naming field when v is negative (or NaN),
// for fields whose zero value has a meaning of its own ("none", "off").
func NonNegative[T Signed](field string, v T) error {
	if !(v >= 0) {
		return fmt.Errorf("%s must not be negative (0 means the default), got %v", field, v)
	}
	return nil
}

// Logger returns l, or slog.Default() when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
