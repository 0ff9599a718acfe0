package runtime_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// growGuest's "fill" grows its memory a page at a time until memory.grow
// fails (the cap), then writes every byte.
func growGuest() []byte {
	body := wasmtest.Cat(
		op(0x02, 0x40, 0x03, 0x40),                    // block loop
		wasmtest.I32Const(1), op(0x40, 0x00, 0x22, 1), // memory.grow 1; local.tee 1
		wasmtest.I32Const(-1), op(0x46, 0x0d, 1), // == -1: br_if 1
		wasmtest.LocalGet(1), wasmtest.I32Const(16), op(0x74), wasmtest.I32Const(1), op(0x36, 2, 0), // mem[old<<16] = 1
		op(0x0c, 0, wasmtest.OpEnd, wasmtest.OpEnd),
		wasmtest.I32Const(0), wasmtest.I32Const(1), op(0x3f, 0), wasmtest.I32Const(16), op(0x74), // memory.fill(0, 1, size)
		op(0xfc, 0x0b, 0),
		wasmtest.I32Const(0),
	)
	return wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: entry, Locals: i32x1, Body: body, Export: "fill"},
	}}.Encode()
}

// status reads a field of /proc/self/status in bytes.
func status(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// resetPeak resets VmHWM to the current RSS (Linux 4.0+).
func resetPeak(t *testing.T) bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// TestMemoryCostsItsCap grows a guest's memory to its 128 MiB cap and
// touches every page: the process's resident memory, peak included, grows
// by the cap plus a fixed margin, and closing the instance gives the memory
// back, over many instantiate/close cycles.
func TestMemoryCostsItsCap(t *testing.T) {
	const capBytes, margin = 128 << 20, 48 << 20
	eng, _ := newEngine(t, runtime.Config{})
	man := manifest(t, "name = \"grow\"\nversion = \"1.0.0\"\nentrypoints = [\"fill\"]\n[limits]\nmemory_pages = 2048\ncall_timeout = \"5s\"\ninstances = 1\n")
	mod, err := eng.Compile(context.Background(), growGuest(), man)
	if err != nil {
		t.Fatal(err)
	}
	base := status(t, "VmRSS")
	peak := resetPeak(t)
	for cycle := range 6 {
		if _, err := mod.Call(context.Background(), "fill", nil); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if rss := status(t, "VmRSS"); rss-base > capBytes+margin || rss-base < capBytes/2 {
			t.Fatalf("cycle %d: RSS grew by %d MiB for a %d MiB memory", cycle, (rss-base)>>20, capBytes>>20)
		}
		if peak {
			if hwm := status(t, "VmHWM"); hwm-base > capBytes+margin {
				t.Fatalf("cycle %d: peak RSS grew by %d MiB for a %d MiB memory", cycle, (hwm-base)>>20, capBytes>>20)
			}
		}
		mod.Drain() // closes the instance
		if rss := status(t, "VmRSS"); rss-base > margin {
			t.Fatalf("cycle %d: closing the instance left RSS %d MiB above where it started", cycle, (rss-base)>>20)
		}
	}
}
