//go:build cuda

package cuda

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/gpu/gputest"
)

// requireGPU turns a missing device from a skip into a failure; the GPU
// check script (.gpu-check/run.sh) sets it.
var requireGPU = os.Getenv("FENNEC_REQUIRE_GPU") == "1"

var (
	sharedOnce sync.Once
	shared     *Backend
	sharedErr  error
)

// backend returns one backend shared by the tests (starting one compiles
// the kernels), or skips when the machine has no usable device.
func backend(t testing.TB) *Backend {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = New(Config{}) })
	if sharedErr != nil {
		if requireGPU {
			t.Fatalf("FENNEC_REQUIRE_GPU=1 but CUDA is unusable: %v", sharedErr)
		}
		t.Skipf("no usable CUDA device: %v", sharedErr)
	}
	return shared
}

func TestConformance(t *testing.T) {
	b := backend(t)
	t.Logf("device %+v, kernels for %s", b.Device(), b.Arch())
	gputest.Run(t, func() gpu.Backend { return b })
	if live := b.LiveBytes(); live < 0 {
		t.Errorf("live bytes went negative: %d", live)
	}
}

// TestKernelsCompile compiles kernels.cu with the installed NVRTC for the
// architectures fennec targets (sm_75 and later; CUDA 13 dropped older ones).
// NVRTC runs on the CPU, so this needs the
// CUDA libraries but no device.
func TestKernelsCompile(t *testing.T) {
	for _, cc := range [][2]int{{7, 5}, {8, 0}, {9, 0}} { // CUDA 13 NVRTC dropped < 7.5
		ptx, arch, err := compilePTX(cc[0], cc[1])
		if err != nil {
			t.Fatalf("sm_%d%d: %v", cc[0], cc[1], err)
		}
		for _, s := range kernelSpecs {
			if !strings.Contains(ptx, ".entry "+s.name+"(") {
				t.Errorf("%s PTX lacks kernel %s", arch, s.name)
			}
		}
	}
}

// TestUnusableDriverIsAnError checks that a machine without a usable device
// gets an error that says why (the reason fennec logs when it falls back
// to the CPU), not a crash: gorgonia's own cuInit at package init is made
// non-fatal by the compat header, so reaching this test at all proves it.
func TestUnusableDriverIsAnError(t *testing.T) {
	info, err := Probe()
	if err == nil {
		if len(info.Devices) == 0 {
			t.Fatal("Probe found no devices but returned no error")
		}
		t.Skipf("a device is present: %+v", info.Devices[0])
	}
	if requireGPU {
		t.Fatalf("FENNEC_REQUIRE_GPU=1 but Probe failed: %v", err)
	}
	if !strings.Contains(err.Error(), "cuda:") {
		t.Errorf("Probe error %q does not say it is about CUDA", err)
	}
	if _, nerr := New(Config{}); nerr == nil {
		t.Fatal("New succeeded where Probe failed")
	}
	if info.Toolkit == "" || info.Toolkit == "unknown" {
		t.Errorf("toolkit version %q", info.Toolkit)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{Streams: -1}, {MaxBytes: -1}, {Device: -1}, {Device: 1 << 20}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestOutOfMemory fills the device with the largest tensors a guest may
// ask for until allocation fails, which must be gpu.ErrOutOfMemory; after
// freeing, allocation works again.
func TestOutOfMemory(t *testing.T) {
	b := backend(t)
	if testing.Short() {
		t.Skip("fills device memory")
	}
	var held []gpu.Tensor
	defer func() {
		for _, x := range held {
			b.Free(x)
		}
	}()
	shape := []int{1 << 31} // gpu.MaxElements f32: 8 GiB
	for i := 0; ; i++ {
		x, err := b.New(gpu.F32, shape)
		if err != nil {
			if !errors.Is(err, gpu.ErrOutOfMemory) {
				t.Fatalf("allocation %d failed with %v, want ErrOutOfMemory", i, err)
			}
			t.Logf("out of memory after %d x 8 GiB: %v", i, err)
			break
		}
		held = append(held, x)
		if i > 4096 {
			t.Fatal("never ran out of memory")
		}
	}
	for _, x := range held {
		b.Free(x)
	}
	held = nil
	x, err := b.New(gpu.F32, shape)
	if err != nil {
		t.Fatalf("allocation after freeing: %v", err)
	}
	held = append(held, x)
	// the backend still computes
	small, _ := b.New(gpu.F32, []int{4})
	held = append(held, small)
	if err := b.Unary(gpu.AddScalar, small, small, 1); err != nil {
		t.Fatal(err)
	}
}

func TestMaxBytes(t *testing.T) {
	backend(t)
	b, err := New(Config{MaxBytes: 1 << 20, Streams: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	x, err := b.New(gpu.F32, []int{1 << 18})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.New(gpu.F32, []int{1}); !errors.Is(err, gpu.ErrOutOfMemory) {
		t.Errorf("allocation past MaxBytes: err %v, want ErrOutOfMemory", err)
	}
	b.Free(x)
	if b.LiveBytes() != 0 {
		t.Errorf("live bytes after Free = %d", b.LiveBytes())
	}
	if _, err := b.New(gpu.F32, []int{1 << 18}); err != nil {
		t.Errorf("allocation after Free: %v", err)
	}
	b.Close()
	if _, err := b.New(gpu.F32, []int{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("New after Close: %v, want ErrClosed", err)
	}
}
