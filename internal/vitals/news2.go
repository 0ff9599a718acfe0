package vitals

import "math"

// Score is a reading's National Early Warning Score 2 (Royal College of
// Physicians, 2017): the aggregate and each parameter's points.
type Score struct {
	Total int
	// Parts are the points of respiration rate, SpO2 (scale 1), air or
	// oxygen, systolic BP, pulse, consciousness and temperature, in the
	// chart's order.
	Parts [7]int
}

// Red reports whether any single parameter scores 3, which on its own
// calls for an urgent ward-based response.
func (s Score) Red() bool {
	for _, p := range s.Parts {
		if p == 3 {
			return true
		}
	}
	return false
}

// NEWS2Trigger is the aggregate at which NEWS2 asks for an urgent response
// (a key threshold: 5 or more).
const NEWS2Trigger = 5

// band scores x against the chart's ascending upper edges: x <= edges[i]
// scores points[i], above the last edge points[len(edges)].
func band(x float64, edges []float64, points []int) int {
	for i, e := range edges {
		if x <= e {
			return points[i]
		}
	}
	return points[len(edges)]
}

// NEWS2 scores the reading on the NEWS2 chart with SpO2 scale 1 (the scale
// for patients without hypercapnic respiratory failure). Readings are
// rounded to the chart's precision first (whole breaths, beats, mmHg and
// percent; temperature to 0.1 °C), so a value falls in exactly one printed
// band. A parameter that was not recorded (NaN) adds no points; callers
// that want the chart's behaviour carry the last recorded value forward.
func (r *Record) NEWS2() Score {
	var s Score
	score := func(i int, x, digits float64, edges []float64, points []int) {
		if math.IsNaN(x) {
			return
		}
		s.Parts[i] = band(round(x, digits), edges, points)
	}
	score(0, r.RR, 0, []float64{8, 11, 20, 24}, []int{3, 1, 0, 2, 3})
	score(1, r.SpO2, 0, []float64{91, 93, 95}, []int{3, 2, 1, 0})
	if r.Oxygen {
		s.Parts[2] = 2
	}
	score(3, r.SBP, 0, []float64{90, 100, 110, 219}, []int{3, 2, 1, 0, 3})
	score(4, r.HR, 0, []float64{40, 50, 90, 110, 130}, []int{3, 1, 0, 1, 2, 3})
	if r.ACVPU != Alert {
		s.Parts[5] = 3
	}
	score(6, r.Temp, 1, []float64{35.0, 36.0, 38.0, 39.0}, []int{3, 1, 0, 1, 2})
	for _, p := range s.Parts {
		s.Total += p
	}
	return s
}

// plausible are the bounds outside which a monitor reading of the NEWS2
// parameters is a sensor artefact (lead off, probe off, a Fahrenheit
// entry), the same bounds the vitals-preprocess module drops at (with its
// 5 % tolerance); a nurse would re-measure such a reading rather than
// score it.
var plausible = map[string][2]float64{"rr": {4 - 2.8, 60 + 2.8}, "spo2": {50 - 2.5, 100 + 2.5}, "sbp": {50 - 10.5, 260 + 10.5}, "hr": {25 - 11.25, 250 + 11.25}, "temp": {32 - 0.525, 42.5 + 0.525}}

// ChartNEWS2 scores each record as a ward chart would: per patient in time
// order, a missing or implausible reading is replaced by the patient's last
// plausible one (not scored before the first), then Record.NEWS2.
// Records of different patients may interleave.
func ChartNEWS2(recs []Record) []Score {
	type last struct{ rr, spo2, sbp, hr, temp float64 }
	nan := math.NaN()
	seen := map[string]*last{}
	out := make([]Score, len(recs))
	for i := range recs {
		r := recs[i]
		l := seen[r.Patient]
		if l == nil {
			l = &last{nan, nan, nan, nan, nan}
			seen[r.Patient] = l
		}
		for _, f := range []struct {
			key  string
			v, l *float64
		}{{"rr", &r.RR, &l.rr}, {"spo2", &r.SpO2, &l.spo2}, {"sbp", &r.SBP, &l.sbp}, {"hr", &r.HR, &l.hr}, {"temp", &r.Temp, &l.temp}} {
			b := plausible[f.key]
			if math.IsNaN(*f.v) || *f.v < b[0] || *f.v > b[1] {
				*f.v = *f.l
			} else {
				*f.l = *f.v
			}
		}
		out[i] = r.NEWS2()
	}
	return out
}
