package hostfuncs_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
)

// sileroRig is Silero VAD v5 on one 512-sample window, state and sr, run
// two ways: host is onnx.Session.Run; guest is fennec_nn_graph_run called
// from guest code (the test module's call_ export, through wazero) with
// the input tensors made once, plus the two fennec_tensor_free calls that
// release its outputs. Both are warm when it returns.
func sileroRig(b *testing.B) (host, guest func()) {
	b.Helper()
	dir := shared.Dir("models")
	if dir == "" {
		b.Skip("../shared/models is absent")
	}
	path := filepath.Join(dir, "silero_vad_v5.onnx")
	audio := make([]float32, 512)
	for i := range audio {
		audio[i] = float32(math.Sin(float64(i)*0.07)) * 0.5
	}
	m, err := onnx.Load(path, onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := onnx.NewSession(m, backend)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	ins := m.Inputs()
	if len(ins) != 3 {
		b.Fatalf("silero v5 has %d inputs, want 3", len(ins))
	}
	feed := map[string]*nn.Tensor{
		ins[0].Name: {DType: nn.Float32, Shape: []int{1, 512}, F32: audio},
		ins[1].Name: {DType: nn.Float32, Shape: []int{2, 1, 128}, F32: make([]float32, 256)},
		ins[2].Name: {DType: nn.Int64, Shape: []int{}, I64: []int64{16000}},
	}
	host = func() {
		if _, err := s.Run(feed); err != nil {
			b.Fatal(err)
		}
	}
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	b.Cleanup(set.Close)
	if err := set.Add(hostfuncs.Preload{Name: "vad", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
		b.Fatal(err)
	}
	e := nnEnvWith(b, set, hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"vad"}}})
	g := e.graphLoad("vad")
	if g <= 0 {
		b.Fatalf("graph_load = %d: %s", g, e.host.LastError())
	}
	in := e.newF32([]int32{1, 512}, audio...)
	state := e.newF32([]int32{2, 1, 128}, make([]float32, 256)...)
	e.put(dataAt, wasmtest.LE32(16000))
	sr := e.call("fennec_tensor_new", 3, shapeAt, 0, dataAt, 4)
	e.put(handlesAt, wasmtest.LE32(in, state, sr))
	guest = func() {
		if n := e.call("fennec_nn_graph_run", u(g), handlesAt, 3, handlesAt+16, 2); n != 2 {
			b.Fatalf("graph_run = %d: %s", n, e.host.LastError())
		}
		outs := e.get(handlesAt+16, 8)
		e.call("fennec_tensor_free", u(int32(binary.LittleEndian.Uint32(outs))))
		e.call("fennec_tensor_free", u(int32(binary.LittleEndian.Uint32(outs[4:]))))
	}
	for range 20 {
		host()
		guest()
	}
	return host, guest
}

// BenchmarkNNSileroGuest measures issue #11 item 5's goal: a warm
// fennec_nn run of Silero VAD v5 from a guest within 10 us of the host
// library's own run (sileroRig's two ways, one sub-benchmark each). Run
// side by side:
//
//	go test -run '^$' -bench NNSileroGuest -count 6 ./hostfuncs
func BenchmarkNNSileroGuest(b *testing.B) {
	host, guest := sileroRig(b)
	b.Run("host", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			host()
		}
	})
	b.Run("guest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			guest()
		}
	})
}

// BenchmarkNNSileroPaired decides the same goal on a machine whose load
// moves: every iteration runs the host library's Session.Run and then the
// guest's graph_run (with its two frees) on the same inputs, each timed,
// and it reports the median of each side and the median per-iteration
// difference (guest - host), in microseconds.
//
//	go test -run '^$' -bench NNSileroPaired -benchtime 3000x -count 3 ./hostfuncs
func BenchmarkNNSileroPaired(b *testing.B) {
	host, guest := sileroRig(b)
	var hs, gs, ds []float64
	for b.Loop() {
		t0 := time.Now()
		host()
		t1 := time.Now()
		guest()
		t2 := time.Now()
		h, g := t1.Sub(t0).Seconds()*1e6, t2.Sub(t1).Seconds()*1e6
		hs, gs, ds = append(hs, h), append(gs, g), append(ds, g-h)
	}
	b.ReportMetric(bench.Median(hs), "host-us")
	b.ReportMetric(bench.Median(gs), "guest-us")
	b.ReportMetric(bench.Median(ds), "guest-extra-us")
}
