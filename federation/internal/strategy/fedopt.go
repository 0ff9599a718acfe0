package strategy

import (
	"errors"
	"fmt"
	"math"
)

// OptKind selects the adaptive server optimizer of FedOpt.
type OptKind int

const (
	Adam OptKind = iota
	Yogi
	Adagrad
)

// FedOpt is the family of adaptive federated optimizers of Reddi et al.
// (ICLR 2021, Algorithm 2), implemented as Flower's fedadam.py, fedyogi.py
// and fedadagrad.py do (the versions without Adam bias correction, which
// match the paper's Algorithm 2):
//
//	delta = FedAvg(updates) - global
//	m     = beta1*m + (1-beta1)*delta          (Adagrad: m = delta)
//	Adam:    v = beta2*v + (1-beta2)*delta^2
//	Yogi:    v = v - (1-beta2)*delta^2*sign(v - delta^2)
//	Adagrad: v = v + delta^2
//	w     = global + eta * m / (sqrt(v) + tau)
//
// Flower's defaults: FedAdam eta=0.1, beta1=0.9, beta2=0.99, tau=1e-9;
// FedYogi eta=0.01, beta1=0.9, beta2=0.99, tau=1e-3; FedAdagrad eta=0.1,
// tau=1e-9. A zero field takes the kind's default.
type FedOpt struct {
	Kind              OptKind
	Eta, Beta1, Beta2 float64
	Tau               float64
	m, v              []float32
	defaults          bool
}

func (o *FedOpt) Name() string {
	switch o.Kind {
	case Yogi:
		return "fedyogi"
	case Adagrad:
		return "fedadagrad"
	}
	return "fedadam"
}

func (o *FedOpt) fill() {
	if o.defaults {
		return
	}
	o.defaults = true
	def := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	switch o.Kind {
	case Adam:
		def(&o.Eta, 0.1)
		def(&o.Beta1, 0.9)
		def(&o.Beta2, 0.99)
		def(&o.Tau, 1e-9)
	case Yogi:
		def(&o.Eta, 0.01)
		def(&o.Beta1, 0.9)
		def(&o.Beta2, 0.99)
		def(&o.Tau, 1e-3)
	case Adagrad:
		def(&o.Eta, 0.1)
		def(&o.Tau, 1e-9)
	}
}

func (o *FedOpt) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	o.fill()
	if o.Eta <= 0 || o.Tau <= 0 || o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
		return nil, fmt.Errorf("strategy %s: invalid hyper-parameters eta=%v beta1=%v beta2=%v tau=%v",
			o.Name(), o.Eta, o.Beta1, o.Beta2, o.Tau)
	}
	avg, err := WeightedMean(updates, exampleWeights(updates))
	if err != nil {
		return nil, err
	}
	if len(o.m) != len(global) {
		o.m = make([]float32, len(global))
		o.v = make([]float32, len(global))
	}
	b1, b2 := o.Beta1, o.Beta2
	eta, tau := o.Eta, o.Tau
	out := make([]float32, len(global))
	for i := range out {
		d := float64(avg[i]) - float64(global[i])
		var m, v float64
		switch o.Kind {
		case Adagrad:
			m = d
			v = float64(o.v[i]) + d*d
		case Adam:
			m = b1*float64(o.m[i]) + (1-b1)*d
			v = b2*float64(o.v[i]) + (1-b2)*d*d
		case Yogi:
			m = b1*float64(o.m[i]) + (1-b1)*d
			pv := float64(o.v[i])
			s := pv - d*d
			sign := 0.0
			if s > 0 {
				sign = 1
			} else if s < 0 {
				sign = -1
			}
			v = pv - (1-b2)*d*d*sign
		}
		o.m[i], o.v[i] = float32(m), float32(v)
		out[i] = float32(float64(global[i]) + eta*m/(math.Sqrt(v)+tau))
	}
	return out, finite(o.Name(), out)
}

func (o *FedOpt) State() []byte { return encodeVecs(o.m, o.v) }
func (o *FedOpt) Restore(b []byte) error {
	v, err := decodeVecs(b, 2)
	if err != nil {
		return err
	}
	if len(v[0]) != len(v[1]) {
		return errors.New("strategy: optimizer state m and v differ in length")
	}
	o.m, o.v = v[0], v[1]
	return nil
}
