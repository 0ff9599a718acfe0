package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/runtime"
)

// Options configure Run. The zero value of each field is its default, as
// `fennec demo` documents it.
type Options struct {
	// Devices (8) simulated bedside devices train for Rounds (15) rounds,
	// each on Patients (30) generated patients, or on a shard of Data (a
	// CSV: numeric features, the label last) with label skew Skew.
	Devices, Rounds, Patients int
	Data                      string
	Skew                      float64
	// Strategy ("fedavg") aggregates; Fraction (1) of the devices is
	// sampled per round.
	Strategy string
	Fraction float64
	// LR (DefaultLR) and Epochs (2) of local training; Hidden units of the
	// risk model (DefaultHidden), Linear for logistic regression.
	LR     float64
	Epochs int
	Hidden int
	Linear bool
	// Seed of the data, the splits and the initial model.
	Seed uint64
	// Mode is the privacy mode ("plain"); Epsilon (3) at Delta (1e-5) the
	// DP modes' target, Clip their bound (0.5 on a device's update; in the
	// DP-SGD modes 1, per patient). PatientsPerStep and LocalSteps plan
	// the DP-SGD modes' steps (federation.ModeConfig).
	Mode            string
	Epsilon, Delta  float64
	Clip            float64
	PatientsPerStep float64
	LocalSteps      int
	// HTTP, when set, serves the hub's dashboard there, and after the
	// demo until ctx ends.
	HTTP string
	// SaveModel, when set, is a file the released model is written to
	// (CBOR, as risk-infer takes it in "model"), atomically.
	SaveModel string
	// JSON prints the Result as JSON instead of the progress display;
	// Verbose logs runtime and hub events to stderr.
	JSON, Verbose bool
	// NewEngine makes each device's runtime (runtime.New when nil): the
	// command passes its own, with the operator's host configuration and
	// tensor backend.
	NewEngine func(ctx context.Context, log *slog.Logger, cfg runtime.Config) (*runtime.Engine, error)
}

// Kind says whose fault a Run error is.
type Kind int

const (
	// Failure: the demo itself failed.
	Failure Kind = iota
	// Usage: an option is invalid.
	Usage
	// BadInput: the data file is unreadable or unsuitable.
	BadInput
)

// Error is a Run error with its Kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func usageError(err error) error { return &Error{Usage, err} }
func badInput(err error) error   { return &Error{BadInput, err} }
func failure(err error) error    { return &Error{Failure, err} }

// dpsgd reports whether the mode trains with DP-SGD on the devices.
func (o *Options) dpsgd() bool { return federation.ModeTrainsDPSGD(o.Mode) }

// fill applies the defaults and validates; errors name the option.
func (o *Options) fill() error {
	if o.Mode == "" {
		o.Mode = "plain"
	}
	if o.Strategy == "" {
		o.Strategy = "fedavg"
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&o.Devices, 8}, {&o.Rounds, 15}, {&o.Patients, 30}, {&o.Epochs, 2}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		v   *float64
		def float64
	}{{&o.Fraction, 1}, {&o.Epsilon, 3}, {&o.Delta, 1e-5}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case o.LR < 0:
		return usageError(errors.New("--lr must not be negative"))
	case o.Devices < 1 || o.Rounds < 1 || o.Patients < 1:
		return usageError(errors.New("--devices, --rounds and --patients must be at least 1"))
	case o.Hidden < 0:
		return usageError(errors.New("--hidden must not be negative"))
	case !slices.Contains(federation.ModeNames(), o.Mode):
		return usageError(fmt.Errorf("--mode %q: want one of %s", o.Mode, strings.Join(federation.ModeNames(), ", ")))
	case !slices.Contains(federation.StrategyNames(), o.Strategy):
		return usageError(fmt.Errorf("--strategy %q: want one of %s", o.Strategy, strings.Join(federation.StrategyNames(), ", ")))
	}
	if o.LR == 0 {
		o.LR = DefaultLR(o.Data != "", o.dpsgd())
		if o.Mode == "secagg+dpsgd" {
			o.LR = SharedNoiseLR(o.Data != "")
		}
	}
	switch {
	case o.Linear:
		o.Hidden = 0
	case o.Hidden == 0:
		o.Hidden = DefaultHidden(o.dpsgd())
	}
	return nil
}

func (o *Options) newEngine(ctx context.Context, log *slog.Logger, cfg runtime.Config) (*runtime.Engine, error) {
	if o.NewEngine != nil {
		return o.NewEngine(ctx, log, cfg)
	}
	return runtime.New(ctx, cfg)
}
