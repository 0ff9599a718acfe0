package federation

import (
	"errors"
	"testing"
)

// TestNewModeNeedsLedger: a mode that trains with DP-SGD on the device is
// refused with ErrNoLedger, before NewMode runs, when the trainer is a
// WasmTrainer with no Dataset to charge (the rule lived in cmd/fennec's
// closure, so a library user got no such check); other modes, a trainer
// with a Dataset and other trainers reach NewMode.
func TestNewModeNeedsLedger(t *testing.T) {
	reached := errors.New("reached NewMode")
	for _, tc := range []struct {
		name    string
		tr      Trainer
		mode    string
		refused bool
	}{
		{"dpsgd, no dataset", &WasmTrainer{}, "dpsgd", true},
		{"secagg+dpsgd, no dataset", &WasmTrainer{}, "secagg+dpsgd", true},
		{"dpsgd with a dataset", &WasmTrainer{Dataset: "vitals"}, "dpsgd", false},
		{"dp, no dataset", &WasmTrainer{}, "dp", false},
		{"secagg, no dataset", &WasmTrainer{}, "secagg", false},
		{"a Go trainer", MLP{}, "dpsgd", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			f := newMode(func(string) (*DevicePrivacy, error) { ran = true; return nil, reached }, tc.tr)
			_, err := f(tc.mode)
			if tc.refused {
				if !errors.Is(err, ErrNoLedger) || ran {
					t.Fatalf("err = %v (NewMode ran: %v), want ErrNoLedger before NewMode", err, ran)
				}
				return
			}
			if !errors.Is(err, reached) {
				t.Fatalf("err = %v, want NewMode's", err)
			}
		})
	}
}
