package vitals

import (
	"math"
	"testing"
)

// normal is a reading that scores 0 on every NEWS2 parameter.
func normal() Record {
	return Record{RR: 16, SpO2: 97, SBP: 120, HR: 70, Temp: 37, ACVPU: Alert}
}

// TestNEWS2Bands checks every band edge of the published chart (RCP 2017,
// chart 1), one parameter at a time, each side of each edge.
func TestNEWS2Bands(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Record)
		part int
		want int
	}{
		{"rr 8", func(r *Record) { r.RR = 8 }, 0, 3},
		{"rr 9", func(r *Record) { r.RR = 9 }, 0, 1},
		{"rr 11", func(r *Record) { r.RR = 11 }, 0, 1},
		{"rr 12", func(r *Record) { r.RR = 12 }, 0, 0},
		{"rr 20", func(r *Record) { r.RR = 20 }, 0, 0},
		{"rr 21", func(r *Record) { r.RR = 21 }, 0, 2},
		{"rr 24", func(r *Record) { r.RR = 24 }, 0, 2},
		{"rr 25", func(r *Record) { r.RR = 25 }, 0, 3},
		{"rr 20.4 rounds to 20", func(r *Record) { r.RR = 20.4 }, 0, 0},
		{"spo2 91", func(r *Record) { r.SpO2 = 91 }, 1, 3},
		{"spo2 92", func(r *Record) { r.SpO2 = 92 }, 1, 2},
		{"spo2 93", func(r *Record) { r.SpO2 = 93 }, 1, 2},
		{"spo2 94", func(r *Record) { r.SpO2 = 94 }, 1, 1},
		{"spo2 95", func(r *Record) { r.SpO2 = 95 }, 1, 1},
		{"spo2 96", func(r *Record) { r.SpO2 = 96 }, 1, 0},
		{"spo2 100", func(r *Record) { r.SpO2 = 100 }, 1, 0},
		{"air", func(r *Record) { r.Oxygen = false }, 2, 0},
		{"oxygen", func(r *Record) { r.Oxygen = true }, 2, 2},
		{"sbp 90", func(r *Record) { r.SBP = 90 }, 3, 3},
		{"sbp 91", func(r *Record) { r.SBP = 91 }, 3, 2},
		{"sbp 100", func(r *Record) { r.SBP = 100 }, 3, 2},
		{"sbp 101", func(r *Record) { r.SBP = 101 }, 3, 1},
		{"sbp 110", func(r *Record) { r.SBP = 110 }, 3, 1},
		{"sbp 111", func(r *Record) { r.SBP = 111 }, 3, 0},
		{"sbp 219", func(r *Record) { r.SBP = 219 }, 3, 0},
		{"sbp 220", func(r *Record) { r.SBP = 220 }, 3, 3},
		{"pulse 40", func(r *Record) { r.HR = 40 }, 4, 3},
		{"pulse 41", func(r *Record) { r.HR = 41 }, 4, 1},
		{"pulse 50", func(r *Record) { r.HR = 50 }, 4, 1},
		{"pulse 51", func(r *Record) { r.HR = 51 }, 4, 0},
		{"pulse 90", func(r *Record) { r.HR = 90 }, 4, 0},
		{"pulse 91", func(r *Record) { r.HR = 91 }, 4, 1},
		{"pulse 110", func(r *Record) { r.HR = 110 }, 4, 1},
		{"pulse 111", func(r *Record) { r.HR = 111 }, 4, 2},
		{"pulse 130", func(r *Record) { r.HR = 130 }, 4, 2},
		{"pulse 131", func(r *Record) { r.HR = 131 }, 4, 3},
		{"alert", func(r *Record) { r.ACVPU = Alert }, 5, 0},
		{"new confusion", func(r *Record) { r.ACVPU = Confused }, 5, 3},
		{"voice", func(r *Record) { r.ACVPU = Voice }, 5, 3},
		{"pain", func(r *Record) { r.ACVPU = Pain }, 5, 3},
		{"unresponsive", func(r *Record) { r.ACVPU = Unresponsive }, 5, 3},
		{"temp 35.0", func(r *Record) { r.Temp = 35.0 }, 6, 3},
		{"temp 35.1", func(r *Record) { r.Temp = 35.1 }, 6, 1},
		{"temp 36.0", func(r *Record) { r.Temp = 36.0 }, 6, 1},
		{"temp 36.1", func(r *Record) { r.Temp = 36.1 }, 6, 0},
		{"temp 38.0", func(r *Record) { r.Temp = 38.0 }, 6, 0},
		{"temp 38.1", func(r *Record) { r.Temp = 38.1 }, 6, 1},
		{"temp 39.0", func(r *Record) { r.Temp = 39.0 }, 6, 1},
		{"temp 39.1", func(r *Record) { r.Temp = 39.1 }, 6, 2},
		{"temp 38.04 rounds to 38.0", func(r *Record) { r.Temp = 38.04 }, 6, 0},
		{"missing rr", func(r *Record) { r.RR = math.NaN() }, 0, 0},
		{"missing temp", func(r *Record) { r.Temp = math.NaN() }, 6, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := normal()
			c.set(&r)
			s := r.NEWS2()
			if s.Parts[c.part] != c.want {
				t.Fatalf("part %d = %d, want %d (%+v)", c.part, s.Parts[c.part], c.want, s)
			}
			if s.Total != c.want {
				t.Fatalf("total %d, want %d: only one parameter is off normal", s.Total, c.want)
			}
			if s.Red() != (c.want == 3) {
				t.Fatalf("red %v with a part of %d", s.Red(), c.want)
			}
		})
	}
}

// TestNEWS2Aggregate: the points add up across parameters, and a worked
// septic patient reaches the urgent-response trigger.
func TestNEWS2Aggregate(t *testing.T) {
	cases := []struct {
		name string
		r    Record
		want int
	}{
		{"normal", normal(), 0},
		// RR 22 (2), SpO2 94 (1), air (0), SBP 98 (2), HR 112 (2), alert (0), 38.4 (1)
		{"septic", Record{RR: 22, SpO2: 94, SBP: 98, HR: 112, Temp: 38.4}, 8},
		// RR 26 (3), SpO2 95 on oxygen (1+2), SBP 105 (1), HR 95 (1), confused (3), 36.0 (1)
		{"respiratory", Record{RR: 26, SpO2: 95, Oxygen: true, SBP: 105, HR: 95, ACVPU: Confused, Temp: 36.0}, 12},
		// RR 19, SpO2 96, SBP 111, HR 100 (1), temp 38.1 (1): below the trigger
		{"borderline", Record{RR: 19, SpO2: 96, SBP: 111, HR: 100, Temp: 38.1}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.NEWS2().Total; got != c.want {
				t.Fatalf("NEWS2 %d, want %d (%+v)", got, c.want, c.r.NEWS2())
			}
		})
	}
}

// TestChartNEWS2 carries the last plausible reading over missing readings
// and artefacts, per patient.
func TestChartNEWS2(t *testing.T) {
	nan := math.NaN()
	a := normal()
	a.Patient = "a"
	a.HR = 135 // 3
	b := normal()
	b.Patient = "b"
	a2 := a
	a2.HR = nan // carried: 135 scores 3
	a3 := a
	a3.HR = 0 // lead off: carried
	b2 := b
	b2.HR, b2.Temp = 300, 22 // artefacts, b's earlier normal readings carried
	first := normal()
	first.Patient, first.RR = "c", nan // nothing to carry: not scored
	a4 := a
	a4.HR = 60 // plausible again
	got := ChartNEWS2([]Record{a, b, a2, a3, b2, first, a4})
	want := []int{3, 0, 3, 3, 0, 0, 0}
	for i, s := range got {
		if s.Total != want[i] {
			t.Errorf("record %d: NEWS2 %d, want %d", i, s.Total, want[i])
		}
	}
}
