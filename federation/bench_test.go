package federation

import (
	"context"
	"fmt"
	"testing"

	"github.com/fennec-edge/fennec/federation/internal/strategy"
)

// BenchmarkBoundary measures what the package boundary costs a round: a
// FedAvg of 10 updates of a 100,942-parameter model (the round1000 bench's
// model) through the public Strategy, which converts the global model and
// every update, against the same aggregation on the internal types.
func BenchmarkBoundary(b *testing.B) {
	net := MLP{In: 100, Hidden: 980, Out: 2}
	global := net.Init(1)
	ups := make([]ModelUpdate, 10)
	for k := range ups {
		v := global.Flatten()
		for i := range v {
			v[i] += float32(k) * 0.01
		}
		m, err := global.WithVector(v, 0)
		if err != nil {
			b.Fatal(err)
		}
		ups[k] = ModelUpdate{Device: fmt.Sprint(k), Model: m, NumExamples: uint64(k + 1)}
	}
	pub, err := NewStrategy(StrategyConfig{Name: "fedavg"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("public", func(b *testing.B) {
		for b.Loop() {
			if _, err := pub.Aggregate(ctx, 1, global, ups); err != nil {
				b.Fatal(err)
			}
		}
	})
	ig := global.internal()
	iups := make([]strategy.ModelUpdate, len(ups))
	for i, u := range ups {
		iups[i] = strategy.ModelUpdate{Device: u.Device, Model: u.Model.internal(), NumExamples: u.NumExamples}
	}
	is := internalStrategy(pub)
	b.Run("internal", func(b *testing.B) {
		for b.Loop() {
			if _, err := is.Aggregate(ctx, 1, ig, iups); err != nil {
				b.Fatal(err)
			}
		}
	})
}
