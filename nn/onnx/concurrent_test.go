package onnx

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	pb "github.com/fennec-edge/fennec/nn/onnx/internal/onnxpb"
)

// TestConcurrentRuns: one Session serves several goroutines at once and
// every result matches onnxruntime's (run with -race to check the weight
// cache and the plan are shared safely).
func TestConcurrentRuns(t *testing.T) {
	m, err := Load(sharedModel(t, "silero_vad_v4.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := filepath.Join("testdata", "ref", "silero_vad_v4")
	in := map[string]*nn.Tensor{}
	for i, vi := range m.Inputs() {
		in[vi.Name] = readNPY(t, filepath.Join(ref, "input_"+string(rune('0'+i))+".npy"))
	}
	want := readNPY(t, filepath.Join(ref, "output_0.npy"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				out, err := s.Run(in)
				if err == nil {
					_, err = compare(out["output"], want, 1e-4, 1e-3)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Run(in); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}

// TestRepeatedRuns: runs reuse the f32 buffers of dead values; outputs of
// earlier runs must not change when later runs reuse memory, and every run
// must give onnxruntime's result.
func TestRepeatedRuns(t *testing.T) {
	for _, model := range []string{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "ch_PP-OCRv4_det_infer.onnx", "silero_vad_v5.onnx", "embedding_model.onnx"} {
		t.Run(model, func(t *testing.T) {
			m, err := Load(sharedModel(t, model), Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(m, gpu.NewCPU(), parityExtra[model]...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ref := filepath.Join("testdata", "ref", model[:len(model)-len(".onnx")])
			in := map[string]*nn.Tensor{}
			for i, vi := range m.Inputs() {
				in[vi.Name] = readNPY(t, filepath.Join(ref, "input_"+string(rune('0'+i))+".npy"))
			}
			var runs []map[string]*nn.Tensor
			for i := 0; i < 3; i++ {
				out, err := s.Run(in)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, out)
			}
			for r, out := range runs {
				for i, vi := range m.Outputs() {
					want := readNPY(t, filepath.Join(ref, "output_"+string(rune('0'+i))+".npy"))
					if _, err := compare(out[vi.Name], want, 1e-4, 1e-3); err != nil {
						t.Fatalf("run %d, output %q: %v", r, vi.Name, err)
					}
				}
				for i, name := range parityExtra[model] {
					want := readNPY(t, filepath.Join(ref, "extra_"+string(rune('0'+i))+".npy"))
					if _, err := compare(out[name], want, 1e-4, 1e-3); err != nil {
						t.Fatalf("run %d, intermediate %q: %v", r, name, err)
					}
				}
			}
		})
	}
}

// TestTemporariesReturnToPool: a kernel's temporary (a three-input Sum's
// partial sum) goes back to the pool, so a steady-state Run allocates only
// its output's buffer: well under two 1 MiB tensors per Run.
func TestTemporariesReturnToPool(t *testing.T) {
	g := &pb.GraphProto{Name: strp("sum"),
		Node:   []*pb.NodeProto{nodep("Sum", "s", []string{"x", "x", "x"}, []string{"a"}), nodep("Relu", "r", []string{"a"}, []string{"y"})},
		Input:  []*pb.ValueInfoProto{valueProto("x", nn.Float32, 256, 1024)},
		Output: []*pb.ValueInfoProto{valueProto("y", nn.Float32)}}
	m, err := Decode(marshal(t, model(13, g)), "sum.onnx", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	x, _ := nn.New(nn.Float32, []int{256, 1024}, 1<<20)
	in := map[string]*nn.Tensor{"x": x}
	for range 2 {
		if _, err := s.Run(in); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 8
	for range runs {
		if _, err := s.Run(in); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 3<<19 {
		t.Fatalf("%d bytes allocated per Run; the output is 1 MiB", per)
	}
}
