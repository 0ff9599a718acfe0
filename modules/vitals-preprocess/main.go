// Command vitals-preprocess is a fennec guest module (entrypoint "process")
// that cleans, de-noises and z-normalises streams of patient vital signs.
//
// Input (CBOR):
//
//	{"records": [{"patient": tstr, "t": float, "hr": float, "sbp": ..., "dbp": ...,
//	              "spo2": ..., "rr": ..., "temp": ..., "glucose": ...}, ...],
//	 "state": State (optional, from the previous chunk's output),
//	 "window": uint (optional, moving-median window, odd, default 5),
//	 "tolerance": float (optional, clamp band as a fraction of the range, default 0.05)}
//
// Output: {"records": [{"patient", "t", <field>: z-score, "clean": {<field>: value}}],
// "counts": {"records", "missing", "dropped", "clamped"}, "state": State}.
//
// The logic lives in modules/internal/vitalsproc; this file is the thin
// wasm glue.
package main

import (
	"fmt"

	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
	"github.com/fennec-edge/fennec/sdk"
)

type request struct {
	Records   []map[string]any  `cbor:"records"`
	State     *vitalsproc.State `cbor:"state"`
	Window    int               `cbor:"window"`
	Tolerance float64           `cbor:"tolerance"`
}

type response struct {
	Records []map[string]any  `cbor:"records"`
	Counts  map[string]any    `cbor:"counts"`
	State   *vitalsproc.State `cbor:"state"`
}

//go:wasmexport process
func process(n int32) int32 { return sdk.ServeCBOR(n, handle) }

func handle(req request) (response, error) {
	st := req.State
	if st == nil {
		st = &vitalsproc.State{}
	}
	if err := st.Validate(); err != nil {
		return response{}, err
	}
	recs := make([]vitalsproc.Record, len(req.Records))
	for i, m := range req.Records {
		r, err := vitalsproc.FromMap(m)
		if err != nil {
			return response{}, fmt.Errorf("record %d: %w", i, err)
		}
		recs[i] = r
	}
	out, cnt, err := vitalsproc.Process(vitalsproc.Config{Window: req.Window, Tolerance: req.Tolerance}, recs, st)
	if err != nil {
		return response{}, err
	}
	resp := response{Records: make([]map[string]any, len(out)), Counts: cnt.ToMap(), State: st}
	for i := range out {
		resp.Records[i] = out[i].ToMap()
	}
	return resp, nil
}

func main() {}
