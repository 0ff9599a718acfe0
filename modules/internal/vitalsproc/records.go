package vitalsproc

import (
	"fmt"
	"math"
	"strconv"
)

// FromMap converts a decoded CBOR record (as `fennec run` makes from a CSV
// row: numbers as float64, missing cells absent) into a Record. Integers,
// numeric strings and an empty string (a blank cell) are accepted; unknown
// keys are ignored. The patient may be a string or a number.
func FromMap(m map[string]any) (Record, error) {
	var r Record
	switch p := m["patient"].(type) {
	case nil:
	case string:
		r.Patient = p
	default:
		f, ok := number(p)
		if !ok {
			return r, fmt.Errorf("patient: unsupported type %T", p)
		}
		r.Patient = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if v, ok := m["t"]; ok && v != nil && v != "" {
		f, ok := number(v)
		if !ok {
			return r, fmt.Errorf("t: %v is not a number", v)
		}
		r.T, r.HasT = f, true
	}
	for i, f := range Fields {
		v, ok := m[f.Key]
		if !ok || v == nil || v == "" {
			continue
		}
		x, ok := number(v)
		if !ok {
			return r, fmt.Errorf("%s: %v is not a number", f.Key, v)
		}
		r.Values[i], r.Present[i] = x, true
	}
	return r, nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// ToMap is the output record: patient, t, each present field's z-score
// under its key, and the de-noised readings in their units under "clean".
func (o *Output) ToMap() map[string]any {
	m := map[string]any{"patient": o.Patient}
	if o.HasT {
		m["t"] = o.T
	}
	clean := map[string]any{}
	for i, f := range Fields {
		if o.Present[i] {
			m[f.Key] = o.Z[i]
			clean[f.Key] = o.Clean[i]
		}
	}
	m["clean"] = clean
	return m
}

// ToMap reports the counts as {"records": n, "missing": {...}, "dropped":
// {...}, "clamped": {...}}.
func (c *Counts) ToMap() map[string]any {
	f := func(a [NumFields]int) map[string]uint64 {
		m := make(map[string]uint64, NumFields)
		for i, fl := range Fields {
			m[fl.Key] = uint64(a[i])
		}
		return m
	}
	return map[string]any{"records": uint64(c.Records), "missing": f(c.Missing), "dropped": f(c.Dropped), "clamped": f(c.Clamped)}
}

// Features returns the model feature vector of a processed record map (as
// ToMap makes): z-scores in Fields order, 0 (the running mean) for a
// missing or non-finite value.
func Features(m map[string]any, dst []float32) []float32 {
	for _, f := range Fields {
		x, ok := number(m[f.Key])
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			x = 0
		}
		dst = append(dst, float32(x))
	}
	return dst
}
