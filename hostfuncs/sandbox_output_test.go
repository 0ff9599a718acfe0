package hostfuncs_test

import (
	"bytes"
	"log/slog"
	"math"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
)

// allocated returns the bytes the process allocated while f ran (all
// goroutines; the tests here run nothing else meanwhile).
func allocated(f func()) uint64 {
	var a, b goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&a)
	f()
	goruntime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestCoreRangesCheckedWhole: fail and log keep at most 4 KiB, but the
// whole (ptr, len) range must lie in guest memory; a length of 2^31-1 was
// accepted (truncated first, checked after).
func TestCoreRangesCheckedWhole(t *testing.T) {
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", Logger: slog.New(slog.DiscardHandler)})
	e.host.Begin(nil, hostfuncs.CallInfo{})
	defer e.host.End()
	for _, n := range []int32{math.MaxInt32, 1 << 24, -1, math.MinInt32} {
		if got := e.call("fennec_fail", 0, u(n)); got != int32(hostfuncs.EMEM) {
			t.Errorf("fail(0, %d) = %d, want EMEM (%s)", n, got, e.host.LastError())
		}
		if got := e.call("fennec_log", 0, 0, u(n)); got != int32(hostfuncs.EMEM) {
			t.Errorf("log(0, 0, %d) = %d, want EMEM (%s)", n, got, e.host.LastError())
		}
		if got := e.call("fennec_output", 0, u(n)); got >= 0 {
			t.Errorf("output(0, %d) = %d, want an error", n, got)
		}
	}
	// A range that starts inside memory and runs past its end.
	size := e.mod.Memory().Size()
	if got := e.call("fennec_log", 0, u(int32(size-16)), 32); got != int32(hostfuncs.EMEM) {
		t.Errorf("log across the end of memory = %d, want EMEM", got)
	}
	// In range and long: kept, cut to 4 KiB, marked.
	e.put(dataAt, bytes.Repeat([]byte("x"), 5000))
	if got := e.call("fennec_fail", dataAt, 5000); got != 0 {
		t.Fatalf("fail of 5000 bytes = %d (%s)", got, e.host.LastError())
	}
	if _, msg := e.host.End(); len(msg) > 4200 || !strings.Contains(msg, "truncated") {
		t.Errorf("fail message of 5000 bytes kept as %d bytes: %.60q...", len(msg), msg)
	}
}

// TestInt8CacheCountedAgainstQuota: matmul_i8 caches its kernel layout of
// the weights on the host. That cache was neither counted nor bounded:
// weights [1, n] were padded to 64 rows and took 68 bytes per weight byte.
func TestInt8CacheCountedAgainstQuota(t *testing.T) {
	const n = 1 << 20 // 1 MiB of i8 weights [1, n]
	mk := func(quota int64) (*env, int32, int32, int32) {
		e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: quota})
		w := e.newI8([]int32{1, n})
		x := e.newF32([]int32{1, 1}, 1)
		s := e.newF32([]int32{1}, 1)
		return e, w, x, s
	}
	// Enough quota for the inputs, the output and the cache (n bytes).
	e, w, x, s := mk(5<<20 + 16 + n + 64)
	_, before := e.host.Stats()
	var h int32
	grew := allocated(func() { h = e.call("fennec_tensor_matmul_i8", u(x), u(w), u(s), 0) })
	if h <= 0 {
		t.Fatalf("matmul_i8 within quota = %d (%s)", h, e.host.LastError())
	}
	_, after := e.host.Stats()
	if after-before != 4*n+n {
		t.Errorf("matmul_i8 counted %d bytes, want the output (%d) and the cache (%d)", after-before, 4*n, n)
	}
	if grew > 4*n+n+1<<20 {
		t.Errorf("matmul_i8 of 1 MiB of weights allocated %d bytes (quota counts %d)", grew, after-before)
	}
	// Freeing the weights returns the cache's quota.
	e.call("fennec_tensor_free", u(w))
	if _, b := e.host.Stats(); b != after-n-n {
		t.Errorf("after freeing the weights %d bytes counted, want %d", b, after-n-n)
	}

	// Quota for the inputs and the output but not the cache: EQUOTA, and
	// the fresh output is released again.
	e, w, x, s = mk(5<<20 + 16 + 64)
	_, before = e.host.Stats()
	if got := e.call("fennec_tensor_matmul_i8", u(x), u(w), u(s), 0); got != int32(hostfuncs.EQUOTA) {
		t.Fatalf("matmul_i8 whose cache exceeds the quota = %d (%s), want EQUOTA", got, e.host.LastError())
	}
	if hs, b := e.host.Stats(); b != before || hs != 3 {
		t.Errorf("after the refused call: %d handles, %d bytes (before: 3, %d)", hs, b, before)
	}
}

// TestHESizeQueryAllocatesNothing: he_encrypt's size query encrypted zeros
// of the guest's length (the message length depends only on it), so one
// query of a large tensor cost many times its size in host memory.
func TestHESizeQueryAllocatesNothing(t *testing.T) {
	f := newHEFixture(t, 2)
	dev, err := hostfuncs.NewHEDevice(f.parties[0], f.setup)
	if err != nil {
		t.Fatal(err)
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{HE: dev}, "-")
	e.put(shapeAt, wasmtest.LE32(1<<22))
	h := e.call("fennec_tensor_new", 1, shapeAt, 1, 0, 0) // 4M values, 16 MiB
	if h <= 0 {
		t.Fatal(e.host.LastError())
	}
	var size int32
	grew := allocated(func() { size = e.call("fennec_privacy_he_encrypt", u(h), 0, 0) })
	if size <= 0 {
		t.Fatalf("size query = %d (%s)", size, e.host.LastError())
	}
	if grew > 64<<10 {
		t.Errorf("he_encrypt's size query for a message of %d bytes allocated %d bytes", size, grew)
	}
}

// TestHEEncryptScratchCounted: encryption copies the tensor and holds a
// ciphertext's scratch on the host; both count against the quota first.
func TestHEEncryptScratchCounted(t *testing.T) {
	f := newHEFixture(t, 2)
	dev, err := hostfuncs.NewHEDevice(f.parties[0], f.setup)
	if err != nil {
		t.Fatal(err)
	}
	const quota = 256 << 10
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: quota, Services: &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{HE: dev}}})
	const msgAt = 64 << 10
	encrypt := func(n int32) int32 {
		e.put(shapeAt, wasmtest.LE32(n))
		h := e.call("fennec_tensor_new", 1, shapeAt, 1, 0, 0)
		if h <= 0 {
			t.Fatal(e.host.LastError())
		}
		defer e.call("fennec_tensor_free", u(h))
		size := e.call("fennec_privacy_he_encrypt", u(h), 0, 0)
		if need := msgAt + uint32(size); size > 0 && need > e.mod.Memory().Size() {
			e.mod.Memory().Grow((need - e.mod.Memory().Size() + 65535) / 65536)
		}
		if size <= 0 || msgAt+uint32(size) > e.mod.Memory().Size() {
			t.Fatalf("size query for %d values = %d (%s)", n, size, e.host.LastError())
		}
		return e.call("fennec_privacy_he_encrypt", u(h), msgAt, u(size))
	}
	if got := encrypt(16 << 10); got <= 0 { // 64 KiB tensor, its copy and the scratch fit
		t.Fatalf("he_encrypt of 64 KiB under a 256 KiB quota = %d (%s)", got, e.host.LastError())
	}
	if got := encrypt(48 << 10); got != int32(hostfuncs.EQUOTA) { // 192 KiB tensor: its copy does not fit
		t.Fatalf("he_encrypt of 192 KiB under a 256 KiB quota = %d (%s), want EQUOTA", got, e.host.LastError())
	}
	if _, b := e.host.Stats(); b != 0 {
		t.Fatalf("%d bytes still counted after the calls", b)
	}
}

// countingLog counts the records of a text slog handler.
type countingLog struct {
	mu    sync.Mutex
	bytes int
	lines []string
}

func (c *countingLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes += len(p)
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

func (c *countingLog) count(sub string) (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// TestLogFloodIsRateLimited: a guest calling fennec.log in a loop wrote to
// the host log without limit. Now one bucket of lines and bytes per
// instance bounds it, the drops are counted and said once per window.
func TestLogFloodIsRateLimited(t *testing.T) {
	logs := &countingLog{}
	lim := hostfuncs.OutputLimits{LinesPerSecond: 50, BurstLines: 100, BytesPerSecond: 50 << 10, BurstBytes: 64 << 10, Window: 50 * time.Millisecond}
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "flood", Output: lim,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	msg := bytes.Repeat([]byte("y"), 200)
	e.put(dataAt, msg)
	e.host.Begin(nil, hostfuncs.CallInfo{})
	start := time.Now()
	const calls = 20000
	for range calls {
		if got := e.call("fennec_log", 0, dataAt, u(int32(len(msg)))); got != 0 {
			t.Fatalf("log = %d (%s)", got, e.host.LastError())
		}
	}
	elapsed := time.Since(start)
	e.host.End() // reports what the last window dropped
	kept := logs.count("source=guest")
	bound := lim.BurstLines + int(lim.LinesPerSecond*elapsed.Seconds()) + 1
	if kept > bound {
		t.Fatalf("%d of %d guest records reached the host log in %v; the limit allows %d", kept, calls, elapsed, bound)
	}
	st := e.host.OutputStats()
	if st.Lines != int64(kept) || st.Lines+st.DroppedLines != calls || st.DroppedBytes != int64(len(msg))*st.DroppedLines {
		t.Fatalf("stats %+v for %d records kept of %d", st, kept, calls)
	}
	// The drops are reported in a few records (one per window), not one per line,
	// and the reports add up to the count.
	reports := logs.count("log lines dropped")
	maxReports := int(elapsed/lim.Window) + 2
	if reports == 0 || reports > maxReports {
		t.Fatalf("%d drop reports in %v (at most %d expected)", reports, elapsed, maxReports)
	}
	var sum int64
	for _, l := range logs.lines {
		if i := strings.Index(l, "dropped_lines="); i >= 0 {
			var n int64
			for _, c := range l[i+len("dropped_lines="):] {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int64(c-'0')
			}
			sum += n
		}
	}
	if sum != st.DroppedLines {
		t.Fatalf("drop reports add up to %d, the instance dropped %d", sum, st.DroppedLines)
	}
	if logs.bytes > 512<<10 {
		t.Fatalf("the host log grew by %d bytes", logs.bytes)
	}
}

// TestKernelScratchNotGuestSized: kl_distill kept two float64 rows of the
// guest's class count (4x the logits) and quant_scales a copy of the
// scales; both now compute in place.
func TestKernelScratchNotGuestSized(t *testing.T) {
	const n = 1 << 22 // 16 MiB of f32 logits [1, n]
	e := newEnv(t, hostfuncs.InstanceConfig{Module: "t", MaxTensorBytes: 64 << 20})
	st := e.newF32([]int32{1, n})
	te := e.newF32([]int32{1, n})
	var got int32
	if grew := allocated(func() { got = e.call("fennec_tensor_kl_distill", u(st), u(te), fa(2), 0, u(-1)) }); got != 0 || grew > 1<<20 {
		t.Errorf("kl_distill of [1, %d] = %d (%s), allocated %d bytes", n, got, e.host.LastError(), grew)
	}
	if grew := allocated(func() { got = e.call("fennec_tensor_quant_scales", u(st), 1, 1, 0) }); got <= 0 || grew > 4*n+1<<20 {
		t.Errorf("per-channel quant_scales of [1, %d] = %d (%s), allocated %d bytes for a result of %d", n, got, e.host.LastError(), grew, 4*n)
	}
}

// TestHEAddRefusesOversizeUndecoded: he_add copied the guest's message
// (any length) and then decoded it; a message longer than the round's is
// now refused before either.
func TestHEAddRefusesOversizeUndecoded(t *testing.T) {
	fx := newHEFixture(t, 2)
	hub, err := hostfuncs.NewHEAggregation(fx.agg, fx.setup, &localDecryptors{parties: fx.parties})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.StartRound(8); err != nil {
		t.Fatal(err)
	}
	e := privacyEnv(t, &hostfuncs.PrivacyServices{HEHub: hub}, "-")
	const n = 2 << 20
	e.mod.Memory().Grow(n / 65536)
	msg := bytes.Repeat([]byte{0x5a}, n) // a CBOR byte string head, then junk
	msg[0] = 0x5a
	e.put(dataAt, msg)
	var got int32
	grew := allocated(func() { got = e.call("fennec_privacy_he_add", dataAt, u(n)) })
	if got != int32(hostfuncs.EINVAL) || !strings.Contains(e.host.LastError(), "at most") {
		t.Fatalf("he_add of %d bytes = %d (%s)", n, got, e.host.LastError())
	}
	if grew > 64<<10 {
		t.Fatalf("he_add of a %d-byte message refused after allocating %d bytes", n, grew)
	}
	valid, err := fx.parties[0].Encrypt(make([]float32, 8))
	if err != nil {
		t.Fatal(err)
	}
	e.put(dataAt, valid)
	if got := e.call("fennec_privacy_he_add", dataAt, u(int32(len(valid)))); got != 1 {
		t.Fatalf("he_add of a valid message = %d (%s)", got, e.host.LastError())
	}
}
