// Package vitalsproc is the pure logic of the vitals-preprocess module:
// range cleaning, a causal moving median, and z-normalisation with running
// (Welford) statistics whose state travels between calls so that a stream
// can be processed in chunks by stateless, pooled instances. It has no
// dependency on the host or the SDK and is tested on the developer's
// machine.
package vitalsproc

import (
	"fmt"
	"math"
)

// Field describes one vital sign: its record key, unit and bounds.
//
// Plausible bounds [Lo, Hi] cover what an adult can physiologically show,
// including severe illness; they are deliberately wider than normal ranges.
// A reading outside them by at most Tolerance*(Hi-Lo) is treated as a
// calibration overshoot and clamped to the bound; further out (or NaN/Inf)
// it is a sensor artefact and dropped.
type Field struct {
	Key    string
	Unit   string
	Lo, Hi float64
}

// Fields are the vital signs in feature order (the order risk models use).
// Bounds (adult; sources: WHO/AHA reference ranges, NEWS2 scoring bands,
// clinical monitor alarm limits):
//
//	hr       heart rate               bpm     25 .. 250
//	sbp      systolic pressure        mmHg    50 .. 260
//	dbp      diastolic pressure       mmHg    20 .. 160
//	spo2     oxygen saturation        %       50 .. 100
//	rr       respiratory rate         /min     4 .. 60
//	temp     body temperature         °C      32 .. 42.5
//	glucose  blood glucose            mg/dL   30 .. 600
var Fields = []Field{
	{"hr", "bpm", 25, 250},
	{"sbp", "mmHg", 50, 260},
	{"dbp", "mmHg", 20, 160},
	{"spo2", "%", 50, 100},
	{"rr", "/min", 4, 60},
	{"temp", "°C", 32, 42.5},
	{"glucose", "mg/dL", 30, 600},
}

// NumFields is len(Fields).
const NumFields = 7

// Trends are the Fields (by index) whose change from the patient's own
// baseline is a feature: hr, sbp, spo2, rr, temp. A rise from 60 to 88 bpm
// scores nothing on NEWS2 (51-90 is one band) and is the commonest early
// sign of deterioration (Churpek et al. 2016).
var Trends = [NumTrends]int{0, 1, 3, 4, 5}

// NumTrends is len(Trends).
const NumTrends = 5

// BaselineReadings is how many of a patient's first accepted readings of a
// field form the patient's baseline (4 h at the demo's 30-minute
// observations).
const BaselineReadings = 8

// FeatureKeys are the keys of the model's features in order: the z-scores
// of Fields, the two observations (oxygen 1/0, not alert 1/0), then each
// Trends field's change from the patient's baseline in units of the
// field's spread ("d_" + key).
var FeatureKeys = func() []string {
	k := make([]string, 0, NumFeatures)
	for _, f := range Fields {
		k = append(k, f.Key)
	}
	k = append(k, "o2", "not_alert")
	for _, i := range Trends {
		k = append(k, "d_"+Fields[i].Key)
	}
	return k
}()

// NumFeatures is len(FeatureKeys): the risk models' input width.
const NumFeatures = NumFields + 2 + NumTrends

// FeatureIndex returns the index of key in FeatureKeys, or -1.
func FeatureIndex(key string) int {
	for i, k := range FeatureKeys {
		if k == key {
			return i
		}
	}
	return -1
}

// FieldIndex returns the index of key in Fields, or -1.
func FieldIndex(key string) int {
	for i, f := range Fields {
		if f.Key == key {
			return i
		}
	}
	return -1
}

// Record is one timestamped set of readings for a patient; Present[i] says
// whether Values[i] was measured.
type Record struct {
	Patient string
	T       float64
	HasT    bool
	Values  [NumFields]float64
	Present [NumFields]bool
	// Oxygen: the patient breathes supplemental oxygen ("o2" 1); NotAlert:
	// consciousness other than Alert on the ACVPU scale ("acvpu" C, V, P
	// or U, or 1-4). Absent observations count as air and alert.
	Oxygen, NotAlert bool
}

// Config tunes processing. The zero value means defaults.
type Config struct {
	// Window is the moving-median window in readings (odd, 1..63); 1
	// disables de-noising. Default 5.
	Window int
	// Tolerance is the fraction of a field's range within which an
	// out-of-range reading is clamped instead of dropped. Default 0.05.
	Tolerance float64
}

// MaxWindow bounds Config.Window and the per-patient history in State.
const MaxWindow = 63

func (c Config) withDefaults() (Config, error) {
	if c.Window == 0 {
		c.Window = 5
	}
	if c.Window < 1 || c.Window > MaxWindow || c.Window%2 == 0 {
		return c, fmt.Errorf("vitalsproc: window %d: want an odd number in 1..%d", c.Window, MaxWindow)
	}
	if c.Tolerance == 0 {
		c.Tolerance = 0.05
	}
	if !(c.Tolerance >= 0 && c.Tolerance <= 1) {
		return c, fmt.Errorf("vitalsproc: tolerance %v: want 0..1", c.Tolerance)
	}
	return c, nil
}

// Welford is a running mean and variance (Welford's online algorithm).
type Welford struct {
	N    uint64  `cbor:"n"`
	Mean float64 `cbor:"mean"`
	M2   float64 `cbor:"m2"`
}

// Add includes x.
func (w *Welford) Add(x float64) {
	w.N++
	d := x - w.Mean
	w.Mean += d / float64(w.N)
	w.M2 += d * (x - w.Mean)
}

// Std is the sample standard deviation (0 with fewer than two values).
func (w Welford) Std() float64 {
	if w.N < 2 {
		return 0
	}
	return math.Sqrt(w.M2 / float64(w.N-1))
}

// Z normalises x; 0 when the spread is not yet known.
func (w Welford) Z(x float64) float64 {
	s := w.Std()
	if s < 1e-9 {
		return 0
	}
	return (x - w.Mean) / s
}

// State carries what processing needs from earlier chunks: running
// statistics per field and, per patient and field, the last Window-1
// accepted readings for the moving median.
type State struct {
	Stats  map[string]Welford              `cbor:"stats"`
	Recent map[string]map[string][]float64 `cbor:"recent"`
	// Baseline: per patient and Trends field, the mean of the first
	// BaselineReadings de-noised readings.
	Baseline map[string]map[string]Welford `cbor:"baseline"`
}

// Validate checks a State that arrived from outside.
func (s *State) Validate() error {
	for k, w := range s.Stats {
		if FieldIndex(k) < 0 {
			return fmt.Errorf("vitalsproc: state: unknown field %q", k)
		}
		if math.IsNaN(w.Mean) || math.IsInf(w.Mean, 0) || math.IsNaN(w.M2) || math.IsInf(w.M2, 0) || w.M2 < 0 {
			return fmt.Errorf("vitalsproc: state: field %q statistics not finite", k)
		}
	}
	for p, m := range s.Baseline {
		for k, w := range m {
			if FieldIndex(k) < 0 {
				return fmt.Errorf("vitalsproc: state: patient %q: unknown baseline field %q", p, k)
			}
			if math.IsNaN(w.Mean) || math.IsInf(w.Mean, 0) || w.N > BaselineReadings {
				return fmt.Errorf("vitalsproc: state: patient %q baseline %q not finite or over %d readings", p, k, BaselineReadings)
			}
		}
	}
	for p, m := range s.Recent {
		for k, v := range m {
			if FieldIndex(k) < 0 {
				return fmt.Errorf("vitalsproc: state: patient %q: unknown field %q", p, k)
			}
			if len(v) > MaxWindow {
				return fmt.Errorf("vitalsproc: state: patient %q field %q: %d values, at most %d", p, k, len(v), MaxWindow)
			}
			for _, x := range v {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					return fmt.Errorf("vitalsproc: state: patient %q field %q: value %v not finite", p, k, x)
				}
			}
		}
	}
	return nil
}

// Output is one processed record: de-noised readings in their units (Clean)
// and their z-scores (Z). Fields that were missing or dropped are absent
// (Present false).
type Output struct {
	Patient string
	T       float64
	HasT    bool
	Clean   [NumFields]float64
	Z       [NumFields]float64
	Present [NumFields]bool
	// Oxygen and NotAlert pass the observations through.
	Oxygen, NotAlert bool
	// Trend[j] is the change of Fields[Trends[j]] from the patient's
	// baseline in units of the field's running spread (present with the
	// field).
	Trend [NumTrends]float64
}

// Counts are per-field tallies of one call.
type Counts struct {
	Records int
	Missing [NumFields]int
	Dropped [NumFields]int
	Clamped [NumFields]int
}

// Process cleans, de-noises and normalises recs in order, updating st (nil
// starts fresh and is allowed). Records of one patient must arrive in time
// order across calls; different patients may interleave.
func Process(cfg Config, recs []Record, st *State) ([]Output, Counts, error) {
	var cnt Counts
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, cnt, err
	}
	if st.Stats == nil {
		st.Stats = map[string]Welford{}
	}
	if st.Recent == nil {
		st.Recent = map[string]map[string][]float64{}
	}
	if st.Baseline == nil {
		st.Baseline = map[string]map[string]Welford{}
	}
	out := make([]Output, len(recs))
	// The running statistics live in an array during the call (one map
	// write per field at the end instead of a lookup and a write per
	// reading).
	var stats [NumFields]Welford
	var had [NumFields]bool
	for i, f := range Fields {
		stats[i], had[i] = st.Stats[f.Key]
	}
	var win []float64
	for ri := range recs {
		r := &recs[ri]
		o := &out[ri]
		o.Patient, o.T, o.HasT = r.Patient, r.T, r.HasT
		o.Oxygen, o.NotAlert = r.Oxygen, r.NotAlert
		cnt.Records++
		vals, present := r.Values, r.Present
		// Range cleaning.
		for i, f := range Fields {
			if !present[i] {
				cnt.Missing[i]++
				continue
			}
			v := vals[i]
			tol := cfg.Tolerance * (f.Hi - f.Lo)
			switch {
			case math.IsNaN(v) || math.IsInf(v, 0) || v < f.Lo-tol || v > f.Hi+tol:
				present[i] = false
				cnt.Dropped[i]++
			case v < f.Lo:
				vals[i] = f.Lo
				cnt.Clamped[i]++
			case v > f.Hi:
				vals[i] = f.Hi
				cnt.Clamped[i]++
			}
		}
		// A diastolic pressure at or above the systolic one is an artefact.
		if present[1] && present[2] && vals[2] >= vals[1] {
			present[2] = false
			cnt.Dropped[2]++
		}
		hist := st.Recent[r.Patient]
		for i, f := range Fields {
			if !present[i] {
				continue
			}
			if hist == nil {
				hist = map[string][]float64{}
				st.Recent[r.Patient] = hist
			}
			prev := hist[f.Key]
			win = append(append(win[:0], prev...), vals[i])
			if len(win) > cfg.Window {
				win = win[len(win)-cfg.Window:]
			}
			// Keep the last Window-1 raw readings for the next one (in
			// prev's own array: win is a copy, so they do not overlap).
			keep := win
			if len(keep) > cfg.Window-1 {
				keep = keep[len(keep)-(cfg.Window-1):]
			}
			hist[f.Key] = append(prev[:0], keep...)
			m := median(win)
			stats[i].Add(m)
			o.Clean[i] = m
			o.Z[i] = stats[i].Z(m)
			o.Present[i] = true
		}
		for j, i := range Trends {
			if !o.Present[i] {
				continue
			}
			bl := st.Baseline[r.Patient]
			if bl == nil {
				bl = map[string]Welford{}
				st.Baseline[r.Patient] = bl
			}
			b := bl[Fields[i].Key]
			if b.N < BaselineReadings {
				b.Add(o.Clean[i])
				bl[Fields[i].Key] = b
			}
			if sd := stats[i].Std(); sd > 1e-9 {
				o.Trend[j] = (o.Clean[i] - b.Mean) / sd
			}
		}
	}
	for i, f := range Fields {
		if had[i] || stats[i].N > 0 {
			st.Stats[f.Key] = stats[i]
		}
	}
	return out, cnt, nil
}

// median of v (at most MaxWindow values; v is not modified).
func median(v []float64) float64 {
	var buf [MaxWindow]float64
	s := buf[:copy(buf[:], v)]
	// insertion sort: windows are short
	for i := 1; i < len(s); i++ {
		x := s[i]
		j := i
		for ; j > 0 && s[j-1] > x; j-- {
			s[j] = s[j-1]
		}
		s[j] = x
	}
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
