//go:build linux

package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/par"
	"github.com/fennec-edge/fennec/nn"
)

// TestOpProfile prints where a model's time goes, per operator type and per
// node kind (operator, weight shape, group, strides, input shape), on the
// CPU backend: FENNEC_OPPROF=SUBSTR picks the shared models whose
// file name contains SUBSTR, and the exported torch models in testdata/ops/t_*
// whose directory name contains it, or the model file FENNEC_OPPROF=PATH.onnx
// with its inputs in FENNEC_OPPROF_REF (FENNEC_OPPROF_RUNS runs, default 200). It is a
// tool for profiling sessions beside onnxruntime's enable_profiling, not a
// check, and is skipped without the variable. FENNEC_OPPROF_THREADS sets the
// backend's threads; with more than one, each line gives the process CPU
// time spent in the node (all threads), its wall time and their ratio, the
// node's parallelism (x1.00: it ran on one thread; on a loaded machine the
// wall time and so the ratio move, but a serial node stays at x1.00).
// FENNEC_OPPROF_SIZE=HxW feeds a 1x3xHxW image instead of the parity input
// (the detector at 320x320). Per node kind, splits= counts the loops the
// node split over helpers per run (internal/par), whatever the load: a
// node with none ran on one thread.
func TestOpProfile(t *testing.T) {
	sub := os.Getenv("FENNEC_OPPROF")
	if sub == "" {
		t.Skip("set FENNEC_OPPROF=MODEL_SUBSTRING to print a per-op profile")
	}
	runs := 200
	if v := os.Getenv("FENNEC_OPPROF_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	threads := 1
	if v := os.Getenv("FENNEC_OPPROF_THREADS"); v != "" {
		fmt.Sscan(v, &threads)
	}
	models := []string{"ch_ppocr_mobile_v2.0_cls_infer.onnx", "embedding_model.onnx", "melspectrogram.onnx", "silero_vad_v5.onnx", "silero_vad_v4.onnx", "ch_PP-OCRv4_det_infer.onnx"}
	exported, _ := filepath.Glob(filepath.Join("testdata", "ops", "t_*"))
	models = append(models, exported...)
	if strings.HasSuffix(sub, ".onnx") {
		// a model file (a quantized model, say) with its input_N.npy in
		// FENNEC_OPPROF_REF
		models = []string{sub}
	}
	for _, model := range models {
		if !strings.Contains(filepath.Base(model), filepath.Base(sub)) {
			continue
		}
		path, ref := "", ""
		if model == sub && strings.HasSuffix(sub, ".onnx") {
			path, ref = sub, os.Getenv("FENNEC_OPPROF_REF")
		} else if strings.HasSuffix(model, ".onnx") {
			path, ref = sharedModel(t, model), filepath.Join("testdata", "ref", model[:len(model)-len(".onnx")])
		} else {
			path, ref = filepath.Join(model, "model.onnx"), model
		}
		m, err := Load(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(m, be)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]*nn.Tensor{}
		for i, vi := range m.Inputs() {
			in[vi.Name] = readNPY(t, filepath.Join(ref, fmt.Sprintf("input_%d.npy", i)))
			var h, w int
			if v := os.Getenv("FENNEC_OPPROF_SIZE"); v != "" && i == 0 {
				if _, err := fmt.Sscanf(v, "%dx%d", &h, &w); err != nil {
					t.Fatalf("FENNEC_OPPROF_SIZE=%q: want HxW", v)
				}
				x, err := nn.New(nn.Float32, []int{1, 3, h, w}, 1<<26)
				if err != nil {
					t.Fatal(err)
				}
				for j := range x.F32 {
					x.F32[j] = float32(j*7919%1000) / 1000
				}
				in[vi.Name] = x
			}
		}
		for range 10 {
			if _, err := s.Run(in); err != nil {
				t.Fatal(err)
			}
		}
		// One thread: the node's thread CPU time, not wall time (on a
		// shared machine a node's wall time includes the time other
		// processes held the core), with the goroutine locked to its
		// thread. More threads: the process CPU time (all threads) and
		// the wall time of each node, unlocked (a locked goroutine hands
		// its P to another thread at each wait, which is not how a
		// session runs); their ratio is the node's parallelism.
		multi := threads > 1
		clock := threadCPU
		if multi {
			clock = processCPU
		}
		var wallPrev, wallLast time.Duration
		var splitPrev, splitLast int64
		t0 := time.Now()
		traceClock = func() time.Duration {
			wallPrev, wallLast = wallLast, time.Since(t0)
			splitPrev, splitLast = splitLast, par.Splits()
			return clock()
		}
		splitKind := map[string]int64{}
		byOp, byKind, count := map[string]time.Duration{}, map[string]time.Duration{}, map[string]int{}
		wallOp, wallKind := map[string]time.Duration{}, map[string]time.Duration{}
		traceNode = func(n *node, in, out []*nn.Tensor, d time.Duration) {
			op := n.op
			kind := op
			if (op == "Conv" || op == "FusedConv" || op == "ConvTranspose") && len(in) > 1 && in[1] != nil && in[0] != nil {
				kind = fmt.Sprintf("%s w%v g%d s%v x%v", op, in[1].Shape, n.attrInt("group", 1), func() []int64 { v, _ := n.attrInts("strides"); return v }(), in[0].Shape)
				if n.epi != nil {
					kind += " +epi"
				}
			} else if len(in) > 0 && in[0] != nil {
				kind = fmt.Sprintf("%s x%v", op, in[0].Shape)
			}
			byOp[op] += d
			byKind[kind] += d
			wallOp[op] += wallLast - wallPrev
			wallKind[kind] += wallLast - wallPrev
			splitKind[kind] += splitLast - splitPrev
			count[kind]++
		}
		if !multi {
			runtime.LockOSThread()
		}
		start := time.Now()
		for range runs {
			if _, err := s.Run(in); err != nil {
				traceNode = nil
				t.Fatal(err)
			}
		}
		total := time.Since(start)
		traceNode = nil
		if !multi {
			runtime.UnlockOSThread()
		}
		s.Close()
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(runs) }
		var sum, wsum time.Duration
		for op, d := range byOp {
			sum += d
			wsum += wallOp[op]
		}
		if multi {
			fmt.Printf("== %s: %.1f us/run wall, %.1f us/run process CPU and %.1f us/run wall in nodes, parallelism %.2f (%d threads)\n",
				model, per(total), per(sum), per(wsum), float64(sum)/float64(max(wsum, 1)), threads)
		} else {
			fmt.Printf("== %s: %.1f us/run wall, %.1f us/run thread CPU in nodes (%d threads)\n", model, per(total), per(sum), threads)
		}
		print := func(m, wm map[string]time.Duration, withCount bool) {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
			for _, k := range keys {
				par := ""
				if multi {
					par = fmt.Sprintf(" CPU %8.1f us wall x%.2f", per(wm[k]), float64(m[k])/float64(max(wm[k], 1)))
				}
				if withCount {
					par += fmt.Sprintf("  splits=%d", splitKind[k]/int64(runs))
				}
				if withCount {
					fmt.Printf("  %8.1f us%s  n=%d  %s\n", per(m[k]), par, count[k]/runs, k)
				} else {
					fmt.Printf("  %8.1f us%s  %s\n", per(m[k]), par, k)
				}
			}
		}
		var serial time.Duration
		for k, d := range byKind {
			if splitKind[k] == 0 {
				serial += d
			}
		}
		fmt.Printf("   %.1f us/run (%.0f%%) in nodes that never split\n", per(serial), 100*float64(serial)/float64(max(sum, 1)))
		print(byOp, wallOp, false)
		fmt.Println("  -- by node kind")
		print(byKind, wallKind, true)
	}
}

// processCPU is the process's CPU time, all threads (CLOCK_PROCESS_CPUTIME_ID).
func processCPU() time.Duration {
	var ts syscall.Timespec
	const clockProcessCPUTimeID = 2
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
