package modes_test

import (
	"context"
	"testing"

	"github.com/fennec-edge/fennec/federation/internal/hook"
	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/he"
)

// FuzzClient feeds untrusted hub bytes to a device's step handler and
// Transform (task extras) in every mode: errors, never panics.
func FuzzClient(f *testing.F) {
	f.Add("sa.keys", []byte{0xa0})
	f.Add("he.keygen", []byte{0xa2, 0x65, 0x73, 0x65, 0x74, 0x75, 0x70, 0xa0, 0x62, 0x69, 0x64, 0x01})
	f.Add("mode.params", []byte{0xa1, 0x64, 0x6d, 0x6f, 0x64, 0x65, 0x62, 0x64, 0x70})
	// {"mode": "dpsgd", "len": 8, "sgd": {"clip": 1, "patients_per_step": 8, "epsilon": 3, "delta": 1e-5, "rounds": 2}}
	f.Add("mode.params", []byte("\xa3\x64mode\x65dpsgd\x63len\x08\x63sgd\xa5\x64clip\x01\x71patients_per_step\x08\x67epsilon\x03\x65delta\xfb\x3e\xe4\xf8\xb5\x88\xe3\x68\xf1\x66rounds\x02"))
	steps := []string{"sa.keys", "sa.share", "sa.deliver", "sa.unmask", "he.keygen", "he.pk", "he.tshares", "he.tdeliver", "he.collect", "he.decrypt", "x"}
	global := sim.MLP{In: 3, Out: 2}.Init(1)
	f.Fuzz(func(t *testing.T, step string, data []byte) {
		for _, mode := range modes.Names {
			c, err := modes.NewClient(mode, "dev", modes.Config{NoiseMultiplier: 1, HEParams: he.Test10, AllowInsecure: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range append(steps, step) {
				_, _ = c.Handle(context.Background(), 1, s, data)
			}
			upd := global
			info := hook.RoundInfo{Round: 1, Mode: mode, Device: "dev"}
			var st wire.Settings
			if err := c.TrainSettings(context.Background(), info, map[string][]byte{"mode.params": data}, &st, 5); err == nil && st.DP != nil {
				if !(st.DP.NoiseMultiplier > 0) || !(st.DP.SamplingRate > 0 && st.DP.SamplingRate <= 1) || st.DP.Steps < 1 {
					t.Fatalf("accepted DP-SGD settings %+v", st.DP)
				}
			}
			if _, err := c.Transform(context.Background(), info, map[string][]byte{step: data, "mode.params": data}, global, &upd, 1); err == nil {
				if err := global.SameLayout(&upd); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
