package sdk

import (
	"math"

	"github.com/fennec-edge/fennec/sdk/cbor"
)

// Hand-written CBOR for the shared structures of docs/ABI.md, so that the
// train/evaluate entrypoints and models decode without reflection. Keys
// are written in deterministic order (shorter first, then bytewise), which
// gives the same bytes as fxamacker/cbor's core deterministic mode
// (tested); unknown keys are skipped and null reads as the zero value.

// EncodeCBOR implements cbor.Marshaler.
func (t *TensorData) EncodeCBOR(e *cbor.Encoder) {
	e.Grow(len(t.Data) + len(t.Name) + 32)
	e.Map(4)
	e.Text("data")
	e.ByteString(t.Data)
	e.Text("name")
	e.Text(t.Name)
	e.Text("dtype")
	e.Int(int64(t.DType))
	e.Text("shape")
	e.Uint64s(t.Shape)
}

// DecodeCBOR implements cbor.Unmarshaler. Only the encoding is checked
// here; Dims validates the shape against the data.
func (t *TensorData) DecodeCBOR(d *cbor.Decoder) error {
	*t = TensorData{}
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
		case "data":
			t.Data, err = d.Bytes()
		case "name":
			t.Name, err = d.Text()
		case "dtype":
			var v int64
			v, err = d.IntRange(math.MinInt32, math.MaxInt32)
			t.DType = DType(v)
		case "shape":
			t.Shape, err = d.Uint64s(nil)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (m *Model) EncodeCBOR(e *cbor.Encoder) {
	e.Map(3)
	e.Text("name")
	e.Text(m.Name)
	e.Text("tensors")
	if m.Tensors == nil {
		e.Null()
	} else {
		e.Array(len(m.Tensors))
		for i := range m.Tensors {
			m.Tensors[i].EncodeCBOR(e)
		}
	}
	e.Text("version")
	e.Uint(m.Version)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (m *Model) DecodeCBOR(d *cbor.Decoder) error {
	*m = Model{}
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
		case "name":
			m.Name, err = d.Text()
		case "version":
			m.Version, err = d.Uint()
		case "tensors":
			err = decodeTensors(d, &m.Tensors)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

func decodeTensors(d *cbor.Decoder, dst *[]TensorData) error {
	if d.Null() {
		*dst = nil
		return nil
	}
	n, err := d.Array()
	if err != nil {
		return err
	}
	ts := make([]TensorData, 0, min(cbor.Cap(n), 1024))
	for i := 0; d.More(&n); i++ {
		ts = append(ts, TensorData{})
		if err := ts[i].DecodeCBOR(d); err != nil {
			return cbor.Elem(i, err)
		}
	}
	*dst = ts
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (s *Settings) EncodeCBOR(e *cbor.Encoder) {
	if s.DP != nil {
		e.Map(7)
		e.Text("dp")
		s.DP.EncodeCBOR(e)
	} else {
		e.Map(6)
	}
	e.Text("lr")
	e.Float64(s.LR)
	e.Text("mu")
	e.Float64(s.Mu)
	e.Text("mode")
	e.Text(s.Mode)
	e.Text("seed")
	e.Uint(s.Seed)
	e.Text("epochs")
	e.Uint(s.Epochs)
	e.Text("batch_size")
	e.Uint(s.BatchSize)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (s *Settings) DecodeCBOR(d *cbor.Decoder) error {
	*s = Settings{}
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
		case "lr":
			s.LR, err = d.Float()
		case "mu":
			s.Mu, err = d.Float()
		case "mode":
			s.Mode, err = d.Text()
		case "seed":
			s.Seed, err = d.Uint()
		case "epochs":
			s.Epochs, err = d.Uint()
		case "batch_size":
			s.BatchSize, err = d.Uint()
		case "dp":
			if d.Null() {
				break
			}
			s.DP = &DPSettings{}
			err = s.DP.DecodeCBOR(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (s *DPSettings) EncodeCBOR(e *cbor.Encoder) {
	e.Map(4)
	e.Text("clip")
	e.Float64(s.Clip)
	e.Text("steps")
	e.Uint(s.Steps)
	e.Text("sampling_rate")
	e.Float64(s.SamplingRate)
	e.Text("noise_multiplier")
	e.Float64(s.NoiseMultiplier)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (s *DPSettings) DecodeCBOR(d *cbor.Decoder) error {
	*s = DPSettings{}
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
		case "clip":
			s.Clip, err = d.Float()
		case "steps":
			s.Steps, err = d.Uint()
		case "sampling_rate":
			s.SamplingRate, err = d.Float()
		case "noise_multiplier":
			s.NoiseMultiplier, err = d.Float()
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (ds *Dataset) EncodeCBOR(e *cbor.Encoder) {
	if ds.Groups != nil {
		e.Map(3)
	} else {
		e.Map(2)
	}
	e.Text("x")
	ds.X.EncodeCBOR(e)
	e.Text("y")
	ds.Y.EncodeCBOR(e)
	if ds.Groups != nil {
		e.Text("groups")
		ds.Groups.EncodeCBOR(e)
	}
}

// DecodeCBOR implements cbor.Unmarshaler.
func (ds *Dataset) DecodeCBOR(d *cbor.Decoder) error {
	*ds = Dataset{}
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
		case "x":
			err = ds.X.DecodeCBOR(d)
		case "y":
			err = ds.Y.DecodeCBOR(d)
		case "groups":
			if d.Null() {
				break
			}
			ds.Groups = &TensorData{}
			err = ds.Groups.DecodeCBOR(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (in *TrainInput) EncodeCBOR(e *cbor.Encoder) {
	e.Map(4)
	e.Text("data")
	in.Data.EncodeCBOR(e)
	e.Text("model")
	in.Model.EncodeCBOR(e)
	e.Text("round")
	e.Uint(in.Round)
	e.Text("settings")
	in.Settings.EncodeCBOR(e)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (in *TrainInput) DecodeCBOR(d *cbor.Decoder) error {
	*in = TrainInput{}
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
		case "data":
			err = in.Data.DecodeCBOR(d)
		case "model":
			err = in.Model.DecodeCBOR(d)
		case "round":
			in.Round, err = d.Uint()
		case "settings":
			err = in.Settings.DecodeCBOR(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (out *TrainOutput) EncodeCBOR(e *cbor.Encoder) {
	e.Map(3)
	e.Text("model")
	out.Model.EncodeCBOR(e)
	e.Text("metrics")
	cbor.EncodeMap(e, out.Metrics, cbor.EncodeFloat64)
	e.Text("num_examples")
	e.Uint(out.NumExamples)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (out *TrainOutput) DecodeCBOR(d *cbor.Decoder) error {
	*out = TrainOutput{}
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
		case "model":
			err = out.Model.DecodeCBOR(d)
		case "metrics":
			out.Metrics, err = cbor.DecodeMap(d, cbor.DecodeFloat64)
		case "num_examples":
			out.NumExamples, err = d.Uint()
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (in *EvalInput) EncodeCBOR(e *cbor.Encoder) {
	e.Map(2)
	e.Text("data")
	in.Data.EncodeCBOR(e)
	e.Text("model")
	in.Model.EncodeCBOR(e)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (in *EvalInput) DecodeCBOR(d *cbor.Decoder) error {
	*in = EvalInput{}
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
		case "data":
			err = in.Data.DecodeCBOR(d)
		case "model":
			err = in.Model.DecodeCBOR(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

// EncodeCBOR implements cbor.Marshaler.
func (out *EvalOutput) EncodeCBOR(e *cbor.Encoder) {
	e.Map(2)
	e.Text("metrics")
	cbor.EncodeMap(e, out.Metrics, cbor.EncodeFloat64)
	e.Text("num_examples")
	e.Uint(out.NumExamples)
}

// DecodeCBOR implements cbor.Unmarshaler.
func (out *EvalOutput) DecodeCBOR(d *cbor.Decoder) error {
	*out = EvalOutput{}
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
		case "metrics":
			out.Metrics, err = cbor.DecodeMap(d, cbor.DecodeFloat64)
		case "num_examples":
			out.NumExamples, err = d.Uint()
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}
