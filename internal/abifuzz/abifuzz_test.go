package abifuzz

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// One harness per process: compiling the engine's host modules and the HE
// setup is the slow part, and the fuzzing engine calls the target many
// times in each worker process.
var (
	harnessOnce sync.Once
	harness     *Harness
	harnessErr  error
)

func sharedHarness(t testing.TB) *Harness {
	t.Helper()
	harnessOnce.Do(func() { harness, harnessErr = New(Config{}) })
	if harnessErr != nil {
		t.Fatal(harnessErr)
	}
	return harness
}

func TestMain(m *testing.M) {
	code := m.Run()
	if harness != nil {
		harness.Close()
	}
	os.Exit(code)
}

// Seed encoding: a header and 8-byte operations (see Generate).
const (
	cCall, cNew, cStore, cRepeat, cLoop, cGrow, cSpin, cHE, cSet = 0, 6, 8, 10, 11, 12, 13, 14, 15
)

func op(code byte, args ...byte) []byte {
	b := make([]byte, opBytes)
	b[0] = code
	copy(b[1:], args)
	return b
}

func prog(header [4]byte, ops ...[]byte) []byte {
	b := header[:]
	for _, o := range ops {
		b = append(b, o...)
	}
	return b
}

// Argument selectors (i32Arg).
func reg(r int) byte       { return byte(r) }
func small(v int) byte     { return 1<<5 | byte(v+8) }
func konst(v int32) byte   { return 2<<5 | byte(index(i32Table, v)) }
func ptr(k int) byte       { return 3<<5 | byte(k) } // k*256
func atEnd(d int) byte     { return 4<<5 | byte(d/4) }
func forged(r, k int) byte { return 5<<5 | byte(k*8+r) }
func f64(v float64) byte   { return byte(index(f64Table, v)) }
func f32(v float32) byte   { return byte(index(f32Table, v)) }

func index[T comparable](tab []T, v T) int {
	for i, x := range tab {
		if x == v {
			return i
		}
	}
	panic("abifuzz test: value not in table")
}

func fn(module, name string) byte { return byte(funcIndex(module, name)) }

func core(name string) byte   { return fn(hostfuncs.ModuleCore, name) }
func tensor(name string) byte { return fn(hostfuncs.ModuleTensor, name) }
func priv(name string) byte   { return fn(hostfuncs.ModulePrivacy, name) }

func dim(d int32) byte { return byte(index(dimTable, d)) }

// seeds are programs that reach deep into each group with well-formed
// calls, plus the classic hostile arguments. On a correct host each runs
// clean; they start the fuzzer off past the argument checks.
func seeds() map[string][]byte {
	const drop = 0x80
	return map[string][]byte{
		"core": prog([4]byte{0, 0, 3, 7},
			op(cCall, core("abi_version"), 0),
			op(cCall, core("input"), 1, ptr(4), 7<<5),  // input(@1024, in_len)
			op(cCall, core("output"), 2, ptr(4), 7<<5), // output(@1024, in_len)
			op(cCall, core("log"), drop, small(0), ptr(4), small(5)),
			op(cCall, core("last_error"), 3, ptr(8), konst(64)),
			op(cCall, core("fail"), drop, atEnd(4), konst(math.MaxInt32)),
			op(cCall, core("log"), drop, small(4), ptr(1), konst(-1)),
			op(cCall, core("output"), drop, konst(-16), konst(64)),
		),
		"tensor": prog([4]byte{0x10, 0, 0, 0},
			op(cStore, 0, 6, 1, f32(0.5)), // 64 words of 0.5 at dataAt
			op(cNew, 0, 0x80, 2, dim(8), dim(8)),
			op(cNew, 1, 0, 2, dim(8), dim(4)),
			op(cCall, tensor("matmul"), 2, reg(0), reg(1), small(0), small(0)),
			op(cCall, tensor("softmax"), 3, reg(2), small(-1), small(1), small(0)),
			op(cCall, tensor("reduce"), 4, small(2), reg(3), small(0), small(1), small(0)),
			op(cCall, tensor("unary"), drop, small(10), reg(0), f32(2), reg(0)),
			op(cCall, tensor("binary"), 5, small(3), reg(0), reg(0), small(0)),
			op(cCall, tensor("argmax"), 6, reg(5), small(1), small(0)),
			op(cCall, tensor("loss"), 7, small(1), reg(0), reg(5), ptr(0), small(0)),
			op(cCall, tensor("shape"), drop, reg(2), ptr(2), small(8)),
			op(cCall, tensor("read"), drop, reg(2), 6<<5|2, konst(4096)),
			op(cCall, tensor("reshape"), drop, reg(1), ptr(1), small(2)),
			op(cCall, tensor("free"), drop, forged(0, 2)),
			op(cCall, tensor("free"), drop, reg(7)),
			op(cCall, tensor("dtype"), drop, reg(7)),
		),
		"compress": prog([4]byte{0, 0, 0, 0},
			op(cStore, 0, 7, 1, f32(-3)),
			op(cNew, 0, 0x80, 2, dim(16), dim(16)),
			op(cCall, tensor("quant_scales"), 1, reg(0), small(1), small(1), small(0)),
			op(cCall, tensor("quantize"), 2, reg(0), reg(1), small(1), small(0)),
			op(cCall, tensor("dequantize"), 3, reg(2), reg(1), small(1), small(0)),
			op(cCall, tensor("matmul_i8"), 4, reg(0), reg(2), reg(1), small(0)),
			op(cCall, tensor("matmul_i8"), drop, reg(0), reg(2), reg(1), reg(4)),
			op(cCall, tensor("kl_distill"), 5, reg(0), reg(3), f32(2), ptr(0), small(0)),
		),
		// Near the int8 kernel layout's size: w i8 [4, 65536] packs to 64
		// bytes per output column.
		"compress-wide": prog([4]byte{0, 0, 0, 0},
			op(cNew, 0, 1, 2, dim(4), dim(65536)),
			op(cNew, 1, 0, 2, dim(1), dim(4)),
			op(cNew, 2, 0, 1, dim(1)),
			op(cCall, tensor("matmul_i8"), 3, reg(1), reg(0), reg(2), small(0)),
		),
		// 66 back-to-back matmuls in straight-line code, well within the
		// deadline at this size.
		"matmuls": prog([4]byte{0, 0, 0, 0},
			op(cNew, 0, 0, 2, dim(256), dim(256)),
			op(cCall, tensor("matmul"), 1, reg(0), reg(0), small(2), small(0)),
			op(cCall, tensor("free"), drop, reg(1)),
			op(cRepeat, 31, 1), // 33 times
			op(cRepeat, 0, 0),  // 2 times
		),
		"dp": prog([4]byte{0, 0, 0, 0},
			op(cStore, 0, 4, 1, f32(3)),
			op(cNew, 0, 0x80, 1, dim(8)),
			op(cCall, priv("dp_clip"), drop, reg(0), f64(1), ptr(0)),
			op(cCall, priv("dp_gaussian"), 1, reg(0), f64(1), f64(1.5), f64(1), small(0)),
			op(cCall, priv("dp_gaussian"), 2, reg(0), f64(1), f64(1.5), f64(0.1), small(0)),
			op(cCall, priv("dp_gaussian_eps"), 3, reg(0), f64(1), f64(1), f64(1e-5), small(0)),
			op(cCall, priv("dp_laplace"), 4, reg(0), f64(2), f64(0.5), reg(0)),
			op(cCall, priv("dp_remaining"), drop, ptr(1)),
			op(cCall, priv("dp_remaining"), drop, atEnd(8)),
		),
		// A patient-level DP-SGD run: i32 [8] groups (one unit), three
		// charged steps; a step with forged parameter handles.
		"dpsgd": prog([4]byte{0, 0, 0, 0},
			op(cNew, 0, 2, 1, dim(8)),
			op(cCall, priv("dp_sgd_begin"), 1, reg(0), f64(1), f64(1.5), f64(0.5), small(3)),
			op(cNew, 2, 0, 1, dim(8)),
			op(cCall, priv("dp_sgd_step"), drop, ptr(0), small(2), reg(2), reg(2), ptr(1)),
			op(cCall, priv("dp_sgd_begin"), drop, reg(0), f64(1), f64(1.5), f64(0.5), konst(math.MaxInt32)),
		),
		"dp-tiny": prog([4]byte{1, 0, 0, 0},
			op(cNew, 0, 0, 1, dim(4)),
			op(cCall, priv("dp_laplace"), drop, reg(0), f64(1), f64(0.5), small(0)), // runs out of budget
			op(cRepeat, 3, 0),
			op(cCall, priv("dp_remaining"), drop, ptr(1)),
		),
		"he": prog([4]byte{0x1c, 6, 0, 0}, // round of 3 values, a peer's update in it
			op(cStore, 0, 2, 1, f32(0.5)),
			op(cNew, 0, 0x80, 1, dim(3)),
			op(cHE, 0, 3, 1), // encrypt r0 into 64 KiB and add it
			op(cCall, priv("he_decrypt_aggregate"), 2, small(0)),
			op(cCall, priv("he_encrypt"), drop, reg(0), ptr(0), small(0)), // size query
		),
		"memory": prog([4]byte{0, 0, 0, 0},
			op(cGrow, 0, 0),
			op(cGrow, 3, 1),
			op(cGrow, 10, 2),
			op(cGrow, 8, 3),
			op(cCall, tensor("read"), drop, reg(7), atEnd(4), konst(16)),
			op(cStore, 5, 9, 0, 1, 2, 3, 4),
		),
		"loops": prog([4]byte{0, 0, 0, 0},
			op(cNew, 0, 0, 2, dim(32), dim(32)),
			op(cCall, tensor("matmul"), 1, reg(0), reg(0), small(0), small(0)),
			op(cCall, tensor("free"), drop, reg(1)),
			op(cLoop, 3, 1),
			op(cSpin, 1),
		),
		"deadline": prog([4]byte{0, 0, 0, 0},
			op(cSpin, 7), // runs into the deadline: stopped by the termination checks
		),
	}
}

// FuzzABI is the guest-driven fuzzer of the whole host ABI. Under plain
// go test it runs the seeds (and testdata/fuzz/FuzzABI); fuzz it with
//
//	go test -run '^$' -fuzz FuzzABI -fuzztime 10m ./internal/abifuzz
//
// or scripts/abifuzz.sh.
func FuzzABI(f *testing.F) {
	ss := seeds()
	for _, name := range slices.Sorted(maps.Keys(ss)) {
		f.Add(ss[name])
	}
	ignore := ignored()
	f.Fuzz(func(t *testing.T, data []byte) {
		h := sharedHarness(t)
		p := Generate(data)
		for _, s := range ignore {
			if s, ok := strings.CutPrefix(s, "prog:"); ok && strings.Contains(p.String(), s) {
				t.Skipf("known: the program contains %q", s) // before running: it may hang
			}
		}
		res, err := h.RunProgram(p)
		count(res.Outcome, err)
		if err != nil {
			if v, ok := err.(*Violation); ok {
				for _, s := range ignore {
					in := v.Kind + ": " + v.Msg
					if p, ok := strings.CutPrefix(s, "prog:"); ok {
						s, in = p, v.Program.String()
					}
					if strings.Contains(in, s) {
						t.Skipf("known: %s: %s", v.Kind, v.Msg)
					}
				}
			}
			t.Fatal(err)
		}
	})
}

// Executions of this process, by outcome, written every second to
// $FENNEC_ABIFUZZ_STATS/abifuzz.PID when that is set (scripts/abifuzz.sh
// sums the workers' files: the fuzzing engine's own count lags).
var (
	stats     = map[string]int64{}
	statsNext time.Time
)

func count(o Outcome, err error) {
	dir := os.Getenv("FENNEC_ABIFUZZ_STATS")
	if dir == "" {
		return
	}
	stats["execs"]++
	if err != nil {
		stats["violations"]++
		if f, ferr := os.OpenFile(filepath.Join(dir, fmt.Sprintf("violations.%d", os.Getpid())), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
			fmt.Fprintf(f, "%v\n", err)
			f.Close()
		}
	} else {
		stats[string(o)]++
	}
	if now := time.Now(); now.After(statsNext) {
		statsNext = now.Add(time.Second)
		var b strings.Builder
		for _, k := range []string{"execs", "ok", "trap", "deadline", "violations"} {
			fmt.Fprintf(&b, "%s %d\n", k, stats[k])
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("abifuzz.%d", os.Getpid())), []byte(b.String()), 0o644)
	}
}

// ignored returns the findings to pass over while exploring past bugs
// already known: FENNEC_ABIFUZZ_IGNORE is a ';'-separated list of strings
// matched against "kind: message" of a violation, or, with a "prog:"
// prefix, against the program's listing before it runs (the only way past
// a known hang, whose call never returns).
func ignored() []string {
	var out []string
	for _, s := range strings.Split(os.Getenv("FENNEC_ABIFUZZ_IGNORE"), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// TestSeedsReachTheHost checks that the seeds do what they are for: their
// host calls succeed (so the fuzzer starts past the argument checks) and
// the deadline seed is stopped by the deadline. Strict generation makes
// each call whose result the seed keeps in a register check its success;
// calls that drop their result are the hostile ones.
func TestSeedsReachTheHost(t *testing.T) {
	h := sharedHarness(t)
	want := map[string][]Outcome{
		"deadline": {Deadline},
		// 66 matmuls take about 60 ms, but several times that on a
		// loaded machine or under -race: either outcome shows the calls
		// ran (a failed one would be a contract violation here).
		"matmuls": {OK, Deadline},
	}
	for name, s := range seeds() {
		res, err := h.RunProgram(generate(s, true))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w := want[name]
		if w == nil {
			w = []Outcome{OK}
		}
		if !slices.Contains(w, res.Outcome) {
			t.Errorf("%s: outcome %s, want %v", name, res.Outcome, w)
		}
	}
}

// TestGeneratedModulesCompile: whatever the bytes, the generator's module
// is valid and passes the engine's checks (a generator bug would otherwise
// hide behind "the fuzzer finds nothing").
func TestGeneratedModulesCompile(t *testing.T) {
	h := sharedHarness(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		data := make([]byte, r.IntN(400))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		p := Generate(data)
		mod, err := h.eng.Compile(context.Background(), p.Wasm, h.man)
		if err != nil {
			t.Fatalf("input %d (%x): %v\n%s", i, data, err, p)
		}
		mod.Close(context.Background())
	}
}

// TestContractChecksFire: the guest's own contract checks report a broken
// contract as an entrypoint status that Run turns into a
// "contract" violation. A guest cannot make a correct host break one on
// purpose, so this program takes the violation path itself.
func TestContractChecksFire(t *testing.T) {
	h := sharedHarness(t)
	mod, err := h.eng.Compile(context.Background(), violationModule(), h.man)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(context.Background())
	_, err = mod.Call(context.Background(), "run", nil)
	ce, ok := err.(*runtime.CallError)
	if !ok || ce.Kind != runtime.ErrGuest || !IsViolation(ce.Status) || DescribeViolation(ce.Status) != "self-test" {
		t.Fatalf("violation module: %v", err)
	}
}

func violationModule() []byte {
	return encodeModule(1, append(violation(kindSelfTest, 0), wasmtest.I32Const(0)...))
}
