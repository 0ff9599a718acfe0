package vitalsproc

import (
	"math"
	"math/rand/v2"
	"testing"
)

func rec(p string, t float64, kv ...any) Record {
	r := Record{Patient: p, T: t, HasT: true}
	for i := 0; i < len(kv); i += 2 {
		j := FieldIndex(kv[i].(string))
		r.Values[j], r.Present[j] = kv[i+1].(float64), true
	}
	return r
}

func TestCleaning(t *testing.T) {
	hr, spo2, dbp := FieldIndex("hr"), FieldIndex("spo2"), FieldIndex("dbp")
	cases := []struct {
		name                 string
		in                   Record
		field                int
		wantPresent          bool
		wantClean            float64
		dropped, clamped, mi int
	}{
		{"normal hr", rec("a", 0, "hr", 72.0), hr, true, 72, 0, 0, 0},
		{"hr spike 400 dropped", rec("a", 0, "hr", 400.0), hr, false, 0, 1, 0, 0},
		{"hr 0 dropped", rec("a", 0, "hr", 0.0), hr, false, 0, 1, 0, 0},
		{"hr 255 clamped", rec("a", 0, "hr", 255.0), hr, true, 250, 0, 1, 0},
		{"spo2 101 clamped", rec("a", 0, "spo2", 101.0), spo2, true, 100, 0, 1, 0},
		{"spo2 NaN dropped", rec("a", 0, "spo2", math.NaN()), spo2, false, 0, 1, 0, 0},
		{"spo2 missing", rec("a", 0), spo2, false, 0, 0, 0, 1},
		{"dbp above sbp dropped", rec("a", 0, "sbp", 100.0, "dbp", 110.0), dbp, false, 0, 1, 0, 0},
	}
	for _, c := range cases {
		var st State
		out, cnt, err := Process(Config{}, []Record{c.in}, &st)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if out[0].Present[c.field] != c.wantPresent || out[0].Clean[c.field] != c.wantClean {
			t.Errorf("%s: present=%v clean=%v, want %v %v", c.name, out[0].Present[c.field], out[0].Clean[c.field], c.wantPresent, c.wantClean)
		}
		if cnt.Dropped[c.field] != c.dropped || cnt.Clamped[c.field] != c.clamped || cnt.Missing[c.field] != c.mi {
			t.Errorf("%s: counts dropped=%d clamped=%d missing=%d", c.name, cnt.Dropped[c.field], cnt.Clamped[c.field], cnt.Missing[c.field])
		}
	}
}

func TestMovingMedianRemovesSpike(t *testing.T) {
	hr := FieldIndex("hr")
	vals := []float64{70, 71, 140, 72, 71, 70}
	var recs []Record
	for i, v := range vals {
		recs = append(recs, rec("p", float64(i), "hr", v))
	}
	var st State
	out, _, err := Process(Config{Window: 3}, recs, &st)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{70, 70.5, 71, 72, 72, 71}
	for i, w := range want {
		if out[i].Clean[hr] != w {
			t.Errorf("reading %d: median %v, want %v", i, out[i].Clean[hr], w)
		}
	}
}

func TestPatientsHaveSeparateWindows(t *testing.T) {
	hr := FieldIndex("hr")
	recs := []Record{rec("a", 0, "hr", 60.0), rec("b", 0, "hr", 120.0), rec("a", 1, "hr", 62.0), rec("b", 1, "hr", 118.0)}
	var st State
	out, _, _ := Process(Config{Window: 3}, recs, &st)
	if out[2].Clean[hr] != 61 || out[3].Clean[hr] != 119 {
		t.Fatalf("windows mixed patients: %v %v", out[2].Clean[hr], out[3].Clean[hr])
	}
}

// TestChunkedEqualsWhole is the reason state exists: processing a stream in
// chunks with the state carried over gives exactly the single-pass result.
func TestChunkedEqualsWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	for i := 0; i < 500; i++ {
		p := string(rune('a' + rng.IntN(4)))
		r := rec(p, float64(i), "hr", 60+rng.NormFloat64()*10, "sbp", 120+rng.NormFloat64()*15, "spo2", 97+rng.NormFloat64()*2)
		if rng.IntN(10) == 0 {
			r.Values[0] = 999
		}
		recs = append(recs, r)
	}
	var whole State
	want, wantCnt, err := Process(Config{Window: 5}, recs, &whole)
	if err != nil {
		t.Fatal(err)
	}
	var st State
	var got []Output
	var dropped int
	for lo := 0; lo < len(recs); lo += 37 {
		hi := min(lo+37, len(recs))
		o, c, err := Process(Config{Window: 5}, recs[lo:hi], &st)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, o...)
		dropped += c.Dropped[0]
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d differs: chunked %+v, whole %+v", i, got[i], want[i])
		}
	}
	if dropped != wantCnt.Dropped[0] || dropped == 0 {
		t.Fatalf("dropped %d chunked vs %d whole", dropped, wantCnt.Dropped[0])
	}
}

func TestWelfordMatchesTwoPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float64, 1000)
	var w Welford
	var sum float64
	for i := range xs {
		xs[i] = 1e4 + rng.NormFloat64()*3
		sum += xs[i]
		w.Add(xs[i])
	}
	mean := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	std := math.Sqrt(ss / float64(len(xs)-1))
	if math.Abs(w.Mean-mean) > 1e-9 || math.Abs(w.Std()-std) > 1e-9 {
		t.Fatalf("welford mean %v std %v, two-pass %v %v", w.Mean, w.Std(), mean, std)
	}
	if (Welford{N: 1, Mean: 5}).Z(7) != 0 {
		t.Fatal("z with one sample should be 0")
	}
}

func TestConfigAndStateValidation(t *testing.T) {
	for _, c := range []Config{{Window: 4}, {Window: -1}, {Window: 65}, {Tolerance: -0.1}, {Tolerance: math.NaN()}} {
		if _, _, err := Process(c, nil, &State{}); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	bad := []State{
		{Stats: map[string]Welford{"bogus": {}}},
		{Stats: map[string]Welford{"hr": {N: 2, M2: -1}}},
		{Stats: map[string]Welford{"hr": {N: 2, Mean: math.Inf(1)}}},
		{Recent: map[string]map[string][]float64{"p": {"hr": make([]float64, 64)}}},
		{Recent: map[string]map[string][]float64{"p": {"x": nil}}},
	}
	for i, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("bad state %d accepted", i)
		}
	}
}

func TestFromMap(t *testing.T) {
	r, err := FromMap(map[string]any{"patient": 17.0, "t": uint64(3), "hr": 80.0, "spo2": "", "temp": "37.2", "extra": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Patient != "17" || r.T != 3 || !r.HasT || r.Values[0] != 80 || r.Present[FieldIndex("spo2")] || r.Values[FieldIndex("temp")] != 37.2 {
		t.Fatalf("FromMap: %+v", r)
	}
	if _, err := FromMap(map[string]any{"hr": "fast"}); err == nil {
		t.Fatal("non-numeric hr accepted")
	}
	if _, err := FromMap(map[string]any{"patient": []any{1}}); err == nil {
		t.Fatal("array patient accepted")
	}
	o := Output{Patient: "a", HasT: true, T: 1}
	o.Present[0], o.Z[0], o.Clean[0] = true, 1.5, 90
	m := o.ToMap()
	if m["hr"] != 1.5 || m["clean"].(map[string]any)["hr"] != 90.0 {
		t.Fatalf("ToMap: %v", m)
	}
	if f := Features(m, nil); len(f) != NumFeatures || f[0] != 1.5 || f[1] != 0 {
		t.Fatalf("Features: %v", f)
	}
}

func TestNumFields(t *testing.T) {
	if len(Fields) != NumFields || len(FeatureKeys) != NumFeatures || len(Trends) != NumTrends {
		t.Fatalf("len(Fields) = %d, NumFields = %d; %d feature keys, NumFeatures %d", len(Fields), NumFields, len(FeatureKeys), NumFeatures)
	}
}

// TestObservationsPassThrough: o2 and acvpu in their accepted spellings.
func TestObservationsPassThrough(t *testing.T) {
	cases := []struct {
		o2, acvpu        any
		oxygen, notAlert bool
		wantErr          bool
	}{
		{nil, nil, false, false, false},
		{1.0, "A", true, false, false},
		{0.0, "C", false, true, false},
		{"1", "u", true, true, false},
		{true, uint64(2), true, true, false},
		{"", "", false, false, false},
		{"yes", nil, false, false, true},
		{nil, "X", false, false, true},
		{nil, 7.0, false, false, true},
	}
	for i, c := range cases {
		r, err := FromMap(map[string]any{"patient": "p", "o2": c.o2, "acvpu": c.acvpu})
		if (err != nil) != c.wantErr {
			t.Fatalf("case %d: error %v, want error %v", i, err, c.wantErr)
		}
		if err != nil {
			continue
		}
		if r.Oxygen != c.oxygen || r.NotAlert != c.notAlert {
			t.Fatalf("case %d: oxygen %v not alert %v", i, r.Oxygen, r.NotAlert)
		}
		out, _, err := Process(Config{}, []Record{r}, &State{})
		if err != nil {
			t.Fatal(err)
		}
		m := out[0].ToMap()
		if m["o2"] != b2f(c.oxygen) || m["not_alert"] != b2f(c.notAlert) {
			t.Fatalf("case %d: output %v", i, m)
		}
	}
}

// TestTrendFromBaseline: a patient's change from the first
// BaselineReadings readings, in units of the field's spread; another
// patient's baseline is their own.
func TestTrendFromBaseline(t *testing.T) {
	st := &State{Stats: map[string]Welford{"hr": {N: 1_000_000, Mean: 75, M2: 100 * 999_999}}} // sd 10
	var recs []Record
	for k := 0; k < BaselineReadings+6; k++ {
		hr := 60.0
		if k >= BaselineReadings {
			hr = 90 // a rise NEWS2 does not score (51-90)
		}
		r := Record{Patient: "a"}
		r.Values[0], r.Present[0] = hr, true
		recs = append(recs, r)
	}
	b := Record{Patient: "b"}
	b.Values[0], b.Present[0] = 90, true
	recs = append(recs, b)
	out, _, err := Process(Config{Window: 1}, recs, st)
	if err != nil {
		t.Fatal(err)
	}
	for k, o := range out[:BaselineReadings] {
		if math.Abs(o.Trend[0]) > 1e-9 {
			t.Fatalf("reading %d inside the baseline: trend %v", k, o.Trend[0])
		}
	}
	if got := out[len(out)-2].Trend[0]; math.Abs(got-3) > 1e-3 {
		t.Fatalf("60 -> 90 bpm at sd 10: trend %v, want 3", got)
	}
	if got := out[len(out)-1].Trend[0]; got != 0 {
		t.Fatalf("patient b's first reading: trend %v, want 0", got)
	}
	if st.Baseline["a"]["hr"].N != BaselineReadings {
		t.Fatalf("baseline kept %d readings", st.Baseline["a"]["hr"].N)
	}
	st.Baseline["a"]["hr"] = Welford{N: BaselineReadings + 1}
	if err := st.Validate(); err == nil {
		t.Fatal("a baseline over BaselineReadings validated")
	}
}
