package vitalsproc

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fennec-edge/fennec/sdk/cbor"
)

// CBOR for the vitals-preprocess entrypoint, written against sdk/cbor so
// that records go straight from bytes into Record values (no
// map[string]any per record). The accepted input is exactly what FromMap
// accepts and the output bytes equal those of ToMap encoded
// deterministically (both tested).

// Request is the input of the process entrypoint.
type Request struct {
	Records   []Record
	State     *State  // nil: start fresh
	Window    int     // 0: default
	Tolerance float64 // 0: default
}

// DecodeCBOR implements cbor.Unmarshaler.
func (r *Request) DecodeCBOR(d *cbor.Decoder) error {
	*r = Request{}
	n, err := d.Map()
	if err != nil {
		return err
	}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			return err
		}
		switch string(k) {
		case "records":
			err = r.decodeRecords(d)
		case "state":
			if d.Null() {
				r.State = nil
				continue
			}
			r.State = &State{}
			err = r.State.DecodeCBOR(d)
		case "window":
			var w int64
			w, err = d.IntRange(math.MinInt32, math.MaxInt32)
			r.Window = int(w)
		case "tolerance":
			r.Tolerance, err = d.Float()
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

func (r *Request) decodeRecords(d *cbor.Decoder) error {
	n, err := d.Array()
	if err != nil {
		return err
	}
	r.Records = make([]Record, 0, cbor.Cap(n))
	for i := 0; d.More(&n); i++ {
		r.Records = append(r.Records, Record{})
		if err := r.Records[i].DecodeCBOR(d); err != nil {
			return cbor.Elem(i, err)
		}
	}
	return nil
}

// DecodeCBOR implements cbor.Unmarshaler with FromMap's rules: the patient
// is a string or a number; t and the readings are numbers or numeric
// strings, and a null, an empty string or an absent key is a missing
// reading; unknown keys are ignored.
func (r *Record) DecodeCBOR(d *cbor.Decoder) error {
	*r = Record{}
	n, err := d.Map()
	if err != nil {
		return err
	}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			return err
		}
		key := string(k) // no allocation in the comparisons below
		switch {
		case key == "patient":
			r.Patient, err = decodePatient(d)
		case key == "t":
			r.T, r.HasT, err = decodeReading(d)
		case key == "o2" || key == "acvpu":
			var v any
			if v, err = d.Any(); err == nil {
				if key == "o2" {
					r.Oxygen, err = oxygen(v)
				} else {
					r.NotAlert, err = notAlert(v)
				}
			}
		default:
			i := FieldIndex(key)
			if i < 0 {
				err = d.Skip()
				break
			}
			r.Values[i], r.Present[i], err = decodeReading(d)
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

func decodePatient(d *cbor.Decoder) (string, error) {
	switch d.Peek() {
	case cbor.KindText:
		return d.Text()
	case cbor.KindNull:
		d.Null()
		return "", nil
	case cbor.KindUint, cbor.KindNegInt, cbor.KindFloat:
		f, err := d.Float()
		return strconv.FormatFloat(f, 'f', -1, 64), err
	}
	v, err := d.Any()
	if err != nil {
		return "", err
	}
	return "", fmt.Errorf("unsupported type %T", v)
}

// decodeReading reads a number, a numeric string, or a missing reading
// (null, undefined or "").
func decodeReading(d *cbor.Decoder) (float64, bool, error) {
	switch d.Peek() {
	case cbor.KindUint, cbor.KindNegInt, cbor.KindFloat:
		f, err := d.Float()
		return f, err == nil, err
	case cbor.KindNull:
		d.Null()
		return 0, false, nil
	case cbor.KindText:
		s, err := d.Text()
		if err != nil || s == "" {
			return 0, false, err
		}
		f, perr := strconv.ParseFloat(s, 64)
		if perr != nil {
			return 0, false, fmt.Errorf("%s is not a number", s)
		}
		return f, true, nil
	}
	v, err := d.Any()
	if err != nil {
		return 0, false, err
	}
	return 0, false, fmt.Errorf("%v is not a number", v)
}

// outKeys are the keys of an output record in deterministic order, as
// field indices (0..NumFields-1) or the special keys below.
var outKeys = func() []int {
	names := append([]string{"t", "clean", "patient"}, FeatureKeys...)
	cbor.SortKeys(names)
	idx := make([]int, len(names))
	for i, n := range names {
		switch n {
		case "t":
			idx[i] = keyT
		case "clean":
			idx[i] = keyClean
		case "patient":
			idx[i] = keyPatient
		case "o2":
			idx[i] = keyO2
		case "not_alert":
			idx[i] = keyNotAlert
		default:
			if f := FieldIndex(n); f >= 0 {
				idx[i] = f
				break
			}
			for j, f := range Trends {
				if n == "d_"+Fields[f].Key {
					idx[i] = keyTrend - j
				}
			}
		}
	}
	return idx
}()

const (
	keyT        = -1
	keyClean    = -2
	keyPatient  = -3
	keyO2       = -4
	keyNotAlert = -5
	keyTrend    = -10 // keyTrend - j for Trends[j]
)

// fieldOrder is Fields' indices in deterministic key order.
var fieldOrder = func() []int {
	var o []int
	for _, k := range outKeys {
		if k >= 0 {
			o = append(o, k)
		}
	}
	return o
}()

// EncodeCBOR implements cbor.Marshaler: the record ToMap describes.
func (o *Output) EncodeCBOR(e *cbor.Encoder) {
	n, present := 4, 0
	for _, p := range o.Present {
		if p {
			present++
		}
	}
	n += present
	for _, i := range Trends {
		if o.Present[i] {
			n++
		}
	}
	if o.HasT {
		n++
	}
	e.Map(n)
	for _, k := range outKeys {
		switch k {
		case keyT:
			if o.HasT {
				e.Text("t")
				e.Float64(o.T)
			}
		case keyClean:
			e.Text("clean")
			e.Map(present)
			for _, i := range fieldOrder {
				if o.Present[i] {
					e.Text(Fields[i].Key)
					e.Float64(o.Clean[i])
				}
			}
		case keyPatient:
			e.Text("patient")
			e.Text(o.Patient)
		case keyO2:
			e.Text("o2")
			e.Float64(b2f(o.Oxygen))
		case keyNotAlert:
			e.Text("not_alert")
			e.Float64(b2f(o.NotAlert))
		default:
			if k <= keyTrend {
				j := keyTrend - k
				if i := Trends[j]; o.Present[i] {
					e.Text("d_" + Fields[i].Key)
					e.Float64(o.Trend[j])
				}
				break
			}
			if o.Present[k] {
				e.Text(Fields[k].Key)
				e.Float64(o.Z[k])
			}
		}
	}
}

// EncodeCBOR implements cbor.Marshaler: the map ToMap describes.
func (c *Counts) EncodeCBOR(e *cbor.Encoder) {
	tally := func(name string, a *[NumFields]int) {
		e.Text(name)
		e.Map(NumFields)
		for _, i := range fieldOrder {
			e.Text(Fields[i].Key)
			e.Uint(uint64(a[i]))
		}
	}
	e.Map(4)
	tally("clamped", &c.Clamped)
	tally("dropped", &c.Dropped)
	tally("missing", &c.Missing)
	e.Text("records")
	e.Uint(uint64(c.Records))
}

// EncodeCBOR implements cbor.Marshaler.
func (w *Welford) EncodeCBOR(e *cbor.Encoder) {
	e.Map(3)
	e.Text("n")
	e.Uint(w.N)
	e.Text("m2")
	e.Float64(w.M2)
	e.Text("mean")
	e.Float64(w.Mean)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (w *Welford) DecodeCBOR(d *cbor.Decoder) error {
	*w = Welford{}
	n, err := d.Map()
	if err != nil {
		return err
	}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			return err
		}
		switch string(k) {
		case "n":
			w.N, err = d.Uint()
		case "m2":
			w.M2, err = d.Float()
		case "mean":
			w.Mean, err = d.Float()
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

func encodeWelford(e *cbor.Encoder, w Welford) { w.EncodeCBOR(e) }

func decodeWelford(d *cbor.Decoder) (Welford, error) {
	var w Welford
	err := w.DecodeCBOR(d)
	return w, err
}

func encodeBaselines(e *cbor.Encoder, m map[string]Welford) { cbor.EncodeMap(e, m, encodeWelford) }

func decodeBaselines(d *cbor.Decoder) (map[string]Welford, error) {
	return cbor.DecodeMap(d, decodeWelford)
}

func encodeHistory(e *cbor.Encoder, m map[string][]float64) {
	cbor.EncodeMap(e, m, cbor.EncodeFloat64s)
}

func decodeHistory(d *cbor.Decoder) (map[string][]float64, error) {
	return cbor.DecodeMap(d, cbor.DecodeFloat64s)
}

// EncodeCBOR implements cbor.Marshaler.
func (s *State) EncodeCBOR(e *cbor.Encoder) {
	e.Map(3)
	e.Text("stats")
	cbor.EncodeMap(e, s.Stats, encodeWelford)
	e.Text("recent")
	cbor.EncodeMap(e, s.Recent, encodeHistory)
	e.Text("baseline")
	cbor.EncodeMap(e, s.Baseline, encodeBaselines)
}

// DecodeCBOR implements cbor.Unmarshaler (Validate checks the content).
func (s *State) DecodeCBOR(d *cbor.Decoder) error {
	*s = State{}
	n, err := d.Map()
	if err != nil {
		return err
	}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			return err
		}
		switch string(k) {
		case "stats":
			s.Stats, err = cbor.DecodeMap(d, decodeWelford)
		case "recent":
			s.Recent, err = cbor.DecodeMap(d, decodeHistory)
		case "baseline":
			s.Baseline, err = cbor.DecodeMap(d, decodeBaselines)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// Response is the output of the process entrypoint.
type Response struct {
	Records []Output
	Counts  Counts
	State   *State
}

// EncodeCBOR implements cbor.Marshaler.
func (r *Response) EncodeCBOR(e *cbor.Encoder) {
	e.Grow(len(r.Records) * 160)
	e.Map(3)
	e.Text("state")
	e.Encode(r.State)
	e.Text("counts")
	r.Counts.EncodeCBOR(e)
	e.Text("records")
	e.Array(len(r.Records))
	for i := range r.Records {
		r.Records[i].EncodeCBOR(e)
	}
}

// ReadFeatures reads one preprocessed record (as the process entrypoint
// outputs it) for scoring: its patient and its features appended to dst in
// FeatureKeys order, as Features does for a decoded map (0 for a missing,
// non-numeric or non-finite value; other keys are skipped). A non-text
// patient is formatted with fmt.Sprint as the map-based path did.
func ReadFeatures(d *cbor.Decoder, dst []float32) (patient string, feats []float32, err error) {
	base := len(dst)
	dst = append(dst, make([]float32, NumFeatures)...)
	n, err := d.Map()
	if err != nil {
		return "", dst, err
	}
	for d.More(&n) {
		k, err := d.Key()
		if err != nil {
			return "", dst, err
		}
		key := string(k)
		if key == "patient" {
			if d.Peek() == cbor.KindText {
				patient, err = d.Text()
			} else {
				var v any
				if v, err = d.Any(); err == nil && v != nil {
					patient = fmt.Sprint(v)
				}
			}
		} else if i := FeatureIndex(key); i >= 0 {
			var x float64
			switch d.Peek() {
			case cbor.KindUint, cbor.KindNegInt, cbor.KindFloat:
				x, err = d.Float()
			case cbor.KindText:
				var s string
				if s, err = d.Text(); err == nil {
					x, _ = strconv.ParseFloat(s, 64)
				}
			default:
				err = d.Skip()
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				x = 0
			}
			dst[base+i] = float32(x)
		} else {
			err = d.Skip()
		}
		if err != nil {
			return "", dst, cbor.Field(string(k), err)
		}
	}
	return patient, dst, nil
}
