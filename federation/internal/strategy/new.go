package strategy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fennec-edge/fennec/internal/config"
)

// Config selects and tunes an aggregator. The zero value of every field
// takes the strategy's default.
type Config struct {
	// Name: fedavg, fedprox, fedsgd, fedadam, fedyogi, fedadagrad, median,
	// trimmedmean, krum, multikrum, bulyan. Empty means fedavg.
	Name string `json:"name" toml:"name"`
	// FedSGD server optimizer.
	LR       float64 `json:"lr,omitempty" toml:"lr"`
	Momentum float64 `json:"momentum,omitempty" toml:"momentum"`
	// FedProx proximal weight, sent to devices in the round settings
	// (ProximalWeight); the other strategies ignore it.
	Mu float64 `json:"mu,omitempty" toml:"mu"`
	// FedOpt.
	Eta   float64 `json:"eta,omitempty" toml:"eta"`
	Beta1 float64 `json:"beta1,omitempty" toml:"beta1"`
	Beta2 float64 `json:"beta2,omitempty" toml:"beta2"`
	Tau   float64 `json:"tau,omitempty" toml:"tau"`
	// TrimBeta is the fraction trimmed at each end (trimmedmean).
	TrimBeta float64 `json:"trim_beta,omitempty" toml:"trim_beta"`
	// Byzantine: F assumed malicious devices (krum, multikrum, bulyan); M
	// updates kept by multikrum (default n-F at aggregation time when 0).
	F int `json:"f,omitempty" toml:"f"`
	M int `json:"m,omitempty" toml:"m"`
}

// Names lists the built-in strategies.
var Names = []string{"fedavg", "fedprox", "fedsgd", "fedadam", "fedyogi", "fedadagrad",
	"median", "trimmedmean", "krum", "multikrum", "bulyan"}

// New returns the aggregator c names.
func New(c Config) (Aggregator, error) {
	f := func(field string) string { return fmt.Sprintf("strategy %q: %s", c.Name, field) }
	if err := errors.Join(
		config.NonNegative(f("LR"), c.LR), config.NonNegative(f("Momentum"), c.Momentum),
		config.NonNegative(f("Mu"), c.Mu), config.NonNegative(f("Eta"), c.Eta),
		config.NonNegative(f("Beta1"), c.Beta1), config.NonNegative(f("Beta2"), c.Beta2),
		config.NonNegative(f("Tau"), c.Tau), config.NonNegative(f("TrimBeta"), c.TrimBeta),
		config.NonNegative(f("F"), c.F), config.NonNegative(f("M"), c.M),
	); err != nil {
		return nil, err
	}
	if c.Momentum >= 1 {
		return nil, fmt.Errorf("strategy %q: Momentum %v must be below 1", c.Name, c.Momentum)
	}
	switch strings.ToLower(c.Name) {
	case "", "fedavg":
		return FedAvg{}, nil
	case "fedprox":
		return FedProx{Mu: c.Mu}, nil
	case "fedsgd", "sgd", "mirroredsgd":
		lr := c.LR
		if lr == 0 {
			lr = 0.1
		}
		return &FedSGD{LR: lr, Momentum: c.Momentum}, nil
	case "fedadam":
		return &FedOpt{Kind: Adam, Eta: c.Eta, Beta1: c.Beta1, Beta2: c.Beta2, Tau: c.Tau}, nil
	case "fedyogi":
		return &FedOpt{Kind: Yogi, Eta: c.Eta, Beta1: c.Beta1, Beta2: c.Beta2, Tau: c.Tau}, nil
	case "fedadagrad":
		return &FedOpt{Kind: Adagrad, Eta: c.Eta, Tau: c.Tau}, nil
	case "median":
		return Median{}, nil
	case "trimmedmean", "trimmed_mean", "fedtrimmedavg":
		return TrimmedMean{Beta: c.TrimBeta}, nil
	case "krum":
		return Krum{F: c.F}, nil
	case "multikrum":
		return multiKrum{F: c.F, M: c.M}, nil
	case "bulyan":
		return Bulyan{F: c.F}, nil
	}
	return nil, fmt.Errorf("strategy: unknown name %q (known: %s)", c.Name, strings.Join(Names, ", "))
}

// multiKrum is MultiKrum whose M defaults to n-F at aggregation time.
type multiKrum struct{ F, M int }

func (multiKrum) Name() string { return "multikrum" }

func (k multiKrum) MinUpdates() int     { return Krum{F: k.F}.MinUpdates() }
func (k multiKrum) Requirement() string { return Krum{F: k.F}.Requirement() }
func (k multiKrum) Aggregate(r uint64, g []float32, u []Update) ([]float32, error) {
	m := k.M
	if m == 0 {
		m = max(1, len(u)-k.F)
	}
	return Krum{F: k.F, M: m}.Aggregate(r, g, u)
}
