package modes_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/modes"
	"github.com/fennec-edge/fennec/federation/internal/sim"
)

// A simulated federation of 5 devices whose hub learns only the sum of the
// updates (SecAgg+) plus Gaussian noise for epsilon 3 over 3 rounds.
func Example() {
	s, err := sim.Run(context.Background(), sim.Config{Devices: 5, Rounds: 3, Seed: 1, Linear: true,
		PrivacyMode: modes.SecAggDP,
		Privacy:     modes.Config{TargetEpsilon: 3, Delta: 1e-5, Clip: 0.5},
		Deadline:    10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range s.Reports {
		fmt.Printf("round %d: %s, %d contributors, epsilon <= 3: %v\n", p.Index, p.Status, p.Privacy.Contributors, p.Privacy.Epsilon <= 3)
	}
	// Output:
	// round 1: completed, 5 contributors, epsilon <= 3: true
	// round 2: completed, 5 contributors, epsilon <= 3: true
	// round 3: completed, 5 contributors, epsilon <= 3: true
}
