package instrument_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fennec-edge/fennec/runtime/internal/instrument"
	"github.com/tetratelabs/wazero"
)

// seg is an active data segment of memory 0 at an i32.const offset.
type seg struct {
	off  int32
	data []byte
}

func leb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}

func section(id byte, p []byte) []byte { return append(leb([]byte{id}, uint64(len(p))), p...) }

// dataModule is a module with one page of exported memory (or an imported
// one) and the given data section payload, optionally with a data count.
func dataModule(importMem, dataCount bool, data []byte) []byte {
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	if importMem {
		m = append(m, section(2, []byte{1, 1, 'e', 1, 'm', 2, 0, 1})...)
	} else {
		m = append(m, section(5, []byte{1, 0, 1})...)
		m = append(m, section(7, []byte{1, 3, 'm', 'e', 'm', 2, 0})...)
	}
	if dataCount {
		n := data[0] // the tests' counts are < 128
		m = append(m, section(12, []byte{n})...)
	}
	return append(m, section(11, data)...)
}

func activeData(segs ...seg) []byte {
	p := leb(nil, uint64(len(segs)))
	for _, s := range segs {
		p = append(p, 0, 0x41)
		p = sleb(p, int64(s.off))
		p = append(p, 0x0b)
		p = leb(p, uint64(len(s.data)))
		p = append(p, s.data...)
	}
	return p
}

// memoryAfter instantiates wasm and returns its first page of memory and
// the number of data segments of the binary.
func memoryAfter(t *testing.T, wasm []byte) []byte {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	b, ok := mod.Memory().Read(0, 65536)
	if !ok {
		t.Fatal("memory read")
	}
	return bytes.Clone(b)
}

func TestMergeDataJoinsSegments(t *testing.T) {
	segs := []seg{
		{100, []byte("abc")},
		{110, []byte("defgh")}, // gap 7
		{3000, []byte("far")},  // gap over 64: a segment of its own
		{50, []byte("early")},  // out of order, fits before 100 with a gap of 45
		{3003, []byte("xy")},   // no gap
		{65534, []byte{1, 2}},  // the page's last two bytes
	}
	in := dataModule(false, false, activeData(segs...))
	out, err := instrument.MergeData(in, instrument.DefaultDataGap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(in, out) {
		t.Fatal("nothing merged")
	}
	if got, want := memoryAfter(t, out), memoryAfter(t, in); !bytes.Equal(got, want) {
		t.Fatal("memory differs after instantiation")
	}
	want := dataModule(false, false, activeData(
		seg{50, append(append(append([]byte("early"), make([]byte, 45)...), "abc"...), append(make([]byte, 7), "defgh"...)...)},
		seg{3000, []byte("farxy")},
		seg{65534, []byte{1, 2}},
	))
	if !bytes.Equal(out, want) {
		t.Fatalf("merged module\n got %x\nwant %x", out, want)
	}
	// A gap limit of 0 joins only touching segments.
	out0, err := instrument.MergeData(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := memoryAfter(t, out0), memoryAfter(t, in); !bytes.Equal(got, want) {
		t.Fatal("memory differs after instantiation (gap 0)")
	}
}

func TestMergeDataOutOfBoundsStillFails(t *testing.T) {
	in := dataModule(false, false, activeData(seg{65530, []byte("ab")}, seg{65535, []byte("cd")}))
	out, err := instrument.MergeData(in, instrument.DefaultDataGap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(in, out) {
		t.Fatal("nothing merged")
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, b := range [][]byte{in, out} {
		if _, err := r.Instantiate(ctx, b); err == nil {
			t.Fatal("a segment past the memory's end instantiated")
		}
	}
}

func TestMergeDataLeavesOthersAlone(t *testing.T) {
	two := activeData(seg{10, []byte("a")}, seg{12, []byte("b")})
	passive := append([]byte{2}, two[1:]...)
	passive = append(passive, 1, 1, 'p') // a third, passive segment
	passive[0] = 3
	globalOff := []byte{2, 0, 0x41, 10, 0x0b, 1, 'a', 0, 0x23, 0, 0x0b, 1, 'b'}
	for name, in := range map[string][]byte{
		"overlapping":     dataModule(false, false, activeData(seg{10, []byte("abc")}, seg{11, []byte("x")})),
		"imported memory": dataModule(true, false, two),
		"data count":      dataModule(false, true, two),
		"passive":         dataModule(false, false, passive),
		"global offset":   dataModule(false, false, globalOff),
		"one segment":     dataModule(false, false, activeData(seg{10, []byte("a")})),
		"no data":         {0, 'a', 's', 'm', 1, 0, 0, 0},
	} {
		out, err := instrument.MergeData(in, instrument.DefaultDataGap)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !bytes.Equal(in, out) {
			t.Errorf("%s: changed\n in %x\nout %x", name, in, out)
		}
	}
	if _, err := instrument.MergeData([]byte("\x00asm\x02\x00\x00\x00"), 64); err == nil {
		t.Error("MergeData accepted a binary of version 2")
	}
}

// The probe guest (Go, wasip1) validates after the merge with far fewer
// segments; the runtime's tests run it end to end.
func TestMergeDataGoGuest(t *testing.T) {
	p := probeWasm(t)
	if p == nil {
		t.Skip("no Go toolchain to build the probe guest")
	}
	out, err := instrument.MergeData(p, instrument.DefaultDataGap)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) >= len(p)+len(p)/2 || bytes.Equal(out, p) {
		t.Fatalf("probe: %d bytes -> %d", len(p), len(out))
	}
	r := validator()
	defer r.Close(context.Background())
	if err := valid(r, out); err != nil {
		t.Fatal(err)
	}
}
