// Command risk-infer scores patients' deterioration risk (entrypoint
// "predict") with a model it receives: input {"model": Model, "records":
// [record, ...]} where records are vitals-preprocess output (its 14
// features: z-scores under hr, sbp, dbp, spo2, rr, temp, glucose; o2 and
// not_alert; the changes from the patient's baseline d_hr, d_sbp, d_spo2,
// d_rr, d_temp; a missing one counts as 0: the running mean, no change). The model is an MLP of (weight [in, out], bias [out])
// pairs with ReLU between layers and one output logit (logistic regression
// is the one-layer case); the risk is sigmoid(logit), computed on the host.
//
// Output: {"scores": [float], "patients": [tstr], "model_hash": tstr,
// "cached": bool}. Uploaded weights stay on the instance as tensor handles,
// keyed by a SHA-256 of the model's tensors, so repeated calls with the same
// model do not upload it again ("cached" reports a hit on this instance).
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/cbor"
	"github.com/fennec-edge/fennec/sdk/nn"
)

type request struct {
	Model    sdk.Model
	Patients []string
	Features []float32 // NumFeatures per record
}

// DecodeCBOR implements cbor.Unmarshaler: records are read straight into
// the feature matrix (vitalsproc.ReadFeatures), without per-record maps.
func (r *request) DecodeCBOR(d *cbor.Decoder) error {
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
			err = r.Model.DecodeCBOR(d)
		case "records":
			err = r.decodeRecords(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return cbor.Field(string(k), err)
		}
	}
	return nil
}

func (r *request) decodeRecords(d *cbor.Decoder) error {
	n, err := d.Array()
	if err != nil {
		return err
	}
	r.Patients = make([]string, 0, cbor.Cap(n))
	r.Features = make([]float32, 0, cbor.Cap(n)*vitalsproc.NumFeatures)
	for i := 0; d.More(&n); i++ {
		var p string
		if p, r.Features, err = vitalsproc.ReadFeatures(d, r.Features); err != nil {
			return cbor.Elem(i, err)
		}
		r.Patients = append(r.Patients, p)
	}
	return nil
}

type response struct {
	Scores    []float64
	Patients  []string
	ModelHash string
	Cached    bool
}

// EncodeCBOR implements cbor.Marshaler (keys in deterministic order).
func (r *response) EncodeCBOR(e *cbor.Encoder) {
	e.Map(4)
	e.Text("cached")
	e.Bool(r.Cached)
	e.Text("scores")
	e.Float64s(r.Scores)
	e.Text("patients")
	e.Strings(r.Patients)
	e.Text("model_hash")
	e.Text(r.ModelHash)
}

// maxCached models stay resident; the least recently used is freed.
const maxCached = 4

type entry struct {
	hash string
	net  *nn.Sequential
	x, p *sdk.Tensor // input and probability buffers for the last batch size
	n    int
}

var cache []*entry // most recently used last

//go:wasmexport predict
func predict(n int32) int32 { return sdk.ServeCBOR(n, handle) }

func modelHash(m *sdk.Model) string {
	h := sha256.New()
	var b [8]byte
	for _, t := range m.Tensors {
		binary.LittleEndian.PutUint64(b[:], uint64(len(t.Name)))
		h.Write(b[:])
		h.Write([]byte(t.Name))
		binary.LittleEndian.PutUint64(b[:], uint64(t.DType))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(len(t.Shape)))
		h.Write(b[:])
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(b[:], d)
			h.Write(b[:])
		}
		binary.LittleEndian.PutUint64(b[:], uint64(len(t.Data)))
		h.Write(b[:])
		h.Write(t.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func lookup(m *sdk.Model) (*entry, bool, error) {
	hash := modelHash(m)
	for i, e := range cache {
		if e.hash == hash {
			cache = append(append(cache[:i:i], cache[i+1:]...), e)
			return e, true, nil
		}
	}
	net, err := nn.FromModel(m, nn.ReLU)
	if err != nil {
		return nil, false, err
	}
	if net.InputSize() != vitalsproc.NumFeatures || net.OutputSize() != 1 {
		net.Free()
		return nil, false, fmt.Errorf("model %q maps %d inputs to %d outputs, want %d to 1", m.Name, net.InputSize(), net.OutputSize(), vitalsproc.NumFeatures)
	}
	if len(cache) == maxCached {
		cache[0].free()
		cache = cache[1:]
	}
	e := &entry{hash: hash, net: net}
	cache = append(cache, e)
	return e, false, nil
}

func (e *entry) free() {
	e.net.Free()
	e.x.Free()
	e.p.Free()
}

func handle(req request) (response, error) {
	e, hit, err := lookup(&req.Model)
	if err != nil {
		return response{}, err
	}
	resp := response{ModelHash: e.hash, Cached: hit, Scores: []float64{}, Patients: req.Patients}
	if resp.Patients == nil {
		resp.Patients = []string{}
	}
	n := len(req.Patients)
	if n == 0 {
		return resp, nil
	}
	feats := req.Features
	if e.n != n {
		e.x.Free()
		e.p.Free()
		e.x, e.p, e.n = nil, nil, 0
		if e.x, err = sdk.Zeros(n, vitalsproc.NumFeatures); err != nil {
			return resp, err
		}
		if e.p, err = sdk.Zeros(n, 1); err != nil {
			return resp, err
		}
		e.n = n
	}
	if err := e.x.Write(feats); err != nil {
		return resp, err
	}
	logits, _, err := e.net.Forward(e.x, []int{n, vitalsproc.NumFeatures})
	if err != nil {
		return resp, err
	}
	if _, err := sdk.Sigmoid(logits, e.p); err != nil {
		return resp, err
	}
	probs, err := e.p.Read(nil)
	if err != nil {
		return resp, err
	}
	resp.Scores = make([]float64, n)
	for i, v := range probs {
		resp.Scores[i] = float64(v)
	}
	return resp, nil
}

func main() {}
