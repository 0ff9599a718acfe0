// Command vitals-preprocess is a fennec guest module (entrypoint "process")
// that cleans, de-noises and z-normalises streams of patient vital signs.
//
// Input (CBOR):
//
//	{"records": [{"patient": tstr, "t": float, "hr": float, "sbp": ..., "dbp": ...,
//	              "spo2": ..., "rr": ..., "temp": ..., "glucose": ...,
//	              "o2": 0|1, "acvpu": "A"|"C"|"V"|"P"|"U"}, ...],
//	 "state": State (optional, from the previous chunk's output),
//	 "window": uint (optional, moving-median window, odd, default 5),
//	 "tolerance": float (optional, clamp band as a fraction of the range, default 0.05)}
//
// Output: {"records": [{"patient", "t", <field>: z-score, "o2": 0|1, "not_alert": 0|1,
// "d_<field>": change from the patient's baseline (hr, sbp, spo2, rr, temp),
// "clean": {<field>: value}}],
// "counts": {"records", "missing", "dropped", "clamped"}, "state": State}.
//
// The logic lives in modules/internal/vitalsproc; this file is the thin
// wasm glue.
package main

import (
	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/sdk"
)

// The request and response types implement sdk/cbor's Marshaler and
// Unmarshaler (modules/internal/vitalsproc/cbor.go): records are decoded
// straight into vitalsproc.Record values, without reflection or
// map[string]any.

//go:wasmexport process
func process(n int32) int32 { return sdk.ServeCBOR(n, handle) }

func handle(req vitalsproc.Request) (vitalsproc.Response, error) {
	st := req.State
	if st == nil {
		st = &vitalsproc.State{}
	}
	if err := st.Validate(); err != nil {
		return vitalsproc.Response{}, err
	}
	out, cnt, err := vitalsproc.Process(vitalsproc.Config{Window: req.Window, Tolerance: req.Tolerance}, req.Records, st)
	if err != nil {
		return vitalsproc.Response{}, err
	}
	return vitalsproc.Response{Records: out, Counts: cnt, State: st}, nil
}

func main() {}
