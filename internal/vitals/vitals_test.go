package vitals

import (
	"bytes"
	"encoding/csv"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDeterministic(t *testing.T) {
	a := gen(t, Config{Seed: 7, Patients: 10})
	b := gen(t, Config{Seed: 7, Patients: 10})
	var ba, bb bytes.Buffer
	WriteCSV(&ba, a)
	WriteCSV(&bb, b)
	if ba.String() != bb.String() {
		t.Fatal("same seed gave different records")
	}
	c := gen(t, Config{Seed: 8, Patients: 10})
	if reflect.DeepEqual(a[:5], c[:5]) {
		t.Fatal("different seeds gave the same records")
	}
}

func TestPopulationMatchesReferenceRanges(t *testing.T) {
	recs := gen(t, Config{Seed: 1, Patients: 300, NoDeterioration: true, NoDropout: true, NoArtefacts: true, NoDiabetic: true})
	lo := [7]float64{60, 90, 60, 95, 12, 36.1, 70}
	hi := [7]float64{100, 140, 90, 100, 20, 37.2, 140}
	want := [7]float64{75, 122, 77, 97.5, 15, 36.8, 100}
	var sum [7]float64
	var n [7]int
	var inRange [7]int
	for _, r := range recs {
		for i, v := range r.Values() {
			if math.IsNaN(v) {
				continue
			}
			sum[i] += v
			n[i]++
			if v >= lo[i] && v <= hi[i] {
				inRange[i]++
			}
		}
		if r.Label != 0 {
			t.Fatal("label set with no deteriorating patients")
		}
	}
	for i, f := range Fields {
		mean := sum[i] / float64(n[i])
		if math.Abs(mean-want[i]) > 0.04*want[i] {
			t.Errorf("%s: mean %.2f, want about %.1f", f, mean, want[i])
		}
		if frac := float64(inRange[i]) / float64(n[i]); frac < 0.75 {
			t.Errorf("%s: only %.0f%% of stable readings in the normal range", f, 100*frac)
		}
	}
}

func TestDeteriorationDriftsAndLabels(t *testing.T) {
	recs := gen(t, Config{Seed: 3, Patients: 60, Deteriorating: 1, NoDropout: true, NoArtefacts: true})
	byP := map[string][]Record{}
	for _, r := range recs {
		byP[r.Patient] = append(byP[r.Patient], r)
	}
	var early, late [7]float64
	for _, rs := range byP {
		first, last := rs[:4], rs[len(rs)-4:]
		for _, r := range first {
			if r.Label != 0 && rs[len(rs)-1].T-r.T > 12 {
				t.Fatalf("label 1 at t=%v, %v h before the event", r.T, rs[len(rs)-1].T-r.T)
			}
			for i, v := range r.Values() {
				early[i] += v
			}
		}
		for _, r := range last {
			if r.Label != 1 {
				t.Fatalf("record %v h before the event has label 0", rs[len(rs)-1].T-r.T)
			}
			for i, v := range r.Values() {
				late[i] += v
			}
		}
	}
	// hr, rr, temp rise; sbp, spo2 fall.
	for _, c := range []struct {
		i  int
		up bool
	}{{0, true}, {4, true}, {5, true}, {1, false}, {3, false}} {
		if (late[c.i] > early[c.i]) != c.up {
			t.Errorf("%s: early sum %.0f, late %.0f, want rising=%v", Fields[c.i], early[c.i], late[c.i], c.up)
		}
	}
}

func TestArtefactsAndDropouts(t *testing.T) {
	recs := gen(t, Config{Seed: 5, Patients: 50, Artefacts: 0.05, Dropout: 0.1})
	var missing, spikes int
	for _, r := range recs {
		for i, v := range r.Values() {
			switch {
			case math.IsNaN(v):
				missing++
			case i == 0 && (v < 20 || v > 250), i == 3 && v < 50, i == 5 && (v < 30 || v > 45):
				spikes++
			}
		}
	}
	if missing == 0 || spikes == 0 {
		t.Fatalf("missing=%d spikes=%d, want both > 0", missing, spikes)
	}
	clean := gen(t, Config{Seed: 5, Patients: 50, NoArtefacts: true, NoDropout: true})
	for _, r := range clean {
		if r.HR < 20 || r.HR > 250 || r.SpO2 < 50 {
			t.Fatalf("artefact with artefacts off: %+v", r)
		}
	}
}

func TestShardsAreNonIID(t *testing.T) {
	rate := func(c Config) float64 {
		recs := gen(t, c)
		pos := 0
		for _, r := range recs {
			pos += r.Label
		}
		return float64(pos) / float64(len(recs))
	}
	base := Config{Seed: 11, Patients: 80}
	stepdown, screening := rate(Shard(base, 1)), rate(Shard(base, 4))
	if stepdown < 2*screening {
		t.Fatalf("positive rate stepdown %.3f vs screening %.3f: shards not distinct", stepdown, screening)
	}
	a, b := gen(t, Shard(base, 0)), gen(t, Shard(base, 5)) // same profile, other device
	if a[0].Patient == b[0].Patient || a[0].HR == b[0].HR {
		t.Fatal("two devices with the same profile got the same data")
	}
}

func TestCSVAndMap(t *testing.T) {
	recs := gen(t, Config{Seed: 2, Patients: 2, Hours: 2})
	recs[0].SpO2, recs[0].HR = math.NaN(), 72
	var buf bytes.Buffer
	if err := WriteCSV(&buf, recs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(recs)+1 || strings.Join(rows[0], ",") != "patient,t,hr,sbp,dbp,spo2,rr,temp,glucose,o2,acvpu,label" {
		t.Fatalf("csv header/rows: %v (%d rows)", rows[0], len(rows))
	}
	if rows[1][5] != "" {
		t.Fatalf("missing spo2 written as %q", rows[1][5])
	}
	m := recs[0].Map()
	if _, ok := m["spo2"]; ok {
		t.Fatal("missing spo2 present in map")
	}
	if m["patient"] != "p-000" || m["hr"] != recs[0].HR {
		t.Fatalf("map: %v", m)
	}
}

// TestObservations: oxygen and new confusion are rare in stable patients
// and common before an event; every course occurs; the CSV and the map
// carry both observations.
func TestObservations(t *testing.T) {
	recs := gen(t, Config{Seed: 9, Patients: 400})
	var n, o2, conf [2]int
	courses := map[string]int{}
	for _, r := range recs {
		n[r.Label]++
		o2[r.Label] += b2i(r.Oxygen)
		conf[r.Label] += b2i(r.ACVPU != Alert)
		if r.Deteriorating != (r.Course != "") {
			t.Fatalf("deteriorating %v with course %q", r.Deteriorating, r.Course)
		}
		courses[r.Course]++
	}
	rate := func(k [2]int, l int) float64 { return float64(k[l]) / float64(n[l]) }
	if s := rate(o2, 0); s < 0.03 || s > 0.2 {
		t.Errorf("%.3f of stable readings on oxygen, want a few percent", s)
	}
	if rate(o2, 1) < 2*rate(o2, 0) || rate(conf, 1) < 5*rate(conf, 0) {
		t.Errorf("oxygen %.3f vs %.3f, confusion %.3f vs %.3f (before an event vs not): want clearly more before an event",
			rate(o2, 1), rate(o2, 0), rate(conf, 1), rate(conf, 0))
	}
	for _, c := range Courses {
		if courses[c.Name] == 0 {
			t.Errorf("no patient followed the %s course", c.Name)
		}
	}
	r := Record{Oxygen: true, ACVPU: Confused, HR: 80}
	if m := r.Map(); m["o2"] != 1.0 || m["acvpu"] != "C" {
		t.Fatalf("map: %v", m)
	}
}

// TestNEWS2Discriminates: on generated wards NEWS2 separates readings
// before an event from the rest about as well as it does in published
// validations (AUROC 0.7-0.9 for deterioration within hours; Smith 2013,
// Pimentel 2019) - a generator it read perfectly would make the baseline
// meaningless, one it could not read would make it a straw man.
func TestNEWS2Discriminates(t *testing.T) {
	recs := gen(t, Config{Seed: 11, Patients: 400, NoDropout: true, NoArtefacts: true})
	var pos, neg []int
	for _, r := range recs {
		if r.Label == 1 {
			pos = append(pos, r.NEWS2().Total)
		} else {
			neg = append(neg, r.NEWS2().Total)
		}
	}
	var wins float64
	var hist [30]float64
	for _, s := range neg {
		hist[s]++
	}
	for _, p := range pos {
		for s := 0; s < p; s++ {
			wins += hist[s]
		}
		wins += hist[p] / 2
	}
	auc := wins / float64(len(pos)*len(neg))
	t.Logf("NEWS2 AUROC %.3f on %d positive and %d negative readings", auc, len(pos), len(neg))
	if auc < 0.65 || auc > 0.92 {
		t.Fatalf("NEWS2 AUROC %.3f outside the published range", auc)
	}
}

// TestReference: the shared normalisation scale is close to the documented
// population (the deteriorating minority and the profiles' shifts widen it
// a little; the diabetes clinic raises glucose) and positive.
func TestReference(t *testing.T) {
	want := [7]float64{75, 122, 77, 97.5, 15, 36.8, 110}
	for i, s := range Reference() {
		if math.Abs(s.Mean-want[i]) > 0.08*want[i] || !(s.SD > 0) || s.SD > 0.35*want[i] {
			t.Errorf("%s: mean %.2f sd %.2f, want about %.1f", Fields[i], s.Mean, s.SD, want[i])
		}
	}
}

func gen(t testing.TB, c Config) []Record {
	t.Helper()
	recs, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A negative field is an error naming it, not "none" (the No... fields
// say that), and so is a probability above 1.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Patients: -1}, "vitals config: Patients must not be negative"},
		{Config{Hours: -2}, "vitals config: Hours must not be negative"},
		{Config{Dropout: -1}, "vitals config: Dropout must not be negative"},
		{Config{Deteriorating: 1.5}, "vitals config: Deteriorating 1.5 is a probability, above 1"},
		{Config{Interval: math.Inf(1)}, "vitals config: Interval +Inf must be finite"},
		{Config{Artefacts: math.NaN()}, "vitals config: Artefacts must not be negative"},
	} {
		if _, err := Generate(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// The No... fields override a profile's probability.
	c := Shard(Config{Seed: 1, Patients: 20}, 4) // screening: Dropout 0.1
	c.NoDropout = true
	for _, r := range gen(t, c) {
		for i, v := range r.Values() {
			if math.IsNaN(v) && Fields[i] != "glucose" {
				t.Fatalf("a %s reading is missing with NoDropout", Fields[i])
			}
		}
	}
}
