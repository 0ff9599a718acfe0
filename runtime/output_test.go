package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// floodModule writes, in a loop of count iterations, the line at offset 16
// of memory (len bytes) to fd (WASI fd_write), then returns 0.
func floodModule(fd int32, line string, count int32) []byte {
	fdWrite := wasmtest.Import{Module: "wasi_snapshot_preview1", Name: "fd_write",
		Sig: wasmtest.Sig{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I32}}}
	// memory: [0]=iov{ptr 16, len}, [8]=nwritten, [16..]=line (written by
	// the body with i32.store8, one byte at a time, at start).
	var body []byte
	store := func(off int32, v int32) { // i32.store at off
		body = append(body, wasmtest.I32Const(off)...)
		body = append(body, wasmtest.I32Const(v)...)
		body = append(body, 0x36, 0x02, 0x00)
	}
	store(0, 16)
	store(4, int32(len(line)))
	for i := 0; i < len(line); i++ {
		body = append(body, wasmtest.I32Const(int32(16+i))...)
		body = append(body, wasmtest.I32Const(int32(line[i]))...)
		body = append(body, 0x3a, 0x00, 0x00) // i32.store8
	}
	body = append(body, wasmtest.I32Const(count)...)
	body = append(body, 0x21, 0x01) // local.set 1
	body = append(body, wasmtest.OpLoop, 0x40)
	body = append(body, wasmtest.I32Const(fd)...)
	body = append(body, wasmtest.I32Const(0)...)
	body = append(body, wasmtest.I32Const(1)...)
	body = append(body, wasmtest.I32Const(8)...)
	body = append(body, wasmtest.Call(0)...)
	body = append(body, wasmtest.OpDrop)
	body = append(body, wasmtest.LocalGet(1)...)
	body = append(body, wasmtest.I32Const(1)...)
	body = append(body, 0x6b)           // i32.sub
	body = append(body, 0x22, 0x01)     // local.tee 1
	body = append(body, 0x0d, 0x00)     // br_if 0
	body = append(body, wasmtest.OpEnd) // loop
	body = append(body, wasmtest.I32Const(0)...)
	m := wasmtest.Module{Imports: []wasmtest.Import{fdWrite}, MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: wasmtest.Sig{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Locals: []byte{wasmtest.I32}, Body: body, Export: "flood"},
	}}
	return m.Encode()
}

// TestStdoutFloodIsRateLimited: guest stdout and stderr went to the host
// log line by line without limit (hundreds of MiB a second). They now share
// the instance's rate limit with fennec.log; the drops are reported.
func TestStdoutFloodIsRateLimited(t *testing.T) {
	for _, c := range []struct {
		fd     int32
		stream string
	}{{1, "stdout"}, {2, "stderr"}} {
		eng, logs := newEngine(t, runtime.Config{})
		man := manifest(t, "name = \"flood\"\nversion = \"0.1.0\"\nentrypoints = [\"flood\"]\n[limits]\ncall_timeout = \"10s\"\n")
		line := strings.Repeat("z", 100) + "\n"
		const count = 100000
		mod, err := eng.Compile(context.Background(), floodModule(c.fd, line, count), man)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := mod.Call(context.Background(), "flood", nil); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		out := logs.String()
		kept := strings.Count(out, "stream="+c.stream)
		bound := 1000 + int(100*elapsed.Seconds()) + 1 // hostfuncs' default burst and rate
		if kept > bound || kept == 0 {
			t.Fatalf("%s: %d of %d lines reached the host log in %v (limit %d)", c.stream, kept, count, elapsed, bound)
		}
		if !strings.Contains(out, "log lines dropped") || !strings.Contains(out, "dropped_lines=") {
			t.Fatalf("%s: no drop report in the log", c.stream)
		}
		if len(out) > 1<<20 {
			t.Fatalf("%s: the host log grew by %d bytes", c.stream, len(out))
		}
	}
}

// TestLongStdoutLineTruncated: a line longer than the cap is one record
// of its first 4 KiB, marked as truncated, instead of one record per 4 KiB.
func TestLongStdoutLineTruncated(t *testing.T) {
	eng, logs := newEngine(t, runtime.Config{})
	man := manifest(t, "name = \"long\"\nversion = \"0.1.0\"\nentrypoints = [\"flood\"]\n")
	mod, err := eng.Compile(context.Background(), floodModule(1, strings.Repeat("abcd", 2500)+"\n", 1), man)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.Call(context.Background(), "flood", nil); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "stream=stdout"); n != 1 || !strings.Contains(out, "truncated: 4096 of 10000 bytes kept") {
		t.Fatalf("a 10,000-byte line became %d records:\n%.300s", n, out)
	}
}
