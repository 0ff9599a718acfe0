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
	var err error
	if r.Oxygen, err = oxygen(m["o2"]); err != nil {
		return r, err
	}
	if r.NotAlert, err = notAlert(m["acvpu"]); err != nil {
		return r, err
	}
	return r, nil
}

// oxygen reads the "o2" observation: a number (nonzero: on oxygen), a
// bool, a numeric string, or absent/empty (air).
func oxygen(v any) (bool, error) {
	switch x := v.(type) {
	case nil:
		return false, nil
	case bool:
		return x, nil
	case string:
		if x == "" {
			return false, nil
		}
	}
	f, ok := number(v)
	if !ok {
		return false, fmt.Errorf("o2: %v is not a number", v)
	}
	return f != 0, nil
}

// notAlert reads the "acvpu" observation: a letter A, C, V, P or U (any
// case), its index 0-4, or absent/empty (alert).
func notAlert(v any) (bool, error) {
	if s, ok := v.(string); ok {
		switch s {
		case "", "A", "a":
			return false, nil
		case "C", "c", "V", "v", "P", "p", "U", "u":
			return true, nil
		}
	}
	if v == nil {
		return false, nil
	}
	f, ok := number(v)
	if !ok || f < 0 || f > 4 || f != math.Trunc(f) {
		return false, fmt.Errorf("acvpu: %v is not one of A, C, V, P, U (or 0-4)", v)
	}
	return f != 0, nil
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
	m["o2"], m["not_alert"] = b2f(o.Oxygen), b2f(o.NotAlert)
	for j, i := range Trends {
		if o.Present[i] {
			m["d_"+Fields[i].Key] = o.Trend[j]
		}
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
// ToMap makes): its FeatureKeys values in order, 0 (the running mean, no
// change, air, alert) for a missing or non-finite value.
func Features(m map[string]any, dst []float32) []float32 {
	for _, k := range FeatureKeys {
		x, ok := number(m[k])
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			x = 0
		}
		dst = append(dst, float32(x))
	}
	return dst
}
