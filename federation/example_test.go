package federation_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/fennec-edge/fennec/federation"
)

// Run a hub and four simulated devices in one process.
func ExampleSimulate() {
	sum, err := federation.Simulate(context.Background(), federation.SimConfig{
		Devices: 4, Rounds: 3, Skew: 1, Seed: 7,
		Strategy: federation.StrategyConfig{Name: "fedavg"},
		OnRound:  func(p federation.Progress) { fmt.Printf("round %d/%d %s\n", p.Index, p.Total, p.Status) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Rounds, sum.Accuracy > 0.8)
	// Output:
	// round 1/3 completed
	// round 2/3 completed
	// round 3/3 completed
	// 3 true
}

// A strategy's errors can be matched from outside the package.
func ExampleErrNoUpdates() {
	_, err := federation.AggregateVectors("fedavg", []float32{0, 0}, nil, nil)
	fmt.Println(errors.Is(err, federation.ErrNoUpdates))
	_, err = federation.AggregateVectors("fedavg", []float32{0, 0}, [][]float32{{1}}, []uint64{1})
	fmt.Println(errors.Is(err, federation.ErrUpdateLength))
	// Output:
	// true
	// true
}
