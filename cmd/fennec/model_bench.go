package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/spf13/cobra"
)

//go:embed model_bench_ort.py
var ortBenchScript string

// maxBenchRuns bounds --runs and --warmup.
const maxBenchRuns = 1_000_000

type benchFlags struct {
	inputs  []string
	dims    []string
	runs    int
	warmup  int
	threads int
	asJSON  bool
	ort     bool
	python  string
}

// latency is a summary of timed runs, in milliseconds.
type latency struct {
	Runs     int     `json:"runs"`
	MedianMS float64 `json:"median_ms"`
	P10MS    float64 `json:"p10_ms"`
	P90MS    float64 `json:"p90_ms"`
}

type modelBenchReport struct {
	Model   string            `json:"model"`
	Threads int               `json:"threads"`
	Inputs  map[string]string `json:"inputs"`
	Fennec  latency           `json:"fennec"`
	// ORT is onnxruntime's latency on the same inputs, interleaved run by
	// run with fennec's; nil without --ort or when it was skipped.
	ORT        *latency `json:"onnxruntime,omitempty"`
	ORTVersion string   `json:"onnxruntime_version,omitempty"`
	ORTSkipped string   `json:"onnxruntime_skipped,omitempty"`
	// Ratio is fennec's median over onnxruntime's (below 1: fennec is faster).
	Ratio float64 `json:"ratio,omitempty"`
}

func newModelBenchCmd() *cobra.Command {
	var f benchFlags
	c := &cobra.Command{
		Use:   "bench MODEL.onnx [--input NAME=DTYPE:SHAPE:SOURCE ...] [--dim NAME=N ...] [--runs N] [--warmup N] [--threads N] [--ort] [--json]",
		Short: "Time a model on the CPU backend (median, p10, p90), optionally side by side with onnxruntime",
		Long: `Time a model on the CPU backend: --warmup runs, then --runs timed runs.

Inputs the command line does not give are random (uniform in [-1, 1) for
f32, 0 or 1 for integers and bool) of the model's declared shapes; a
symbolic dim takes its value from --dim NAME=N. --input NAME=DTYPE:SHAPE:SOURCE
gives one: DTYPE f32, i64, i32, u8, i8 or bool; SHAPE like 1x3x48x192 (empty
for a scalar); SOURCE "random", "zeros", a number (every element), or a
.npy file (whose dtype and shape must match). --input NAME=FILE.npy is short
for the file's own dtype and shape.

--ort also runs the same inputs through Python's onnxruntime (CPU provider,
intra-op threads --threads, inter-op 1) in a subprocess, alternating one
fennec run and one onnxruntime run so machine load affects both, and prints
the ratio of the medians; without python or onnxruntime it says so and
times fennec alone.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runModelBench(c, args[0], f) },
	}
	c.Flags().StringArrayVar(&f.inputs, "input", nil, "an input as NAME=DTYPE:SHAPE:SOURCE or NAME=FILE.npy (repeat for each)")
	c.Flags().StringArrayVar(&f.dims, "dim", nil, "a symbolic dimension's value as NAME=N (repeat for each)")
	c.Flags().IntVar(&f.runs, "runs", 50, "timed runs")
	c.Flags().IntVar(&f.warmup, "warmup", 5, "untimed runs first")
	c.Flags().IntVar(&f.threads, "threads", 1, "threads for fennec's kernels and onnxruntime's intra-op pool (0: all cores)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&f.ort, "ort", false, "also time onnxruntime (python3 -m onnxruntime), interleaved, and print the ratio")
	c.Flags().StringVar(&f.python, "python", "python3", "the Python interpreter --ort runs")
	return c
}

func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

func (f benchFlags) check() error {
	if f.runs < 1 || f.runs > maxBenchRuns {
		return usageErr("--runs %d: want 1 to %d", f.runs, maxBenchRuns)
	}
	if f.warmup < 0 || f.warmup > maxBenchRuns {
		return usageErr("--warmup %d: want 0 to %d", f.warmup, maxBenchRuns)
	}
	if f.threads < 0 || f.threads > 4096 {
		return usageErr("--threads %d: want 0 (all cores) to 4096", f.threads)
	}
	return nil
}

func parseDims(specs []string) (map[string]int, error) {
	dims := map[string]int{}
	for _, s := range specs {
		name, v, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, usageErr("--dim %q: want NAME=N", s)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, usageErr("--dim %q: %q is not a dimension (want an integer >= 0)", s, v)
		}
		if _, dup := dims[name]; dup {
			return nil, usageErr("--dim %q given twice", name)
		}
		dims[name] = n
	}
	return dims, nil
}

var benchDTypes = map[string]nn.DType{"f32": nn.Float32, "i64": nn.Int64, "i32": nn.Int32, "u8": nn.Uint8, "i8": nn.Int8, "bool": nn.Bool}

func parseShape(s string) ([]int, error) {
	if s == "" {
		return []int{}, nil
	}
	var shape []int
	for _, p := range strings.Split(s, "x") {
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("shape %q: dimension %q is not an integer >= 0", s, p)
		}
		shape = append(shape, d)
	}
	return shape, nil
}

// benchInput makes one --input: NAME=FILE.npy or NAME=DTYPE:SHAPE:SOURCE.
func benchInput(spec string, limit int, rng *rand.Rand) (string, *nn.Tensor, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || name == "" || rest == "" {
		return "", nil, usageErr("--input %q: want NAME=DTYPE:SHAPE:SOURCE or NAME=FILE.npy", spec)
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) == 1 {
		t, err := readNPYFile(rest)
		if err != nil {
			return "", nil, &exitError{exitBadInput, fmt.Errorf("--input %s: %w", name, err)}
		}
		return name, t, nil
	}
	if len(parts) != 3 {
		return "", nil, usageErr("--input %q: want NAME=DTYPE:SHAPE:SOURCE", spec)
	}
	dt, ok := benchDTypes[parts[0]]
	if !ok {
		return "", nil, usageErr("--input %q: dtype %q: want f32, i64, i32, u8, i8 or bool", spec, parts[0])
	}
	shape, err := parseShape(parts[1])
	if err != nil {
		return "", nil, usageErr("--input %q: %v", spec, err)
	}
	src := parts[2]
	if strings.HasSuffix(src, ".npy") {
		t, err := readNPYFile(src)
		if err != nil {
			return "", nil, &exitError{exitBadInput, fmt.Errorf("--input %s: %w", name, err)}
		}
		if t.DType != dt || !slices.Equal(t.Shape, shape) {
			return "", nil, &exitError{exitBadInput, fmt.Errorf("--input %s: %s holds %v, not %v%v", name, src, t, dt, shape)}
		}
		return name, t, nil
	}
	t, err := nn.New(dt, shape, limit)
	if err != nil {
		return "", nil, usageErr("--input %q: %v", spec, err)
	}
	switch src {
	case "random":
		fillRandom(t, rng)
	case "zeros":
	default:
		v, err := strconv.ParseFloat(src, 64)
		if err != nil {
			return "", nil, usageErr("--input %q: source %q: want random, zeros, a number or a .npy file", spec, src)
		}
		fill(t, v)
	}
	return name, t, nil
}

func fillRandom(t *nn.Tensor, rng *rand.Rand) {
	for i := range t.F32 {
		t.F32[i] = rng.Float32()*2 - 1
	}
	for i := range t.I64 {
		t.I64[i] = int64(rng.IntN(2))
	}
	for i := range t.I32 {
		t.I32[i] = int32(rng.IntN(2))
	}
	for i := range t.U8 {
		t.U8[i] = uint8(rng.IntN(2))
	}
}

func fill(t *nn.Tensor, v float64) {
	for i := range t.F32 {
		t.F32[i] = float32(v)
	}
	for i := range t.I64 {
		t.I64[i] = int64(v)
	}
	for i := range t.I32 {
		t.I32[i] = int32(v)
	}
	for i := range t.U8 {
		t.U8[i] = uint8(v)
	}
}

// declaredInput is a random tensor of a model input's declared shape, its
// symbolic dims taken from dims.
func declaredInput(vi onnx.ValueInfo, dims map[string]int, limit int, rng *rand.Rand) (*nn.Tensor, error) {
	if vi.NonTensor != "" {
		return nil, usageErr("input %q is a %s; this command makes tensors only", vi.Name, vi.NonTensor)
	}
	if !vi.HasShape {
		return nil, usageErr("input %q has no declared shape: give it with --input %s=DTYPE:SHAPE:random", vi.Name, vi.Name)
	}
	shape := make([]int, len(vi.Shape))
	for i, d := range vi.Shape {
		switch {
		case d.Param != "":
			v, ok := dims[d.Param]
			if !ok {
				return nil, usageErr("input %q: dim %d is symbolic (%q): give it with --dim %s=N", vi.Name, i, d.Param, d.Param)
			}
			shape[i] = v
		case d.Value < 0:
			return nil, usageErr("input %q: dim %d is unknown: give the input with --input %s=DTYPE:SHAPE:random", vi.Name, i, vi.Name)
		default:
			shape[i] = int(d.Value)
		}
	}
	known := false
	for _, d := range benchDTypes {
		known = known || d == vi.DType
	}
	if !known {
		return nil, usageErr("input %q: dtype %v: this command makes f32, i64, i32, u8, i8 and bool inputs", vi.Name, vi.DType)
	}
	t, err := nn.New(vi.DType, shape, limit)
	if err != nil {
		return nil, usageErr("input %q: %v", vi.Name, err)
	}
	fillRandom(t, rng)
	return t, nil
}

// summarize returns the median, p10 and p90 of ds (nearest rank).
func summarize(ds []time.Duration) latency {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(q float64) float64 {
		i := int(q*float64(len(s)-1) + 0.5)
		return float64(s[i]) / 1e6
	}
	med := ms(0.5)
	if len(s)%2 == 0 {
		med = float64(s[len(s)/2-1]+s[len(s)/2]) / 2e6
	}
	return latency{Runs: len(s), MedianMS: med, P10MS: ms(0.1), P90MS: ms(0.9)}
}

func runModelBench(c *cobra.Command, path string, f benchFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	dims, err := parseDims(f.dims)
	if err != nil {
		return err
	}
	opts := onnx.Options{}
	limit := 1 << 28 // onnx.Options' default MaxTensorElements
	rng := rand.New(rand.NewPCG(1, 2))
	feed := map[string]*nn.Tensor{}
	desc := map[string]string{}
	for _, spec := range f.inputs {
		name, t, err := benchInput(spec, limit, rng)
		if err != nil {
			return err
		}
		if _, dup := feed[name]; dup {
			return usageErr("--input %q given twice", name)
		}
		feed[name] = t
		desc[name] = t.String()
	}
	m, err := onnx.Load(path, opts)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &exitError{exitUsage, err}
		}
		return &exitError{exitBadInput, err}
	}
	declared := map[string]bool{}
	for _, vi := range m.Inputs() {
		declared[vi.Name] = true
		if _, ok := feed[vi.Name]; ok {
			continue
		}
		t, err := declaredInput(vi, dims, limit, rng)
		if err != nil {
			return err
		}
		feed[vi.Name] = t
		desc[vi.Name] = t.String() + " random"
	}
	for name := range feed {
		if !declared[name] {
			return usageErr("--input %q: the model has no such input", name)
		}
	}
	be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: f.threads})
	if err != nil {
		return usageErr("--threads: %v", err)
	}
	s, err := onnx.NewSession(m, be)
	if err != nil {
		return &exitError{exitBadInput, err}
	}
	defer s.Close()

	var ort *ortProc
	rep := modelBenchReport{Model: path, Threads: be.Threads(), Inputs: desc}
	if f.ort {
		ort, err = startORT(f.python, path, f.threads, feed)
		if err != nil {
			rep.ORTSkipped = err.Error()
			fmt.Fprintf(c.ErrOrStderr(), "onnxruntime: skipped: %v\n", err)
		} else {
			defer ort.close()
			rep.ORTVersion = ort.version
		}
	}
	one := func() (time.Duration, error) {
		t0 := time.Now()
		_, err := s.Run(feed)
		return time.Since(t0), err
	}
	for range f.warmup {
		if _, err := one(); err != nil {
			return &exitError{exitBadInput, err}
		}
		if ort != nil {
			if _, err := ort.run(); err != nil {
				return err
			}
		}
	}
	var ft, ot []time.Duration
	for range f.runs {
		d, err := one()
		if err != nil {
			return &exitError{exitBadInput, err}
		}
		ft = append(ft, d)
		if ort != nil {
			d, err := ort.run()
			if err != nil {
				return err
			}
			ot = append(ot, d)
		}
	}
	rep.Fennec = summarize(ft)
	if ort != nil {
		l := summarize(ot)
		rep.ORT = &l
		if l.MedianMS > 0 {
			rep.Ratio = rep.Fennec.MedianMS / l.MedianMS
		}
	}
	out := c.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	names := make([]string, 0, len(desc))
	for k := range desc {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "model\t%s\nthreads\t%d\n", path, rep.Threads)
	for _, n := range names {
		fmt.Fprintf(out, "input\t%s\t%s\n", n, desc[n])
	}
	pr := func(who string, l latency) {
		fmt.Fprintf(out, "%s\tmedian %.3f ms\tp10 %.3f ms\tp90 %.3f ms\t(%d runs)\n", who, l.MedianMS, l.P10MS, l.P90MS, l.Runs)
	}
	pr("fennec", rep.Fennec)
	if rep.ORT != nil {
		pr("onnxruntime "+rep.ORTVersion, *rep.ORT)
		fmt.Fprintf(out, "ratio\t%.3f (fennec / onnxruntime, medians, interleaved)\n", rep.Ratio)
	}
	return nil
}

// ortProc is a Python onnxruntime session in a subprocess: each "run" line
// on its stdin runs the model once and answers the run's nanoseconds, timed
// inside Python so the pipe's round trip is not counted.
type ortProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Scanner
	dir     string
	version string
}

func startORT(python, model string, threads int, feed map[string]*nn.Tensor) (*ortProc, error) {
	if _, err := exec.LookPath(python); err != nil {
		return nil, fmt.Errorf("%s not found (install python3 and pip install onnxruntime)", python)
	}
	dir, err := os.MkdirTemp("", "fennec-bench-")
	if err != nil {
		return nil, err
	}
	p := &ortProc{dir: dir}
	fail := func(err error) (*ortProc, error) { p.close(); return nil, err }
	script := filepath.Join(dir, "bench_ort.py")
	if err := os.WriteFile(script, []byte(ortBenchScript), 0o600); err != nil {
		return fail(err)
	}
	var names []string
	for name, t := range feed {
		f := filepath.Join(dir, fmt.Sprintf("input_%d.npy", len(names)))
		if err := writeNPYFile(f, t); err != nil {
			return fail(err)
		}
		names = append(names, name+"="+f)
	}
	args := append([]string{script, model, strconv.Itoa(threads)}, names...)
	p.cmd = exec.Command(python, args...)
	var stderr strings.Builder
	p.cmd.Stderr = &stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return fail(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	p.out = bufio.NewScanner(stdout)
	if err := p.cmd.Start(); err != nil {
		return fail(err)
	}
	// The first line is "ready VERSION" or "error MESSAGE".
	if !p.out.Scan() {
		p.in.Close()
		p.cmd.Wait()
		p.cmd = nil
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return fail(fmt.Errorf("%s exited before onnxruntime was ready: %s", python, msg))
	}
	line := p.out.Text()
	if v, ok := strings.CutPrefix(line, "ready "); ok {
		p.version = v
		return p, nil
	}
	return fail(fmt.Errorf("onnxruntime: %s", strings.TrimPrefix(line, "error ")))
}

func (p *ortProc) run() (time.Duration, error) {
	if _, err := io.WriteString(p.in, "run\n"); err != nil {
		return 0, fmt.Errorf("onnxruntime subprocess: %w", err)
	}
	if !p.out.Scan() {
		return 0, errors.New("onnxruntime subprocess exited")
	}
	line := p.out.Text()
	ns, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("onnxruntime: %s", strings.TrimPrefix(line, "error "))
	}
	return time.Duration(ns), nil
}

func (p *ortProc) close() {
	if p.cmd != nil {
		p.in.Close()
		p.cmd.Wait()
	}
	os.RemoveAll(p.dir)
}
