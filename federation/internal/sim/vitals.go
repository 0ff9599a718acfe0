package sim

import (
	"math"
	"math/rand/v2"

	"github.com/fennec-edge/fennec/internal/vitals"
)

// Vitals returns about n readings of generated patient vitals from
// internal/vitals, the generator the demo and `fennec vitals` use, as a
// Data: features in vitals.Fields order (hr, sbp, dbp, spo2, rr, temp,
// glucose: the risk-train module's 7 inputs), label 1 when the patient's
// event happens within the horizon. Patients follow the devices' case-mix
// profiles in turn. There is no preprocessing module on this path, so the
// readings are generated without dropouts and artefacts; the 4-hourly
// glucose is carried forward between tests, as a chart shows it. A fifth
// of the patients (not of the readings: one patient's readings are
// correlated; every fifth, so each profile has some) form the test split, and the features are standardised with
// the training split's statistics. Deterministic for a seed.
func Vitals(n int, seed uint64) *Data {
	const perPatient = 60 // fewer readings than an average stay has (48 h every 30 min, shorter to an event)
	np := len(vitals.Profiles)
	per := max(2, (n+perPatient*np-1)/(perPatient*np))
	var recs []vitals.Record
	for i := range np {
		cfg := vitals.Shard(vitals.Config{Seed: seed, Patients: per}, i)
		cfg.NoDropout, cfg.NoArtefacts = true, true // over the profile's
		rs, err := vitals.Generate(cfg)
		if err != nil {
			panic(err) // counts of at least 2 and no other field: valid
		}
		recs = append(recs, rs...)
	}
	// Keep n readings, spread over every patient.
	r := rand.New(rand.NewPCG(seed, 5))
	keep := make([]bool, len(recs))
	for k, i := range r.Perm(len(recs)) {
		keep[i] = k < n
	}
	test, patient := false, -1
	f := len(vitals.Fields)
	d := &Data{Name: "vitals", Features: f, Classes: 2, FeatureNames: vitals.Fields}
	glucose := math.NaN()
	for i, rec := range recs {
		if i == 0 || rec.Patient != recs[i-1].Patient {
			glucose = math.NaN()
			patient++
			test = patient%5 == 2
		}
		if !math.IsNaN(rec.Glucose) {
			glucose = rec.Glucose
		}
		if !keep[i] {
			continue
		}
		rec.Glucose = glucose
		if math.IsNaN(glucose) {
			rec.Glucose = 100
		}
		v := rec.Values()
		row := make([]float32, f)
		for j := range row {
			row[j] = float32(v[j])
		}
		if test {
			d.TestX = append(d.TestX, row...)
			d.TestY = append(d.TestY, int32(rec.Label))
		} else {
			d.TrainX = append(d.TrainX, row...)
			d.TrainY = append(d.TrainY, int32(rec.Label))
		}
	}
	d.standardize()
	return d
}
