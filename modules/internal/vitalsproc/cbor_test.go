package vitalsproc

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	fx "github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/sdk/cbor"
)

// The map-based path the module used before the hand-written codec: records
// decoded by fxamacker/cbor into map[string]any and converted by FromMap;
// outputs built by ToMap and encoded deterministically.
var (
	fxEnc, _ = fx.CoreDetEncOptions().EncMode()
	fxDec, _ = fx.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any(nil))}.DecMode()
)

func randRecordMap(rng *rand.Rand) map[string]any {
	m := map[string]any{}
	pick := func() any {
		switch rng.IntN(12) {
		case 0:
			return nil
		case 1:
			return ""
		case 2:
			return "72.5"
		case 3:
			return uint64(rng.IntN(300))
		case 4:
			return -int64(rng.IntN(30)) - 1
		case 5:
			return float64(float32(rng.NormFloat64() * 50))
		case 6:
			return math.NaN()
		case 7:
			return math.Inf(1)
		}
		return math.Round(rng.Float64()*3000) / 10
	}
	switch rng.IntN(4) {
	case 0:
		m["patient"] = "p" + string(rune('a'+rng.IntN(3)))
	case 1:
		m["patient"] = float64(rng.IntN(5))
	case 2:
		m["patient"] = uint64(rng.IntN(5))
	}
	if rng.IntN(4) > 0 {
		m["t"] = float64(rng.IntN(100)) / 2
	}
	for _, f := range Fields {
		if rng.IntN(5) > 0 {
			m[f.Key] = pick()
		}
	}
	if rng.IntN(3) == 0 {
		m["o2"] = []any{nil, "", 1.0, 0.0, uint64(1), "1", true}[rng.IntN(7)]
	}
	if rng.IntN(3) == 0 {
		m["acvpu"] = []any{nil, "", "A", "C", "v", uint64(3), 2.0}[rng.IntN(7)]
	}
	if rng.IntN(3) == 0 {
		m["label"] = 1.0
		m["note"] = []any{"x", map[string]any{"y": 1}}
	}
	return m
}

// TestRequestDecodeMatchesFromMap: the hand-written decoder gives the
// records FromMap gives for the same CBOR, including its errors.
func TestRequestDecodeMatchesFromMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		recs := make([]any, rng.IntN(20))
		for j := range recs {
			recs[j] = randRecordMap(rng)
		}
		in := map[string]any{"records": recs, "window": 3, "tolerance": 0.1, "extra": "ignored"}
		b, err := fxEnc.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var req Request
		if err := cbor.Unmarshal(b, &req); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var ms struct {
			Records []map[string]any `cbor:"records"`
		}
		if err := fxDec.Unmarshal(b, &ms); err != nil {
			t.Fatal(err)
		}
		if len(req.Records) != len(ms.Records) || req.Window != 3 || req.Tolerance != 0.1 {
			t.Fatalf("case %d: %d records, window %d", i, len(req.Records), req.Window)
		}
		for j, m := range ms.Records {
			want, err := FromMap(m)
			if err != nil {
				t.Fatal(err)
			}
			got := req.Records[j]
			// NaN != NaN: compare through the bits.
			if got.Patient != want.Patient || got.HasT != want.HasT || got.T != want.T || got.Present != want.Present {
				t.Fatalf("case %d record %d: got %+v, want %+v", i, j, got, want)
			}
			for k := range got.Values {
				if math.Float64bits(got.Values[k]) != math.Float64bits(want.Values[k]) {
					t.Fatalf("case %d record %d %s: %v vs %v", i, j, Fields[k].Key, got.Values[k], want.Values[k])
				}
			}
		}
	}
	for name, in := range map[string]any{
		"bool reading":   map[string]any{"records": []any{map[string]any{"hr": true}}},
		"text reading":   map[string]any{"records": []any{map[string]any{"hr": "fast"}}},
		"array patient":  map[string]any{"records": []any{map[string]any{"patient": []any{1}}}},
		"record not map": map[string]any{"records": []any{1}},
		"window float":   map[string]any{"records": []any{}, "window": 2.5},
	} {
		b, _ := fxEnc.Marshal(in)
		var req Request
		if err := cbor.Unmarshal(b, &req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	b, _ := fxEnc.Marshal(map[string]any{"records": []any{map[string]any{}, map[string]any{"hr": "fast"}}})
	var req Request
	if err := cbor.Unmarshal(b, &req); err == nil || !strings.HasPrefix(err.Error(), "cbor: records[1].hr: fast is not a number") {
		t.Fatalf("error path: %v", err)
	}
}

// TestResponseBytesMatchToMap: the hand-written encoder gives exactly the
// bytes of the ToMap-based response encoded by fxamacker/cbor, and the
// state round-trips.
func TestResponseBytesMatchToMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for i := range 100 {
		var recs []Record
		for range rng.IntN(60) {
			r, err := FromMap(randRecordMap(rng))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		st := &State{}
		out, cnt, err := Process(Config{Window: 3}, recs, st)
		if err != nil {
			t.Fatal(err)
		}
		maps := make([]map[string]any, len(out))
		for j := range out {
			maps[j] = out[j].ToMap()
		}
		want, err := fxEnc.Marshal(map[string]any{"records": maps, "counts": cnt.ToMap(), "state": st})
		if err != nil {
			t.Fatal(err)
		}
		got, err := cbor.Marshal(&Response{Records: out, Counts: cnt, State: st})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\ngot  %x\nwant %x", i, got, want)
		}
		// The state goes back in as the next chunk's.
		var back struct{ State State }
		var req Request
		sb, _ := fxEnc.Marshal(map[string]any{"state": st})
		if err := cbor.Unmarshal(sb, &req); err != nil {
			t.Fatal(err)
		}
		back.State = *req.State
		if !reflect.DeepEqual(back.State.Stats, st.Stats) || len(back.State.Recent) != len(st.Recent) {
			t.Fatalf("case %d: state round trip", i)
		}
		for p, h := range st.Recent {
			for k, v := range h {
				if !reflect.DeepEqual(back.State.Recent[p][k], v) {
					t.Fatalf("case %d: recent %s %s: %v vs %v", i, p, k, back.State.Recent[p][k], v)
				}
			}
		}
	}
}

// TestReadFeaturesMatchesFeatures checks the scoring reader against the
// map-based Features and patient formatting.
func TestReadFeaturesMatchesFeatures(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for range 500 {
		m := randRecordMap(rng)
		if rng.IntN(3) == 0 {
			m["clean"] = map[string]any{"hr": 70.0}
			m["hr"] = "abc"
		}
		b, _ := fxEnc.Marshal(m)
		var dm map[string]any
		if err := fxDec.Unmarshal(b, &dm); err != nil {
			t.Fatal(err)
		}
		want := Features(dm, nil)
		p, got, err := ReadFeatures(cbor.NewDecoder(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: got %v, want %v", dm, got, want)
		}
		if s, ok := dm["patient"].(string); ok && p != s {
			t.Fatalf("patient %q, want %q", p, s)
		}
	}
}

// BenchmarkDecodeRequest compares the typed decoder with the map-based
// path (fxamacker into map[string]any, then FromMap) on 1000 records.
func BenchmarkDecodeRequest(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	recs := make([]any, 1000)
	for i := range recs {
		m := map[string]any{"patient": "p1", "t": float64(i) / 2}
		for _, f := range Fields {
			m[f.Key] = math.Round((f.Lo+rng.Float64()*(f.Hi-f.Lo))*10) / 10
		}
		recs[i] = m
	}
	in, _ := fxEnc.Marshal(map[string]any{"records": recs})
	b.Run("typed", func(b *testing.B) {
		for b.Loop() {
			var req Request
			if err := cbor.Unmarshal(in, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("maps", func(b *testing.B) {
		for b.Loop() {
			var req struct {
				Records []map[string]any `cbor:"records"`
			}
			if err := fxDec.Unmarshal(in, &req); err != nil {
				b.Fatal(err)
			}
			for _, m := range req.Records {
				if _, err := FromMap(m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
