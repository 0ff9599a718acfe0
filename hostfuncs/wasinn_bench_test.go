package hostfuncs_test

import (
	"context"
	"encoding/binary"
	"log/slog"
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
	"github.com/tetratelabs/wazero"
)

// wasinnRig is a model loaded twice on the same input: in the host library
// (Session.Run, the reference) and behind a wasi-nn guest (a forwarder
// module whose calls go through wazero host functions exactly as a
// compiled guest's do), with the guest's context set up and its input set.
type wasinnRig struct {
	hostRun       func()
	call          func(name string, args ...uint64)
	cx            uint64        // the guest's execution context
	raw           []byte        // the input as the guest holds it
	outAt, outMax uint64        // where get_output may write, and how much
	written       func() uint32 // what the last get_output wrote
}

func newWASINNRig(b *testing.B, path string, shape []int) *wasinnRig {
	b.Helper()
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	if err := set.Add(hostfuncs.Preload{Name: "m", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(set.Close)
	in := &nn.Tensor{DType: nn.Float32, Shape: shape, F32: make([]float32, shape[1]*shape[2]*shape[3])}
	raw := make([]byte, 4*len(in.F32))
	for i := range in.F32 {
		in.F32[i] = float32(math.Sin(float64(i) * 0.003))
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(in.F32[i]))
	}
	m, err := onnx.Load(path, onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := onnx.NewSession(m, backend)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sess.Close)
	feed := map[string]*nn.Tensor{m.Inputs()[0].Name: in}
	r := &wasinnRig{raw: raw, hostRun: func() {
		if _, err := sess.Run(feed); err != nil {
			b.Fatal(err)
		}
	}}
	r.hostRun() // uploads the weights

	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	b.Cleanup(func() { rt.Close(ctx) })
	if err := hostfuncs.Register(ctx, rt, hostfuncs.Builtin()); err != nil {
		b.Fatal(err)
	}
	pages := uint32(len(raw)/65536*2 + 4)
	host, err := hostfuncs.NewInstance(hostfuncs.InstanceConfig{Backend: backend, Logger: slog.New(slog.DiscardHandler),
		Services: &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: set}}, NN: hostfuncs.NNConfig{Models: []string{"m"}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(host.Close)
	hctx := host.Attach(ctx)
	mod, err := rt.InstantiateWithConfig(hctx, wasmtest.Forwarder(pages, imports()...), wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	r.call = func(name string, args ...uint64) {
		res, err := mod.ExportedFunction("call_wasi_ephemeral_nn_"+name).Call(hctx, args...)
		if err != nil || res[0] != 0 {
			b.Fatalf("%s: %v %v %s", name, err, res, host.LastError())
		}
	}
	mem := mod.Memory()
	const dataAt = 65536
	r.outAt = uint64(dataAt + len(raw))
	mem.Write(nameAt, []byte("m"))
	r.call("load_by_name", nameAt, 1, graphAt)
	g, _ := mem.ReadUint32Le(graphAt)
	r.call("init_execution_context", uint64(g), ctxAt)
	cx, _ := mem.ReadUint32Le(ctxAt)
	r.cx = uint64(cx)
	mem.Write(dataAt, raw)
	mem.Write(dimsAt, wasmtest.LE32(int32(shape[0]), int32(shape[1]), int32(shape[2]), int32(shape[3])))
	t := make([]byte, 20)
	binary.LittleEndian.PutUint32(t[0:], dimsAt)
	binary.LittleEndian.PutUint32(t[4:], 4)
	t[8] = 1
	binary.LittleEndian.PutUint32(t[12:], dataAt)
	binary.LittleEndian.PutUint32(t[16:], uint32(len(raw)))
	mem.Write(tensorAt, t)
	r.call("set_input", r.cx, 0, tensorAt)
	r.call("compute", r.cx)
	r.outMax = uint64(mem.Size()) - r.outAt
	r.written = func() uint32 { n, _ := mem.ReadUint32Le(writtenAt); return n }
	return r
}

// BenchmarkWASINN compares a wasi-nn guest's compute with nn/onnx's own
// Session.Run of the same model and input (the reference), and measures
// the copies wasi-nn adds separately: set_input (guest memory -> host
// tensor) and get_output (host tensor -> guest memory). The guest's calls
// go through wazero host functions exactly as a compiled guest's do.
//
//	go test ./hostfuncs -run '^$' -bench WASINN -benchtime 20x -count 5
func BenchmarkWASINN(b *testing.B) {
	models := shared.Dir("models")
	if models == "" {
		b.Skip("../shared/models is absent")
	}
	for _, c := range []struct {
		name, file string
		shape      []int
	}{
		{"ppocr-cls-48x192", "ch_ppocr_mobile_v2.0_cls_infer.onnx", []int{1, 3, 48, 192}},
		{"ppocr-det-320x320", "ch_PP-OCRv4_det_infer.onnx", []int{1, 3, 320, 320}},
	} {
		r := newWASINNRig(b, filepath.Join(models, c.file), c.shape)
		b.Run(c.name+"/onnx-run", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.hostRun()
			}
		})
		b.Run(c.name+"/wasi-nn-compute", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.call("compute", r.cx)
			}
		})
		b.Run(c.name+"/wasi-nn-set_input", func(b *testing.B) {
			b.SetBytes(int64(len(r.raw)))
			for i := 0; i < b.N; i++ {
				r.call("set_input", r.cx, 0, tensorAt)
			}
		})
		b.Run(c.name+"/wasi-nn-get_output", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.call("get_output", r.cx, 0, r.outAt, r.outMax, writtenAt)
			}
			b.SetBytes(int64(r.written()))
		})
	}
}

// BenchmarkWASINNPaired measures issue #11 item 5's goal (a wasi-nn
// guest's compute on PP-OCRv4 detection costs <= 3 % more than the host
// library's run of the same model) so that a machine whose load changes
// during the run cannot decide the answer: every iteration runs the host
// library's Session.Run and then the guest's compute on the same input,
// each timed on its own, and the benchmark reports the median of each and
// the median of the per-iteration ratios (guest/host). BenchmarkWASINN's
// sub-benchmarks run one after the other, so a burst of load on a shared
// machine lands on one side only.
//
//	go test ./hostfuncs -run '^$' -bench WASINNPaired -benchtime 40x
func BenchmarkWASINNPaired(b *testing.B) {
	models := shared.Dir("models")
	if models == "" {
		b.Skip("../shared/models is absent")
	}
	r := newWASINNRig(b, filepath.Join(models, "ch_PP-OCRv4_det_infer.onnx"), []int{1, 3, 320, 320})
	// Both sides warm: weights uploaded, buffers planned.
	for range 2 {
		r.hostRun()
		r.call("compute", r.cx)
	}

	var hostT, guestT, ratio []float64
	for b.Loop() {
		t0 := time.Now()
		r.hostRun()
		t1 := time.Now()
		r.call("compute", r.cx)
		t2 := time.Now()
		h, g := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
		hostT, guestT, ratio = append(hostT, h), append(guestT, g), append(ratio, g/h)
	}
	b.ReportMetric(bench.Median(hostT)*1e3, "host-ms")
	b.ReportMetric(bench.Median(guestT)*1e3, "guest-ms")
	b.ReportMetric((bench.Median(ratio)-1)*100, "guest-extra-%")
}
