package modes_test

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/privacy/he"
)

func TestModesSimulate(t *testing.T) {
	for _, mode := range modes.Names {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			pc := modes.Config{NoiseMultiplier: 0.5, Clip: 1, HEParams: he.Test10, AllowInsecure: true, StepTimeout: 5 * time.Second}
			start := time.Now()
			s, err := sim.Run(ctx, sim.Config{Devices: 5, Rounds: 4, Seed: 3, Hidden: -1, PrivacyMode: mode, Privacy: pc,
				Deadline: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: acc %.3f rounds %d bytes %d privacy %+v in %v", mode, s.Accuracy, s.Rounds, s.BytesMoved, s.Privacy, time.Since(start))
		})
	}
}
