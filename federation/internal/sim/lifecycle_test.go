package sim

import (
	"context"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// TestRunWaitsForFaultPoller: Run returns only after the goroutine that
// waits for the fault round has exited (here the fault round never comes).
func TestRunWaitsForFaultPoller(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	testHookFaultPollerDone = func() { close(entered); <-release }
	defer func() { testHookFaultPollerDone = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ran := make(chan struct{})
	var err error
	go func() {
		_, err = Run(ctx, Config{Devices: 2, Rounds: 1, Seed: 1, Linear: true, Fault: Fault{Round: 99, Devices: 1}})
		close(ran)
	}()
	select {
	case <-entered:
	case <-ran:
		t.Fatalf("Run returned (%v) and the fault poller had not exited", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the fault poller never exited")
	}
	select {
	case <-ran:
		close(release)
		t.Fatal("Run returned while the fault poller was still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the fault poller exited")
	}
	if err != nil {
		t.Fatal(err)
	}
	testutil.NoGoroutine(t, "sim.Run")
}

// lossless reports accuracy but no loss.
type lossless struct{ MLP }

func (l lossless) Evaluate(ctx context.Context, in train.EvalInput) (train.EvalOutput, error) {
	o, err := l.MLP.Evaluate(ctx, in)
	delete(o.Metrics, "loss")
	return o, err
}

// TestEvaluatorWithoutLoss: an evaluator that reports no loss does not
// give the rounds a hub loss of 0; its rounds carry no hub evaluation and
// the progress falls back to the devices' own loss.
func TestEvaluatorWithoutLoss(t *testing.T) {
	d := Vitals(400, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Run(ctx, Config{Devices: 2, Rounds: 2, Seed: 1, Linear: true, Data: d,
		Evaluator: lossless{MLP{In: d.Features, Out: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Reports {
		if p.HasEval || p.Loss == 0 {
			t.Fatalf("round %d: hub evaluation %v with loss %v from an evaluator that reports none", p.Index, p.HasEval, p.Loss)
		}
	}
}
