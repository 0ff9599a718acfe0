package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"
)

// TestRunOutputBounded: `fennec run` decoded and rendered any output as
// JSON: a 64 MiB output of small integers took 2.4 GB and printed 448 MiB.
// It now renders at most --max-json bytes of output (1 MiB by default) and
// says how to get the rest.
func TestRunOutputBounded(t *testing.T) {
	// An array of 4M zeros: 4 MiB of CBOR, 4M decoded values.
	out := append([]byte{0x9a, 0x00, 0x40, 0x00, 0x00}, make([]byte, 4<<20)...)
	var buf bytes.Buffer
	var werr error
	grew := allocated(func() { werr = writeOutput(&buf, "m", out, "json", defaultMaxJSON) })
	var ee *exitError
	if !errors.As(werr, &ee) || ee.code != exitFailure || !strings.Contains(werr.Error(), "--output cbor") || !strings.Contains(werr.Error(), "1048576") {
		t.Fatalf("json of a 4 MiB output: %v", werr)
	}
	if buf.Len() != 0 || grew > 1<<20 {
		t.Fatalf("the refused rendering wrote %d bytes and allocated %d", buf.Len(), grew)
	}
	// Raw CBOR is written as it came, whatever its size.
	buf.Reset()
	if err := writeOutput(&buf, "m", out, "cbor", defaultMaxJSON); err != nil || !bytes.Equal(buf.Bytes(), out) {
		t.Fatalf("cbor output: %v", err)
	}
	// At the limit the rendering is bounded: 1M small integers.
	small := append([]byte{0x9a, 0x00, 0x0f, 0xff, 0xfb}, make([]byte, defaultMaxJSON-5)...)
	buf.Reset()
	grew = allocated(func() { werr = writeOutput(&buf, "m", small, "json", defaultMaxJSON) })
	if werr != nil {
		t.Fatal(werr)
	}
	var v []int
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil || len(v) != defaultMaxJSON-5 {
		t.Fatalf("rendered %d values (%v)", len(v), err)
	}
	if grew > 64*defaultMaxJSON {
		t.Fatalf("rendering %d bytes of output allocated %d bytes", len(small), grew)
	}
	if err := writeOutput(&buf, "m", []byte{0xff}, "json", defaultMaxJSON); !errors.As(err, &ee) || ee.code != exitFailure {
		t.Fatalf("invalid CBOR: %v", err)
	}
}

func allocated(f func()) uint64 {
	var a, b goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&a)
	f()
	goruntime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestReadInputBounded: an input larger than the limit is an error naming
// the input and the limit, in every format; one of exactly the limit is
// read. The CSV is cut at a line end by the limit, so that a silent cut
// would parse (as it did with an io.LimitReader).
func TestReadInputBounded(t *testing.T) {
	csv := "patient,hr\np1,70\np2,71\n"
	defer func(m int64) { maxInput = m }(maxInput)
	maxInput = int64(len("patient,hr\np1,70\n"))
	for _, tc := range []struct{ format, in string }{{"csv", csv}, {"json", `{"records": [{"hr": 70}]}`}, {"cbor", strings.Repeat("\x00", 30)}} {
		if _, err := readInput(strings.NewReader(tc.in), "-", tc.format); err == nil || !strings.Contains(err.Error(), "<stdin>") || !strings.Contains(err.Error(), fmt.Sprint(maxInput)) {
			t.Errorf("%s input of %d bytes with a limit of %d: %v, want an error naming the input and the limit", tc.format, len(tc.in), maxInput, err)
		}
	}
	maxInput = int64(len(csv))
	if _, err := readInput(strings.NewReader(csv), "-", "csv"); err != nil {
		t.Errorf("input of exactly the limit: %v", err)
	}
}
