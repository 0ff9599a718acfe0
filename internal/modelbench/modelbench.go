// Package modelbench times an ONNX model on the CPU backend, optionally
// side by side with Python's onnxruntime in a subprocess, alternating one
// run of each so that machine load affects both (fennec model bench).
package modelbench

import (
	"bufio"
	_ "embed"
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
)

//go:embed ort.py
var ortBenchScript string

// MaxRuns bounds Config.Runs and Config.Warmup.
const MaxRuns = 1_000_000

// Config is one benchmark. The zero value of each field is its default.
type Config struct {
	// Model is the ONNX file timed.
	Model string
	// Inputs given as NAME=DTYPE:SHAPE:SOURCE or NAME=FILE.npy (DTYPE f32,
	// i64, i32, u8, i8 or bool; SHAPE like 1x3x48x192, empty for a scalar;
	// SOURCE random, zeros, a number or a .npy file). The others are random
	// of the model's declared shapes, a symbolic dim's value from Dims
	// (NAME=N).
	Inputs []string
	Dims   []string
	// Runs timed (50); Warmup untimed runs first (none).
	Runs   int
	Warmup int
	// Threads of fennec's kernels and onnxruntime's intra-op pool (0: all
	// cores).
	Threads int
	// ORT also times Python's onnxruntime with the interpreter Python
	// ("python3"); without it or without onnxruntime the report says why
	// (ORTSkipped), also on Log when set, and times fennec alone.
	ORT    bool
	Python string
	Log    io.Writer
}

// Kind says whose fault an Error is.
type Kind int

const (
	// Usage: the configuration is wrong (a bad spec, an input the model
	// lacks, a model file that does not exist).
	Usage Kind = iota + 1
	// BadInput: a model or an input file is malformed or does not fit.
	BadInput
	// Failure: the benchmark failed (the onnxruntime subprocess).
	Failure
)

// Error is Run's error.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Latency is a summary of timed runs, in milliseconds.
type Latency struct {
	Runs     int     `json:"runs"`
	MedianMS float64 `json:"median_ms"`
	P10MS    float64 `json:"p10_ms"`
	P90MS    float64 `json:"p90_ms"`
}

// Report is a benchmark's outcome.
type Report struct {
	Model   string `json:"model"`
	Threads int    `json:"threads"`
	// Inputs describes each input (dtype, shape, and "random" for those
	// made from the declared shapes).
	Inputs map[string]string `json:"inputs"`
	Fennec Latency           `json:"fennec"`
	// ORT is onnxruntime's latency on the same inputs, interleaved run by
	// run with fennec's; nil without Config.ORT or when it was skipped.
	ORT        *Latency `json:"onnxruntime,omitempty"`
	ORTVersion string   `json:"onnxruntime_version,omitempty"`
	ORTSkipped string   `json:"onnxruntime_skipped,omitempty"`
	// Ratio is fennec's median over onnxruntime's (below 1: fennec is faster).
	Ratio float64 `json:"ratio,omitempty"`
}

func usageErr(format string, a ...any) error {
	return &Error{Usage, fmt.Errorf(format, a...)}
}

func (c *Config) fill() error {
	if c.Runs == 0 {
		c.Runs = 50
	}
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.Runs < 1 || c.Runs > MaxRuns {
		return usageErr("--runs %d: want 1 to %d", c.Runs, MaxRuns)
	}
	if c.Warmup < 0 || c.Warmup > MaxRuns {
		return usageErr("--warmup %d: want 0 to %d", c.Warmup, MaxRuns)
	}
	if c.Threads < 0 || c.Threads > 4096 {
		return usageErr("--threads %d: want 0 (all cores) to 4096", c.Threads)
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
		t, err := nn.ReadNPYFile(rest)
		if err != nil {
			return "", nil, &Error{BadInput, fmt.Errorf("--input %s: %w", name, err)}
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
		t, err := nn.ReadNPYFile(src)
		if err != nil {
			return "", nil, &Error{BadInput, fmt.Errorf("--input %s: %w", name, err)}
		}
		if t.DType != dt || !slices.Equal(t.Shape, shape) {
			return "", nil, &Error{BadInput, fmt.Errorf("--input %s: %s holds %v, not %v%v", name, src, t, dt, shape)}
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
func summarize(ds []time.Duration) Latency {
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
	return Latency{Runs: len(s), MedianMS: med, P10MS: ms(0.1), P90MS: ms(0.9)}
}

// Run times cfg.Model: cfg.Warmup untimed runs, then cfg.Runs timed ones,
// each followed by one onnxruntime run with cfg.ORT. Errors are *Error,
// whose Kind says whose fault they are.
func Run(cfg Config) (Report, error) {
	if err := cfg.fill(); err != nil {
		return Report{}, err
	}
	dims, err := parseDims(cfg.Dims)
	if err != nil {
		return Report{}, err
	}
	path := cfg.Model
	opts := onnx.Options{}
	limit := 1 << 28 // onnx.Options' default MaxTensorElements
	rng := rand.New(rand.NewPCG(1, 2))
	feed := map[string]*nn.Tensor{}
	desc := map[string]string{}
	for _, spec := range cfg.Inputs {
		name, t, err := benchInput(spec, limit, rng)
		if err != nil {
			return Report{}, err
		}
		if _, dup := feed[name]; dup {
			return Report{}, usageErr("--input %q given twice", name)
		}
		feed[name] = t
		desc[name] = t.String()
	}
	m, err := onnx.Load(path, opts)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Report{}, &Error{Usage, err}
		}
		return Report{}, &Error{BadInput, err}
	}
	declared := map[string]bool{}
	for _, vi := range m.Inputs() {
		declared[vi.Name] = true
		if _, ok := feed[vi.Name]; ok {
			continue
		}
		t, err := declaredInput(vi, dims, limit, rng)
		if err != nil {
			return Report{}, err
		}
		feed[vi.Name] = t
		desc[vi.Name] = t.String() + " random"
	}
	for name := range feed {
		if !declared[name] {
			return Report{}, usageErr("--input %q: the model has no such input", name)
		}
	}
	be, err := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: cfg.Threads})
	if err != nil {
		return Report{}, usageErr("--threads: %v", err)
	}
	s, err := onnx.NewSession(m, be)
	if err != nil {
		return Report{}, &Error{BadInput, err}
	}
	defer s.Close()

	var ort *ortProc
	rep := Report{Model: path, Threads: be.Threads(), Inputs: desc}
	if cfg.ORT {
		ort, err = startORT(cfg.Python, path, cfg.Threads, feed)
		if err != nil {
			rep.ORTSkipped = err.Error()
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "onnxruntime: skipped: %v\n", err)
			}
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
	for range cfg.Warmup {
		if _, err := one(); err != nil {
			return Report{}, &Error{BadInput, err}
		}
		if ort != nil {
			if _, err := ort.run(); err != nil {
				return Report{}, &Error{Failure, err}
			}
		}
	}
	var ft, ot []time.Duration
	for range cfg.Runs {
		d, err := one()
		if err != nil {
			return Report{}, &Error{BadInput, err}
		}
		ft = append(ft, d)
		if ort != nil {
			d, err := ort.run()
			if err != nil {
				return Report{}, &Error{Failure, err}
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
	return rep, nil
}

// WriteText writes the report as tab-separated lines: the model, threads,
// each input, each engine's latency and the ratio.
func (rep Report) WriteText(out io.Writer) {
	names := make([]string, 0, len(rep.Inputs))
	for k := range rep.Inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "model\t%s\nthreads\t%d\n", rep.Model, rep.Threads)
	for _, n := range names {
		fmt.Fprintf(out, "input\t%s\t%s\n", n, rep.Inputs[n])
	}
	pr := func(who string, l Latency) {
		fmt.Fprintf(out, "%s\tmedian %.3f ms\tp10 %.3f ms\tp90 %.3f ms\t(%d runs)\n", who, l.MedianMS, l.P10MS, l.P90MS, l.Runs)
	}
	pr("fennec", rep.Fennec)
	if rep.ORT != nil {
		pr("onnxruntime "+rep.ORTVersion, *rep.ORT)
		fmt.Fprintf(out, "ratio\t%.3f (fennec / onnxruntime, medians, interleaved)\n", rep.Ratio)
	}
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
		if err := nn.WriteNPYFile(f, t); err != nil {
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
