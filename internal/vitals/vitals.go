// Package vitals is fennec's one generator of synthetic adult patient vital
// signs, serving the demo, `fennec vitals`, the federation simulator and
// benchmarks: per-patient baselines, circadian rhythm, measurement noise,
// artefacts (dropouts and out-of-range spikes) and deteriorating patients
// whose vitals drift towards a clinical event along one of three courses
// (sepsis-like, respiratory failure, hypovolaemia), with a label that says
// whether the event happens within a horizon. Besides the monitor channels
// each reading carries the two nursing observations NEWS2 needs: whether
// the patient breathes supplemental oxygen, and consciousness on the ACVPU
// scale. Generation is seeded and deterministic, and Shard produces non-IID
// per-device datasets (different case-mix) for federated learning.
// docs/VITALS.md documents the distributions, the trajectories and their
// sources; Record.NEWS2 computes the Royal College of Physicians' early-warning
// score of a reading. AUROC, AUPRC, AtThreshold and ThresholdFor score a risk
// model's (or NEWS2's) scores against the labels; ValidationRows and
// PreprocessState are the demo devices' validation split and preprocessing
// start.
//
// Population distributions (adult, at rest), chosen to match commonly cited
// reference ranges:
//
//	signal   unit    baseline mean ± sd across patients   normal range (reference)
//	hr       bpm     75 ± 9                               60-100 (AHA)
//	sbp      mmHg    122 ± 13                             90-140 (NICE/ESH)
//	dbp      mmHg    77 ± 8                               60-90
//	spo2     %       97.5 ± 1.0 (capped at 100)           95-100 (BTS)
//	rr       /min    15 ± 2                               12-20 (NEWS2)
//	temp     °C      36.8 ± 0.25                          36.1-37.2 (NEWS2 36.1-38.0)
//	glucose  mg/dL   100 ± 15 (diabetic: 155 ± 35)        70-140 random (ADA)
//
// Within a patient each reading adds a circadian term (peak mid-afternoon,
// trough near 04:00: HR ±5 bpm, SBP ±6 mmHg, temp ±0.3 °C) and Gaussian
// measurement noise (HR 3, SBP 5, DBP 4, SpO2 0.7, RR 1, temp 0.1, glucose 8).
// A deteriorating patient starts drifting at an onset time and reaches the
// event 6-18 h later; the drift at the event depends on the course (Courses,
// each component scaled per patient by 0.6-1.4); recording stops at the
// event (transfer to intensive care). A patient whose measured SpO2 falls
// below 92 % is started on oxygen (and stays on it), which lifts the
// measured SpO2 back towards the 94-98 % target; 8 % of patients are on
// oxygen from admission. Deteriorating patients may become newly
// confused late in their course (course-dependent probability), rarely
// responding to voice or pain only just before the event; otherwise a
// patient shows a transient new confusion in 0.3 % of readings.
package vitals

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/fennec-edge/fennec/internal/config"
)

// Fields are the vital-sign keys in feature order.
var Fields = []string{"hr", "sbp", "dbp", "spo2", "rr", "temp", "glucose"}

// Consciousness is the ACVPU scale: Alert, new Confusion, responds to
// Voice, responds to Pain, Unresponsive.
type Consciousness uint8

// The ACVPU levels.
const (
	Alert Consciousness = iota
	Confused
	Voice
	Pain
	Unresponsive
)

// String is the level's letter (A, C, V, P, U).
func (c Consciousness) String() string {
	if int(c) < len("ACVPU") {
		return "ACVPU"[c : c+1]
	}
	return "?"
}

// ModelFeatures are the keys of the features the vitals-preprocess module
// outputs for the risk models, in the models' input order (its
// vitalsproc.FeatureKeys; modules' tests check the two agree): the
// z-scored Fields, oxygen and not-alert, and the changes of hr, sbp, spo2,
// rr and temp from the patient's own baseline.
var ModelFeatures = []string{"hr", "sbp", "dbp", "spo2", "rr", "temp", "glucose", "o2", "not_alert", "d_hr", "d_sbp", "d_spo2", "d_rr", "d_temp"}

// Record is one set of readings. A missing reading is NaN.
type Record struct {
	Patient                               string
	T                                     float64 // hours since admission
	HR, SBP, DBP, SpO2, RR, Temp, Glucose float64
	// Oxygen is true when the patient breathes supplemental oxygen (NEWS2's
	// "air or oxygen"); the nurse records it with every set of
	// observations, so it is never missing.
	Oxygen bool
	// ACVPU is the recorded level of consciousness (never missing).
	ACVPU Consciousness
	// Course names a deteriorating patient's trajectory (Courses), "" for a
	// stable patient.
	Course string
	// Label is 1 when the patient's clinical event happens within the
	// configured horizon after T, else 0.
	Label int
	// Deteriorating marks a patient who reaches the event during the stay.
	Deteriorating bool
}

// Values returns the readings in Fields order.
func (r *Record) Values() [7]float64 {
	return [7]float64{r.HR, r.SBP, r.DBP, r.SpO2, r.RR, r.Temp, r.Glucose}
}

// Map returns the record as `fennec run` presents a CSV row: patient, t and
// the present readings as float64 (missing ones absent), o2 (1 on oxygen,
// 0 on air), acvpu (its letter), plus the label.
func (r *Record) Map() map[string]any {
	m := map[string]any{"patient": r.Patient, "t": r.T, "label": float64(r.Label), "o2": float64(b2i(r.Oxygen)), "acvpu": r.ACVPU.String()}
	for i, v := range r.Values() {
		if !math.IsNaN(v) {
			m[Fields[i]] = v
		}
	}
	return m
}

// Config sets up a generation run. The zero value of each field is its
// default; a negative one is an error naming the field (Validate), and the
// No... fields turn a probability off.
type Config struct {
	Seed     uint64
	Patients int     // default 40
	Hours    float64 // stay length for stable patients, default 48
	Interval float64 // minutes between readings, default 30
	// Deteriorating is the fraction of patients who deteriorate (default
	// 0.25); NoDeterioration: none does.
	Deteriorating   float64
	NoDeterioration bool
	// Horizon in hours for the label (default 12).
	Horizon float64
	// Dropout is the probability that a reading is missing (default 0.05);
	// NoDropout: none is. Glucose is only measured every 4 hours.
	Dropout   float64
	NoDropout bool
	// Artefacts is the probability that a reading is an out-of-range spike
	// (default 0.01); NoArtefacts: none is.
	Artefacts   float64
	NoArtefacts bool
	// Diabetic is the fraction of patients with diabetic glucose baselines
	// (default 0.1); NoDiabetic: none has.
	Diabetic   float64
	NoDiabetic bool
	// HRShift and SBPShift move every baseline (case-mix, e.g. cardiology).
	HRShift, SBPShift float64
	// Prefix names patients Prefix+"-"+index (default "p").
	Prefix string
}

// Validate reports, naming the field, a negative count, length or
// probability, a probability above 1 and a horizon, stay or interval that
// is not finite.
func (c Config) Validate() error {
	if err := errors.Join(
		config.NonNegative("vitals config: Patients", c.Patients),
		config.NonNegative("vitals config: Hours", c.Hours),
		config.NonNegative("vitals config: Interval", c.Interval),
		config.NonNegative("vitals config: Deteriorating", c.Deteriorating),
		config.NonNegative("vitals config: Horizon", c.Horizon),
		config.NonNegative("vitals config: Dropout", c.Dropout),
		config.NonNegative("vitals config: Artefacts", c.Artefacts),
		config.NonNegative("vitals config: Diabetic", c.Diabetic),
	); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"Deteriorating", c.Deteriorating}, {"Dropout", c.Dropout}, {"Artefacts", c.Artefacts}, {"Diabetic", c.Diabetic}} {
		if p.v > 1 {
			return fmt.Errorf("vitals config: %s %v is a probability, above 1", p.name, p.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"Hours", c.Hours}, {"Interval", c.Interval}, {"Horizon", c.Horizon}, {"HRShift", c.HRShift}, {"SBPShift", c.SBPShift}} {
		if math.IsInf(f.v, 0) {
			return fmt.Errorf("vitals config: %s %v must be finite", f.name, f.v)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *float64, d float64, none bool) {
		switch {
		case none:
			*v = 0
		case *v == 0:
			*v = d
		}
	}
	if c.Patients == 0 {
		c.Patients = 40
	}
	def(&c.Hours, 48, false)
	def(&c.Interval, 30, false)
	def(&c.Deteriorating, 0.25, c.NoDeterioration)
	def(&c.Horizon, 12, false)
	def(&c.Dropout, 0.05, c.NoDropout)
	def(&c.Artefacts, 0.01, c.NoArtefacts)
	def(&c.Diabetic, 0.1, c.NoDiabetic)
	if c.Prefix == "" {
		c.Prefix = "p"
	}
	return c
}

type patient struct {
	base      [7]float64
	noise     [7]float64
	det       bool
	course    int
	onset, te float64
	drift     [7]float64
	phase     float64 // admission clock time (hours)
	oxygen    bool    // on supplemental oxygen (sticky once started)
	o2lift    float64 // SpO2 points oxygen adds (titrated towards 94-98 %)
	confuseAt float64 // severity at which new confusion appears (>1: never)
}

// Courses are the deterioration trajectories: the drift of each Fields
// signal at the event (before the per-patient 0.6-1.4 scaling), how often
// a deteriorating patient follows the course, and the probability that the
// patient becomes newly confused before the event. docs/VITALS.md gives the
// clinical picture and sources of each.
var Courses = []struct {
	Name    string
	Weight  float64
	Drift   [7]float64 // hr, sbp, dbp, spo2, rr, temp, glucose
	Confuse float64
}{
	{"sepsis", 0.5, [7]float64{30, -30, -15, -5, 9, 1.6, 35}, 0.5},
	{"respiratory", 0.3, [7]float64{20, -5, -3, -10, 12, 0.5, 10}, 0.35},
	{"hypovolaemia", 0.2, [7]float64{35, -40, -20, -2, 6, -0.3, 20}, 0.3},
}

var (
	noiseSD = [7]float64{3, 5, 4, 0.7, 1, 0.1, 8}
	circAmp = [7]float64{5, 6, 3, 0, 0.5, 0.3, 0}
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Generate returns every patient's records, patient by patient in time
// order, or cfg's validation error.
func Generate(cfg Config) ([]Record, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	var out []Record
	for i := 0; i < cfg.Patients; i++ {
		p := newPatient(rng, cfg)
		id := fmt.Sprintf("%s-%03d", cfg.Prefix, i)
		end := cfg.Hours
		if p.det {
			end = p.te
		}
		step := cfg.Interval / 60
		for k := 0; ; k++ {
			t := float64(k) * step
			if t > end+1e-9 {
				break
			}
			out = append(out, p.reading(rng, cfg, id, t))
		}
	}
	return out, nil
}

func newPatient(rng *rand.Rand, cfg Config) *patient {
	p := &patient{phase: 24 * rng.Float64()}
	p.base = [7]float64{
		75 + 9*rng.NormFloat64() + cfg.HRShift,
		122 + 13*rng.NormFloat64() + cfg.SBPShift,
		0, // set below from SBP
		math.Min(100, 97.5+1.0*rng.NormFloat64()),
		15 + 2*rng.NormFloat64(),
		36.8 + 0.25*rng.NormFloat64(),
		100 + 15*rng.NormFloat64(),
	}
	p.base[2] = math.Min(p.base[1]-25, 77+8*rng.NormFloat64()+cfg.SBPShift/2)
	if rng.Float64() < cfg.Diabetic {
		p.base[6] = 155 + 35*rng.NormFloat64()
	}
	for i := range p.noise {
		p.noise[i] = noiseSD[i] * (0.7 + 0.6*rng.Float64())
	}
	p.confuseAt = 2
	if rng.Float64() < cfg.Deteriorating {
		p.det = true
		p.onset = cfg.Hours * (0.15 + 0.5*rng.Float64())
		p.te = p.onset + 6 + 12*rng.Float64()
		u := rng.Float64()
		for p.course = 0; p.course < len(Courses)-1 && u >= Courses[p.course].Weight; p.course++ {
			u -= Courses[p.course].Weight
		}
		c := Courses[p.course]
		for i := range p.drift {
			p.drift[i] = c.Drift[i] * (0.6 + 0.8*rng.Float64())
		}
		if rng.Float64() < c.Confuse {
			p.confuseAt = 0.5 + 0.4*rng.Float64()
		}
	}
	p.oxygen = rng.Float64() < 0.08
	p.o2lift = 3 + 3*rng.Float64()
	return p
}

func (p *patient) reading(rng *rand.Rand, cfg Config, id string, t float64) Record {
	clock := math.Mod(p.phase+t, 24)
	circ := math.Cos(2 * math.Pi * (clock - 16) / 24) // +1 at 16:00, -1 at 04:00
	sev := 0.0
	if p.det && t > p.onset {
		sev = math.Min(1, (t-p.onset)/(p.te-p.onset))
		sev = sev * sev // slow start, accelerating
	}
	var v [7]float64
	for i := range v {
		v[i] = p.base[i] + circAmp[i]*circ + sev*p.drift[i] + p.noise[i]*rng.NormFloat64()
	}
	// Hypoxaemia below 92 % gets oxygen (BTS 2017: start below 94 %, most
	// wards act at 92 %); it stays on and lifts the saturation, hiding the
	// fall from SpO2 alone.
	if !p.oxygen && v[3] < 92 {
		p.oxygen = true
	}
	if p.oxygen {
		v[3] += p.o2lift * (1 - 0.5*sev) // oxygen helps less as the patient worsens
	}
	v[3] = math.Min(100, v[3])
	acvpu := Alert
	switch {
	case sev >= p.confuseAt && sev > 0.97 && rng.Float64() < 0.3:
		acvpu = Voice + Consciousness(rng.IntN(2))
	case sev >= p.confuseAt:
		acvpu = Confused
	case rng.Float64() < 0.003:
		acvpu = Confused // transient delirium, common at night on wards
	}
	if v[2] > v[1]-10 {
		v[2] = v[1] - 10
	}
	for i := range v {
		v[i] = round(v[i], []float64{0, 0, 0, 0, 0, 1, 0}[i])
		if rng.Float64() < cfg.Dropout {
			v[i] = math.NaN()
		} else if rng.Float64() < cfg.Artefacts {
			v[i] = artefact(rng, i)
		}
	}
	// Glucose is a point-of-care test every 4 hours, not a monitor channel.
	if math.Mod(t+1e-9, 4) > cfg.Interval/60-1e-9 && t != 0 {
		v[6] = math.NaN()
	}
	r := Record{Patient: id, T: round(t, 3), HR: v[0], SBP: v[1], DBP: v[2], SpO2: v[3], RR: v[4], Temp: v[5], Glucose: v[6],
		Oxygen: p.oxygen, ACVPU: acvpu, Deteriorating: p.det}
	if p.det {
		r.Course = Courses[p.course].Name
	}
	if p.det && p.te-t <= cfg.Horizon {
		r.Label = 1
	}
	return r
}

// artefact is a typical sensor failure for field i: probe off, motion,
// disconnected line, transcription error.
func artefact(rng *rand.Rand, i int) float64 {
	switch i {
	case 0: // HR: lead off (0) or motion (very high)
		return []float64{0, 280 + 40*rng.Float64()}[rng.IntN(2)]
	case 1:
		return []float64{0, 300 + 50*rng.Float64()}[rng.IntN(2)]
	case 2:
		return []float64{0, 200 + 30*rng.Float64()}[rng.IntN(2)]
	case 3: // SpO2 probe off
		return math.Round(10 + 30*rng.Float64())
	case 4:
		return []float64{0, 80 + 20*rng.Float64()}[rng.IntN(2)]
	case 5: // thermometer detached / Fahrenheit entered
		return []float64{22 + 5*rng.Float64(), 98 + 2*rng.Float64()}[rng.IntN(2)]
	default:
		return []float64{0, 900 + 200*rng.Float64()}[rng.IntN(2)]
	}
}

func round(x float64, digits float64) float64 {
	p := math.Pow(10, digits)
	return math.Round(x*p) / p
}

// Profiles are the case-mixes Shard rotates through: general ward,
// step-down unit (sicker), cardiology (higher HR/BP), diabetes-heavy clinic
// and a healthy screening cohort.
var Profiles = []struct {
	Name string
	Mod  func(*Config)
}{
	{"ward", func(c *Config) { c.Deteriorating = 0.2 }},
	{"stepdown", func(c *Config) { c.Deteriorating = 0.45; c.Artefacts = 0.02 }},
	{"cardiology", func(c *Config) { c.Deteriorating = 0.25; c.HRShift = 8; c.SBPShift = 12 }},
	{"diabetes", func(c *Config) { c.Deteriorating = 0.2; c.Diabetic = 0.6 }},
	{"screening", func(c *Config) { c.Deteriorating = 0.05; c.Dropout = 0.1 }},
}

// Shard returns the configuration of device d (0-based): base with the
// device's case-mix profile (Profiles[d % len]), its own seed and patient
// prefix, so devices hold non-IID data.
func Shard(base Config, d int) Config {
	c := base
	Profiles[d%len(Profiles)].Mod(&c)
	c.Seed = base.Seed*1_000_003 + uint64(d) + 1
	c.Prefix = fmt.Sprintf("d%d", d)
	return c
}

// CSVHeader is the header WriteCSV writes.
var CSVHeader = append(append([]string{"patient", "t"}, Fields...), "o2", "acvpu", "label")

// WriteCSV writes records with CSVHeader; missing readings are empty cells,
// o2 is 1 (oxygen) or 0 (air), acvpu the level's letter.
func WriteCSV(w io.Writer, recs []Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	row := make([]string, len(CSVHeader))
	for _, r := range recs {
		row[0] = r.Patient
		row[1] = strconv.FormatFloat(r.T, 'f', -1, 64)
		for i, v := range r.Values() {
			if math.IsNaN(v) {
				row[2+i] = ""
			} else {
				row[2+i] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		row[len(row)-3] = strconv.Itoa(b2i(r.Oxygen))
		row[len(row)-2] = r.ACVPU.String()
		row[len(row)-1] = strconv.Itoa(r.Label)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Stat is a signal's mean and standard deviation.
type Stat struct{ Mean, SD float64 }

var (
	refOnce sync.Once
	ref     [7]Stat
)

// Reference returns the population statistics of each Fields signal over
// a large generated cohort of every case-mix profile (without dropouts and
// artefacts): the shared scale on which every device can z-normalise, so a
// federated model sees one feature space rather than each ward's own
// (a device's running statistics make a cardiology ward's 83 bpm its 0).
func Reference() [7]Stat {
	refOnce.Do(func() {
		var sum, sq [7]float64
		var n [7]float64
		for d := range Profiles {
			cfg := Shard(Config{Seed: 0x7e7e, Patients: 200}, d)
			cfg.NoDropout, cfg.NoArtefacts = true, true
			recs, err := Generate(cfg)
			if err != nil {
				panic(err) // a fixed configuration, valid
			}
			for _, r := range recs {
				for i, v := range r.Values() {
					if !math.IsNaN(v) {
						sum[i] += v
						sq[i] += v * v
						n[i]++
					}
				}
			}
		}
		for i := range ref {
			m := sum[i] / n[i]
			ref[i] = Stat{Mean: m, SD: math.Sqrt(sq[i]/n[i] - m*m)}
		}
	})
	return ref
}
