package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/sdk"
)

// writeModel writes m as the CBOR file risk-infer's "model" field takes,
// atomically (as a device replacing its model would).
func writeModel(t *testing.T, path string, m sdk.Model) {
	t.Helper()
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type scored struct {
	Scores   []float64 `cbor:"scores"`
	Patients []string  `cbor:"patients"`
}

// TestPipelinePreprocessThenRisk chains vitals-preprocess and risk-infer
// on one binding, the model injected from a file: the scores equal those
// of the two calls made by hand; a new model file is served on the next
// request after it changes; a broken one keeps the last good model.
func TestPipelinePreprocessThenRisk(t *testing.T) {
	pre, risk := module(t, "vitals-preprocess"), module(t, "risk-infer")
	ctx := context.Background()
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "risk.cbor")
	m1 := riskModel()
	writeModel(t, modelPath, m1)
	src := fmt.Sprintf(`
device = "ward3"
[[binding]]
name = "score"
module = "vitals-preprocess"
entry = "process"
source = "http"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = %q }
`, modelPath)
	_, reg, url := startServer(t, src, map[string]Module{
		"vitals-preprocess": NewCompiled(ctx, pre, time.Second), "risk-infer": NewCompiled(ctx, risk, time.Second)}, nil)
	readings := map[string]any{"records": []map[string]any{
		{"patient": "p1", "t": 0.0, "hr": 118.0, "sbp": 95.0, "dbp": 60.0, "spo2": 91.0, "rr": 26.0, "temp": 38.4, "o2": 1, "acvpu": "A"},
		{"patient": "p2", "t": 0.0, "hr": 72.0, "sbp": 125.0, "dbp": 80.0, "spo2": 98.0, "rr": 14.0, "temp": 36.8, "o2": 0, "acvpu": "A"},
	}}
	in := mustCBOR(t, readings)
	byHand := func(m sdk.Model) []float64 {
		t.Helper()
		out, err := pre.Call(ctx, "process", in)
		if err != nil {
			t.Fatal(err)
		}
		var po map[string]any
		if err := cbor.Unmarshal(out, &po); err != nil {
			t.Fatal(err)
		}
		out, err = risk.Call(ctx, "predict", mustCBOR(t, map[string]any{"model": m, "records": po["records"]}))
		if err != nil {
			t.Fatal(err)
		}
		var s scored
		if err := cbor.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		return s.Scores
	}
	served := func() scored {
		t.Helper()
		st, body := post(t, url+"/v1/modules/vitals-preprocess/process", MediaCBOR, in)
		if st != 200 {
			t.Fatalf("status %d: %s", st, body)
		}
		var s scored
		if err := cbor.Unmarshal(body, &s); err != nil {
			t.Fatalf("%v: %x", err, body)
		}
		return s
	}
	want := byHand(m1)
	got := served()
	if fmt.Sprint(got.Scores) != fmt.Sprint(want) || strings.Join(got.Patients, ",") != "p1,p2" {
		t.Fatalf("pipeline scores %v for %v, by hand %v", got.Scores, got.Patients, want)
	}
	for _, mod := range []string{"vitals-preprocess", "risk-infer"} {
		if n := metric(t, reg, "fennec_module_calls_total", "module", mod, "entry", map[string]string{"vitals-preprocess": "process", "risk-infer": "predict"}[mod], "outcome", "ok"); n != 1 {
			t.Errorf("%s: %v ok calls counted", mod, n)
		}
	}

	// A new model: served once the file has changed (checked once a second).
	m2 := riskModel()
	w, err := m2.Tensors[0].F32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		w[i] = -w[i]
	}
	m2.Tensors[0] = sdk.F32Data("0.weight", []int{riskFeatures, 1}, w)
	writeModel(t, modelPath, m2)
	want2 := byHand(m2)
	testutil.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if got := served().Scores; fmt.Sprint(got) != fmt.Sprint(want2) {
			return fmt.Errorf("scores %v, want the new model's %v", got, want2)
		}
		return nil
	})

	// A broken model file: the last good model keeps serving.
	if err := os.WriteFile(modelPath, []byte{0xbf, 0x61}, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(reloadEvery + 100*time.Millisecond) // past the next check
	if got := served().Scores; fmt.Sprint(got) != fmt.Sprint(want2) {
		t.Fatalf("after a broken model file: %v, want the last good model's %v", got, want2)
	}
}

// A step whose input is not a map fails the request with a reason, is
// counted, and the server keeps serving.
func TestPipelineNotAMap(t *testing.T) {
	probe := module(t, "probe")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(path, []byte(`{"a": 1}`), 0o600)
	src := fmt.Sprintf(`
[[binding]]
module = "probe"
entry = "echo"
source = "http"
  [[binding.then]]
  module = "probe"
  entry = "echo"
  inject = { extra = %q }
`, path)
	_, reg, url := startServer(t, src, map[string]Module{"probe": NewCompiled(ctx, probe, time.Second)}, nil)
	st, body := post(t, url+"/v1/modules/probe/echo", MediaCBOR, []byte{0x18, 0x2a})
	if st != 500 || !strings.Contains(string(body), "not a CBOR map") {
		t.Fatalf("status %d: %s", st, body)
	}
	if n := metric(t, reg, "fennec_module_calls_total", "module", "probe", "entry", "echo", "outcome", "error"); n != 1 {
		t.Fatalf("%v error calls counted", n)
	}
	// A map passes, with the injected field.
	st, body = post(t, url+"/v1/modules/probe/echo", MediaJSON, []byte(`{"b": 2}`))
	if st != 200 || string(body) != `{"b":2,"extra":{"a":1}}` {
		t.Fatalf("status %d: %s", st, body)
	}
}

// Pipeline configuration errors name the field, and a missing or invalid
// inject file is refused at New, naming the binding, step and field.
func TestPipelineConfigErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding.then]]\nmodule = \"B!\"\nentry = \"e\"\n", `test.toml:6: field "binding[0].then[0].module"`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding.then]]\nmodule = \"b\"\nentry = \"9e\"\n", `test.toml:7: field "binding[0].then[0].entry"`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding.then]]\nmodule = \"b\"\nentry = \"e\"\ninject = { \"a-b\" = \"f\" }\n", `test.toml:8: field "binding[0].then[0].inject": "a-b" is not a field name`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding.then]]\nmodule = \"b\"\nentry = \"e\"\ninject = { m = \"\" }\n", `test.toml:8: field "binding[0].then[0].inject.m": needs the path`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\ncarry = \"state\"\n", `test.toml:5: field "binding[0].carry": an http binding has no subject`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"x\"\ncarry = \"st-ate\"\n", `field "binding[0].carry": "st-ate" is not a field name`},
		{"[[binding]]\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n" + strings.Repeat("[[binding.then]]\nmodule = \"b\"\nentry = \"e\"\n", MaxSteps+1), `field "binding[0].then": 9 steps; at most 8`},
	} {
		_, err := ParseDeviceConfig([]byte(c.src), "test.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"a": `), 0o600)
	os.WriteFile(filepath.Join(dir, "ok.cbor"), []byte{0xa0}, 0o600)
	stub := map[string]Module{"a": notReady{}, "b": notReady{}}
	for _, c := range []struct{ inject, module, want string }{
		{"missing.cbor", "b", "binding[0].then[0].inject.m: open " + filepath.Join(dir, "missing.cbor")},
		{"bad.json", "b", "binding[0].then[0].inject.m: " + filepath.Join(dir, "bad.json") + ": malformed request body: JSON"},
		{"ok.cbor", "c", `binding[0].then[0] (x): module "c" is not loaded`},
	} {
		src := fmt.Sprintf("[[binding]]\nname = \"x\"\nmodule = \"a\"\nentry = \"e\"\nsource = \"http\"\n[[binding.then]]\nmodule = %q\nentry = \"e\"\ninject = { m = %q }\n", c.module, c.inject)
		dc, err := ParseDeviceConfig([]byte(src), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		// Relative inject paths resolve from Config.Dir.
		_, err = New(Config{Device: dc, Modules: stub, Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inject %s: error %v, want %q", c.inject, err, c.want)
		}
	}
	// An oversized inject file is refused.
	big := filepath.Join(dir, "big.cbor")
	if err := os.WriteFile(big, make([]byte, MaxInjectBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readInject(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized inject file: %v", err)
	}
	if _, _, err := readInject(dir); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory as inject file: %v", err)
	}
}

// TestPipelineCarry scores a stream of single readings over NATS, each
// message one reading as a bedside monitor sends it: with carry =
// "state" each bed's readings are normalised against that bed's history
// (the scores equal a by-hand run that threads the state through), and
// another bed starts afresh; without carry every reading stands alone.
func TestPipelineCarry(t *testing.T) {
	pre, risk := module(t, "vitals-preprocess"), module(t, "risk-infer")
	ctx := context.Background()
	nc, _, _ := natsServer(t)
	modelPath := filepath.Join(t.TempDir(), "risk.cbor")
	m := riskModel()
	writeModel(t, modelPath, m)
	src := fmt.Sprintf(`
device = "ward3"
[[binding]]
name = "score"
module = "vitals-preprocess"
entry = "process"
source = "nats"
subject = "vitals.bed.*"
carry = "state"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = %q }
`, modelPath)
	_, _, _ = startServer(t, src, map[string]Module{
		"vitals-preprocess": NewCompiled(ctx, pre, time.Second), "risk-infer": NewCompiled(ctx, risk, time.Second)}, nc)
	// A patient deteriorating over ten readings.
	reading := func(i int) map[string]any {
		return map[string]any{"patient": "p1", "t": float64(i) * 0.25, "hr": 80.0 + 5*float64(i), "sbp": 125.0 - 3*float64(i),
			"dbp": 80.0, "spo2": 98.0 - 0.6*float64(i), "rr": 14.0 + float64(i), "temp": 36.8 + 0.1*float64(i), "o2": 0, "acvpu": "A"}
	}
	var want []float64
	var state any
	for i := range 10 {
		in := map[string]any{"records": []any{reading(i)}}
		if state != nil {
			in["state"] = state
		}
		out, err := pre.Call(ctx, "process", mustCBOR(t, in))
		if err != nil {
			t.Fatal(err)
		}
		var po map[string]any
		if err := cbor.Unmarshal(out, &po); err != nil {
			t.Fatal(err)
		}
		state = po["state"]
		out, err = risk.Call(ctx, "predict", mustCBOR(t, map[string]any{"model": m, "records": po["records"]}))
		if err != nil {
			t.Fatal(err)
		}
		var s scored
		if err := cbor.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.Scores[0])
	}
	ask := func(subject string, i int) float64 {
		t.Helper()
		msg, err := nc.Request(subject, mustCBOR(t, map[string]any{"records": []any{reading(i)}}), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var s scored
		if err := cbor.Unmarshal(msg.Data, &s); err != nil || len(s.Scores) != 1 {
			t.Fatalf("%s: %v: %x", subject, err, msg.Data)
		}
		return s.Scores[0]
	}
	var got []float64
	for i := range 10 {
		got = append(got, ask("vitals.bed.7", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("carried scores %v, by hand %v", got, want)
	}
	distinct := map[float64]bool{}
	for _, v := range got {
		distinct[v] = true
	}
	if len(distinct) < 5 {
		t.Fatalf("a deteriorating patient's scores barely change: %v", got)
	}
	// Bed 8 has no history: its reading 9 scores as a first reading would.
	if first := ask("vitals.bed.8", 9); first == want[9] {
		t.Fatalf("bed 8 scored with bed 7's history: %v", first)
	}
}

// The carried state is bounded: subjects beyond MaxCarryKeys evict the
// oldest, an oversized state is not kept, an output without the field
// forgets the subject, and a non-map message with state is refused.
func TestCarrierBounds(t *testing.T) {
	c := newCarrier("state", slog.New(slog.DiscardHandler))
	withState := func(v any) []byte { return mustCBOR(t, map[string]any{"state": v, "x": 1}) }
	for i := range MaxCarryKeys + 10 {
		c.output(fmt.Sprint("s.", i), withState(i))
	}
	if c.keys() != MaxCarryKeys {
		t.Fatalf("%d subjects kept", c.keys())
	}
	if in, _ := c.input("s.0", mustCBOR(t, map[string]any{})); len(in) != 1 { // evicted: the input as is (empty map)
		t.Fatalf("evicted subject still has state: %x", in)
	}
	in, err := c.input("s.20", mustCBOR(t, map[string]any{"y": 2}))
	var m map[string]any
	if err != nil || cbor.Unmarshal(in, &m) != nil || fmt.Sprint(m) != "map[state:20 y:2]" {
		t.Fatalf("input %v (%v)", m, err)
	}
	if _, err := c.input("s.20", []byte{0x18, 0x2a}); err == nil {
		t.Fatal("a non-map message got state")
	}
	c.output("s.20", withState(string(make([]byte, MaxCarryBytes+1))))
	c.output("s.21", mustCBOR(t, map[string]any{"x": 1}))
	for _, k := range []string{"s.20", "s.21"} {
		if in, _ := c.input(k, mustCBOR(t, map[string]any{})); len(in) != 1 {
			t.Fatalf("%s kept state", k)
		}
	}
	if c.keys() != MaxCarryKeys-2 {
		t.Fatalf("%d subjects kept", c.keys())
	}
}
