package federation_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
)

var quiet = slog.New(slog.DiscardHandler)

// A hub and one device in one process: the device connects to the hub's
// embedded server in-process, trains the pure-Go MLP on its readings and
// the hub completes one round with its update.
func ExampleNewHub() {
	dir, err := os.MkdirTemp("", "fennec-example-*")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	secret := []byte("the example fleet's secret, 32 B")
	data := federation.Vitals(200, 1)
	net := federation.MLP{In: data.Features, Out: 2}
	init := net.Init(1)
	h, err := federation.NewHub(federation.HubConfig{
		DataDir: dir, Listen: "-", Secret: secret, Initial: &init, Rounds: 1, Logger: quiet,
		OnRound: func(r federation.RoundReport) {
			fmt.Printf("round %d %s: %d/%d updates\n", r.Round, r.Status, r.Received, r.Sampled)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := h.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer h.Shutdown()

	nc, err := nats.Connect("", nats.InProcessServer(h.Server()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	a, err := federation.NewAgent(federation.AgentConfig{
		Conn: nc, ID: "ward-1", Key: federation.DeviceKey(secret, "ward-1"),
		Trainer: net, Data: data.TrainDataset(false), Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	select {
	case <-h.Done():
	case <-ctx.Done():
		fmt.Println("no round:", ctx.Err())
		return
	}
	fmt.Println("global model version", h.Global().Version, "err", h.Err())
	// Output:
	// round 1 completed: 1/1 updates
	// global model version 1 err <nil>
}

// Run a hub and four simulated devices in one process.
func ExampleSimulate() {
	sum, err := federation.Simulate(context.Background(), federation.SimConfig{
		Devices: 4, Rounds: 3, Skew: 1, Seed: 7, Logger: quiet,
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

// A built-in strategy aggregates whole models: here FedAvg of two
// one-tensor updates, weighted by their example counts.
func ExampleNewStrategy() {
	s, err := federation.NewStrategy(federation.StrategyConfig{Name: "fedavg"})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := func(v ...float32) federation.Model {
		return federation.Model{Name: "w", Tensors: []federation.Tensor{federation.F32Tensor("w", []uint64{2}, v)}}
	}
	next, err := s.Aggregate(context.Background(), 1, w(0, 0), []federation.ModelUpdate{
		{Device: "a", Model: w(1, 2), NumExamples: 1},
		{Device: "b", Model: w(4, 8), NumExamples: 2},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name(), next.Version, next.Flatten())
	// Output:
	// fedavg 1 [3 6]
}

// A model decodes from untrusted CBOR with its tensors checked.
func ExampleDecodeModel() {
	m := federation.MLP{In: 3, Hidden: 4, Out: 2}.Init(1)
	b, err := m.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := federation.DecodeModel(b)
	fmt.Println(d.Name, len(d.Tensors), d.Params(), err)
	_, err = federation.DecodeModel(b[:len(b)-1])
	fmt.Println(err != nil)
	// Output:
	// mlp 4 26 <nil>
	// true
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

// A hub's privacy mode is planned from the hub's configuration: 10 devices
// in the access file, a tenth sampled but at least 2, so the noise is
// calibrated for a sampling rate of 0.2 over 20 rounds.
func ExampleHubConfig_PlanPrivacy() {
	acc := &deploy.Access{}
	for i := range 10 {
		acc.Devices = append(acc.Devices, deploy.DeviceAccess{ID: fmt.Sprintf("ward-%d", i)})
	}
	cfg := federation.HubConfig{Rounds: 20, Fraction: 0.1, MinDevices: 2, Access: acc}
	m := cfg.PlanPrivacy(federation.ModeConfig{TargetEpsilon: 3})
	fmt.Println(m.Rounds, len(m.Population), m.SamplingRate)
	p, err := federation.NewHubPrivacy("dp", m)
	if err != nil {
		fmt.Println(err)
		return
	}
	st := p.Status()
	fmt.Println(p.Mode(), st.SamplingRate, st.NoiseMultiplier > 0)
	// Output:
	// 20 10 0.2
	// dp 0.2 true
}

// A hub keeps its fleet secret in its data directory unless told a file;
// without either the caller must say where it is.
func ExampleFleetSecretFile() {
	dir, _ := os.MkdirTemp("", "hub")
	defer os.RemoveAll(dir)
	file, _ := federation.FleetSecretFile("", dir+"/data")
	fmt.Println(file == dir+"/data/fleet.secret")
	st, _ := os.Stat(dir + "/data")
	fmt.Println(st.Mode().Perm())
	file, _ = federation.FleetSecretFile("/etc/fennec/secret", "")
	fmt.Println(file)
	_, err := federation.FleetSecretFile("", "")
	fmt.Println(errors.Is(err, federation.ErrNoSecretFile))
	// Output:
	// true
	// -rwx------
	// /etc/fennec/secret
	// true
}
