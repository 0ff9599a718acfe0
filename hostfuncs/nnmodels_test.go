package hostfuncs_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/nn/onnx"
	"google.golang.org/protobuf/encoding/protowire"
)

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// nnEnvWith is nnEnv on a model set of the test's own.
func nnEnvWith(t testing.TB, set *hostfuncs.ModelSet, cfg hostfuncs.InstanceConfig) *env {
	t.Helper()
	cfg.Services = &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: set}}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return newEnv(t, cfg)
}

// TestNNPinnedDigest: a model pinned by the manifest loads only when its
// bytes hash to the pin, in both groups; the refusal names the model, its
// file, the expected and the actual digest; the instance keeps serving.
func TestNNPinnedDigest(t *testing.T) {
	addSum := fileSHA256(t, "testdata/nn/add.onnx")
	wrong := fileSHA256(t, "testdata/nn/mul.onnx")
	if got := models(t).Get("add").SHA256; got != addSum {
		t.Fatalf("ModelSet digest of add.onnx = %s, want %s", got, addSum)
	}
	good := nnEnv(t, hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"add"}, SHA256: map[string]string{"add": addSum}}})
	if r, _ := good.loadByName("add"); r != 0 {
		t.Fatalf("pinned load_by_name = %d: %s", r, good.host.LastError())
	}
	if g := good.graphLoad("add"); g <= 0 {
		t.Fatalf("pinned graph_load = %d: %s", g, good.host.LastError())
	}
	e := nnEnv(t, hostfuncs.InstanceConfig{Module: "pinned", NN: hostfuncs.NNConfig{Models: []string{"add", "cast"}, SHA256: map[string]string{"add": wrong}}})
	for _, want := range []string{`model "add"`, "testdata/nn/add.onnx", "has SHA-256 " + addSum, "pinned pins " + wrong} {
		if r, _ := e.loadByName("add"); hostfuncs.Errno(r) != hostfuncs.NNRuntimeError || !strings.Contains(e.host.LastError(), want) {
			t.Errorf("load_by_name of a mismatched model = %d (%s), want runtime-error saying %q", r, e.host.LastError(), want)
		}
		if r := e.graphLoad("add"); hostfuncs.Code(r) != hostfuncs.EDENIED || !strings.Contains(e.host.LastError(), want) {
			t.Errorf("graph_load of a mismatched model = %d (%s), want EDENIED saying %q", r, e.host.LastError(), want)
		}
	}
	if _, b := e.host.Stats(); b != 0 {
		t.Fatalf("refused loads left %d bytes counted", b)
	}
	// An unpinned granted model still loads.
	if g := e.graphLoad("cast"); g <= 0 {
		t.Fatalf("unpinned graph_load = %d: %s", g, e.host.LastError())
	}
}

// testdata/nn/mul.onnx is add.onnx with its one node's op_type set to Mul
// (python: m = onnx.load("add.onnx"); m.graph.node[0].op_type = "Mul";
// onnx.save(m, "mul.onnx")): the same inputs and output, another answer.

// TestNNHotSwap: four instances load, run and free graphs of a model while
// it is replaced (add <-> mul) many times. Every answer is a whole model's
// (all add or all mul), a graph opened before the swaps keeps the model it
// opened, and the replaced models' memory is released once their last
// graph is freed.
func TestNNHotSwap(t *testing.T) {
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	defer set.Close()
	addP := hostfuncs.Preload{Name: "m", Encoding: "onnx", Target: "cpu", Path: "testdata/nn/add.onnx"}
	mulP := hostfuncs.Preload{Name: "m", Encoding: "onnx", Target: "cpu", Path: "testdata/nn/mul.onnx"}
	if err := set.Add(addP); err != nil {
		t.Fatal(err)
	}
	first := set.Get("m")
	var mulWant []float32
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				mulWant = append(mulWant, addA[4*i+k]*addB[j])
			}
		}
	}
	cfg := hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"m"}}}
	const workers = 4
	envs := make([]*env, workers+1)
	for i := range envs {
		envs[i] = nnEnvWith(t, set, cfg)
	}
	// The long-lived graph, opened on the first model.
	held := envs[workers]
	r, hg := held.loadByName("m")
	if r != 0 {
		t.Fatal(held.host.LastError())
	}
	r, hc := held.initCtx(hg)
	if r != 0 || held.setInput(hc, 0, typF32, []int32{2, 1, 4}, addA) != 0 || held.setInput(hc, 1, typF32, []int32{3, 1}, addB) != 0 {
		t.Fatal(held.host.LastError())
	}
	which := func(got []float32) string {
		isAdd, isMul := true, true
		want := addWant()
		for i := range got {
			isAdd = isAdd && got[i] == want[i]
			isMul = isMul && got[i] == mulWant[i]
		}
		switch {
		case isAdd:
			return "add"
		case isMul:
			return "mul"
		}
		return "mix"
	}
	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		seen     [2]atomic.Int64
		retired  []*hostfuncs.SharedModel
		swapsErr error
	)
	wg.Add(1)
	go func() { // the operator swapping the model
		defer wg.Done()
		defer stop.Store(true)
		for i := 0; i < 60; i++ {
			p := mulP
			if i%2 == 1 {
				p = addP
			}
			old, err := set.Replace(p)
			if err != nil {
				swapsErr = err
				return
			}
			retired = append(retired, old)
		}
	}()
	for w := 0; w < workers; w++ {
		e := envs[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load() || n < 20; n++ {
				r, g := e.loadByName("m")
				if r != 0 {
					t.Errorf("load_by_name = %d: %s", r, e.host.LastError())
					return
				}
				r, c := e.initCtx(g)
				if r != 0 || e.setInput(c, 0, typF32, []int32{2, 1, 4}, addA) != 0 || e.setInput(c, 1, typF32, []int32{3, 1}, addB) != 0 {
					t.Errorf("setting up a context: %s", e.host.LastError())
					return
				}
				// Two computes on one graph answer from the same model.
				var got [2]string
				for k := range got {
					if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); r != 0 {
						t.Errorf("compute = %d: %s", r, e.host.LastError())
						return
					}
					if r := e.call("wasi_ephemeral_nn_get_output", uint64(c), 0, nnOutAt, 96, writtenAt); r != 0 {
						t.Errorf("get_output = %d: %s", r, e.host.LastError())
						return
					}
					got[k] = which(floats(e.get(nnOutAt, 96)))
				}
				if got[0] == "mix" || got[0] != got[1] {
					t.Errorf("one graph answered %v", got)
					return
				}
				if got[0] == "add" {
					seen[0].Add(1)
				} else {
					seen[1].Add(1)
				}
				if e.call("wasi_ephemeral_nn_fini_single", uint64(c)) != 0 || e.call("wasi_ephemeral_nn_unload", uint64(g)) != 0 {
					t.Errorf("freeing: %s", e.host.LastError())
					return
				}
			}
		}()
	}
	wg.Wait()
	if swapsErr != nil {
		t.Fatal(swapsErr)
	}
	if t.Failed() {
		return
	}
	t.Logf("answers: %d add, %d mul over 60 swaps", seen[0].Load(), seen[1].Load())
	// The graph opened before the swaps still runs the first model.
	if held.call("wasi_ephemeral_nn_compute", uint64(hc)) != 0 || held.call("wasi_ephemeral_nn_get_output", uint64(hc), 0, nnOutAt, 96, writtenAt) != 0 {
		t.Fatal(held.host.LastError())
	}
	if got := which(floats(held.get(nnOutAt, 96))); got != "add" {
		t.Fatalf("the graph opened before the swaps answers %s, want add", got)
	}
	if first.Retired() {
		t.Fatal("the first model was released while a graph still uses it")
	}
	for i, m := range retired[1:] {
		if !m.Retired() {
			t.Fatalf("replaced model %d was not released after its graphs were freed", i+1)
		}
	}
	held.call("wasi_ephemeral_nn_fini_single", uint64(hc))
	if held.call("wasi_ephemeral_nn_unload", uint64(hg)) != 0 {
		t.Fatal(held.host.LastError())
	}
	if !first.Retired() {
		t.Fatal("the first model was not released when its last graph was freed")
	}
	// New loads get the current model (60 swaps end on add).
	if set.Get("m").Retired() {
		t.Fatal("the current model is released")
	}
	// A model that fails to load leaves the set as it was.
	if _, err := set.Replace(hostfuncs.Preload{Name: "m", Path: "testdata/nn/missing.onnx"}); err == nil {
		t.Fatal("Replace with a missing file succeeded")
	}
	if r, _ := envs[0].loadByName("m"); r != 0 {
		t.Fatalf("load after a failed Replace = %d: %s", r, envs[0].host.LastError())
	}
}

// TestNNHandlesAcrossInstances: a graph or context id is valid only in the
// instance that made it; another instance's ids are refused in both groups,
// and both instances keep serving.
func TestNNHandlesAcrossInstances(t *testing.T) {
	e1, e2 := nnEnv(t, hostfuncs.InstanceConfig{}), nnEnv(t, hostfuncs.InstanceConfig{})
	g1, c1 := e1.readyContext()
	fg := e1.graphLoad("add")
	if fg <= 0 {
		t.Fatal(e1.host.LastError())
	}
	g2, c2 := e2.readyContext()
	cases := []struct {
		name string
		fn   string
		args []uint64
		msg  string
	}{
		{"compute on the other's context", "wasi_ephemeral_nn_compute", []uint64{uint64(c1)}, "not an execution context"},
		{"get_output of the other's context", "wasi_ephemeral_nn_get_output", []uint64{uint64(c1), 0, nnOutAt, 96, writtenAt}, "not an execution context"},
		{"set_input on the other's context", "wasi_ephemeral_nn_set_input", []uint64{uint64(c1), 0, tensorAt}, "not an execution context"},
		{"fini the other's context", "wasi_ephemeral_nn_fini_single", []uint64{uint64(c1)}, "not an execution context"},
		{"context on the other's graph", "wasi_ephemeral_nn_init_execution_context", []uint64{uint64(g1), ctxAt}, "not a loaded graph"},
		{"unload the other's graph", "wasi_ephemeral_nn_unload", []uint64{uint64(g1)}, "not a loaded graph"},
		{"graph_run on the other's graph", "fennec_nn_graph_run", []uint64{u(fg), handlesAt, 2, handlesAt + 16, 1}, "not a loaded graph"},
		{"graph_free the other's graph", "fennec_nn_graph_free", []uint64{u(fg)}, "not a loaded graph"},
	}
	if c1 == c2 || g1 == g2 {
		// Ids carry a 12-bit tag salted per instance: two instances share
		// a salt once in 4096 runs, and then their first ids coincide.
		t.Skipf("the two instances drew the same salt (graph %d, context %d); rerun", g1, c1)
	}
	for _, tc := range cases {
		if r := e2.call(tc.fn, tc.args...); r == 0 || !strings.Contains(e2.host.LastError(), tc.msg) {
			t.Errorf("%s: %s = %d (%s), want a refusal saying %q", tc.name, tc.fn, r, e2.host.LastError(), tc.msg)
		}
	}
	for e, c := range map[*env]uint32{e1: c1, e2: c2} {
		if r := e.call("wasi_ephemeral_nn_compute", uint64(c)); r != 0 {
			t.Fatalf("compute on the own context after the forgeries = %d: %s", r, e.host.LastError())
		}
	}
}

// TestNNGraphLoadQuota: thousands of fennec_nn graph_loads stop at the
// instance's graph limit, and a tensor quota smaller than the graphs' weights
// stops them earlier, with EQUOTA; freeing a graph makes room again.
func TestNNGraphLoadQuota(t *testing.T) {
	e := nnEnv(t, hostfuncs.InstanceConfig{})
	var graphs []int32
	quota := 0
	for i := 0; i < 3000; i++ {
		switch g := e.graphLoad("add"); {
		case g > 0:
			graphs = append(graphs, g)
		case hostfuncs.Code(g) == hostfuncs.EQUOTA && strings.Contains(e.host.LastError(), "the limit"):
			quota++
		default:
			t.Fatalf("graph_load %d = %d: %s", i, g, e.host.LastError())
		}
	}
	if len(graphs) != hostfuncs.DefaultMaxNNGraphs || quota != 3000-len(graphs) {
		t.Fatalf("%d graphs loaded, %d refused; want %d loaded", len(graphs), quota, hostfuncs.DefaultMaxNNGraphs)
	}
	if r := e.call("fennec_nn_graph_free", u(graphs[0])); r != 0 {
		t.Fatal(e.host.LastError())
	}
	if g := e.graphLoad("add"); g <= 0 {
		t.Fatalf("graph_load after a free = %d: %s", g, e.host.LastError())
	}
	// The weights count against the tensor quota: 3 fit, the 4th does not.
	fi, err := os.Stat("testdata/nn/add.onnx")
	if err != nil {
		t.Fatal(err)
	}
	small := nnEnv(t, hostfuncs.InstanceConfig{MaxTensorBytes: 3*fi.Size() + 10})
	for i := 0; i < 3; i++ {
		if g := small.graphLoad("add"); g <= 0 {
			t.Fatalf("graph_load %d = %d: %s", i, g, small.host.LastError())
		}
	}
	for i := 0; i < 1000; i++ {
		if g := small.graphLoad("add"); hostfuncs.Code(g) != hostfuncs.EQUOTA || !strings.Contains(small.host.LastError(), "quota") {
			t.Fatalf("graph_load over the tensor quota = %d (%s), want EQUOTA", g, small.host.LastError())
		}
	}
	if _, b := small.host.Stats(); b != 3*fi.Size() {
		t.Fatalf("%d bytes counted after refused loads, want %d", b, 3*fi.Size())
	}
}

// TestNNRegisteredPins: a module pinning a name loads the model registered
// with that digest even while the name's current model is another, and a
// module without a pin gets the current one; hostile bytes do not register.
func TestNNRegisteredPins(t *testing.T) {
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	defer set.Close()
	if err := set.Add(hostfuncs.Preload{Name: "m", Encoding: "onnx", Target: "cpu", Path: "testdata/nn/add.onnx"}); err != nil {
		t.Fatal(err)
	}
	mul, err := os.ReadFile("testdata/nn/mul.onnx")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := set.Register("m", "bundle model m", mul)
	if err != nil || sum != fileSHA256(t, "testdata/nn/mul.onnx") {
		t.Fatalf("Register = %s, %v", sum, err)
	}
	first := func(e *env) float32 {
		t.Helper()
		r, g := e.loadByName("m")
		if r != 0 {
			t.Fatalf("load_by_name = %d: %s", r, e.host.LastError())
		}
		r, c := e.initCtx(g)
		if r != 0 || e.setInput(c, 0, typF32, []int32{2, 1, 4}, addA) != 0 || e.setInput(c, 1, typF32, []int32{3, 1}, addB) != 0 ||
			e.call("wasi_ephemeral_nn_compute", uint64(c)) != 0 || e.call("wasi_ephemeral_nn_get_output", uint64(c), 0, nnOutAt, 96, writtenAt) != 0 {
			t.Fatal(e.host.LastError())
		}
		return floats(e.get(nnOutAt, 4))[0]
	}
	pinned := nnEnvWith(t, set, hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"m"}, SHA256: map[string]string{"m": sum}}})
	plain := nnEnvWith(t, set, hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"m"}}})
	if got := first(pinned); got != 10 {
		t.Fatalf("pinned module answered %v, want the registered mul's 10", got)
	}
	if got := first(plain); got != 11 {
		t.Fatalf("unpinned module answered %v, want the current add's 11", got)
	}
	// Registering again counts; the model stays until the last Unregister.
	if _, err := set.Register("m", "again", mul); err != nil {
		t.Fatal(err)
	}
	m := set.Registered("m", sum)
	set.Unregister("m", sum)
	if set.Registered("m", sum) == nil {
		t.Fatal("one Unregister of two registrations removed the model")
	}
	set.Unregister("m", sum)
	if set.Registered("m", sum) != nil {
		t.Fatal("the model is still registered")
	}
	if m.Retired() {
		t.Fatal("the model was released while the pinned instance's graph uses it")
	}
	for _, bad := range [][]byte{[]byte("not onnx"), mul[:len(mul)/2]} {
		if _, err := set.Register("m", "bundle model m", bad); err == nil || !strings.Contains(err.Error(), "model m") {
			t.Fatalf("Register of hostile bytes: %v", err)
		}
	}
	if _, err := set.Register("../m", "x", mul); err == nil {
		t.Fatal("Register accepted a bad name")
	}
}

// TestNNHotSwapSilero: the swap on a real model (Silero VAD v5, 2.3 MB):
// four instances run fennec_nn graphs while the model is reloaded from its
// file and replaced 6 times, so sessions' weights are freed while other
// sessions run; every run gives the first run's speech probability.
func TestNNHotSwapSilero(t *testing.T) {
	dir := shared.Dir("models")
	if dir == "" {
		t.Skip("../shared/models is absent")
	}
	p := hostfuncs.Preload{Name: "vad", Encoding: "onnx", Target: "cpu", Path: filepath.Join(dir, "silero_vad_v5.onnx")}
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	defer set.Close()
	if err := set.Add(p); err != nil {
		t.Fatal(err)
	}
	audio := make([]float32, 512)
	for i := range audio {
		audio[i] = float32(math.Sin(float64(i)*0.07)) * 0.5
	}
	cfg := hostfuncs.InstanceConfig{NN: hostfuncs.NNConfig{Models: []string{"vad"}}}
	run := func(e *env) (float32, bool) {
		g := e.graphLoad("vad")
		if g <= 0 {
			t.Errorf("graph_load = %d: %s", g, e.host.LastError())
			return 0, false
		}
		in := e.newF32([]int32{1, 512}, audio...)
		state := e.newF32([]int32{2, 1, 128}, make([]float32, 256)...)
		e.put(dataAt, wasmtest.LE32(16000))
		sr := e.call("fennec_tensor_new", 3, shapeAt, 0, dataAt, 4) // int64 in the model
		e.put(handlesAt, wasmtest.LE32(in, state, sr))
		if n := e.call("fennec_nn_graph_run", u(g), handlesAt, 3, handlesAt+16, 2); n != 2 {
			t.Errorf("graph_run = %d: %s", n, e.host.LastError())
			return 0, false
		}
		outs := e.get(handlesAt+16, 8)
		prob := e.read(int32(binary.LittleEndian.Uint32(outs)))[0]
		for _, h := range []int32{in, state, sr, int32(binary.LittleEndian.Uint32(outs)), int32(binary.LittleEndian.Uint32(outs[4:]))} {
			e.call("fennec_tensor_free", u(h))
		}
		if r := e.call("fennec_nn_graph_free", u(g)); r != 0 {
			t.Errorf("graph_free = %d: %s", r, e.host.LastError())
			return 0, false
		}
		return prob, true
	}
	envs := make([]*env, 4)
	for i := range envs {
		envs[i] = nnEnvWith(t, set, cfg)
	}
	want, ok := run(envs[0])
	if !ok {
		t.FailNow()
	}
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		runs atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		for i := 0; i < 6; i++ {
			if _, err := set.Replace(p); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load() || n < 3; n++ {
				got, ok := run(e)
				if !ok {
					return
				}
				if got != want {
					t.Errorf("a run during the swaps gave %v, want %v", got, want)
					return
				}
				runs.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d runs across 6 swaps, probability %v", runs.Load(), want)
}

// extModel writes, into dir, a model y = x + w (x, w, y float[4]) whose
// initializer w lives in the external data file w.bin, and returns the
// model's path. The ModelProto is encoded field by field (onnx.proto's
// numbers), so the test needs no generated types.
func extModel(t *testing.T, dir string, weights []float32) string {
	t.Helper()
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		var body []byte
		for _, p := range parts {
			body = append(body, p...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	vec4 := func(name string) []byte { // ValueInfoProto float[4]
		dim := msg(1, varint(1, 4))                // Dimension.dim_value
		tt := msg(1, varint(1, 1), msg(2, dim))    // Tensor: elem_type, shape
		return append(str(1, name), msg(2, tt)...) // name, type
	}
	init := msg(5, varint(1, 4), varint(2, 1), str(8, "w"), // dims, data_type FLOAT, name
		msg(13, str(1, "location"), str(2, "w.bin")), varint(14, 1)) // external_data, data_location EXTERNAL
	graph := msg(7, msg(1, str(1, "x"), str(1, "w"), str(2, "y"), str(4, "Add")), str(2, "g"), init,
		msg(11, vec4("x")), msg(12, vec4("y")))
	model := append(append(varint(1, 8), msg(8, str(1, ""), varint(2, 13))...), graph...)
	w := make([]byte, 0, 16)
	for _, f := range weights {
		w = binary.LittleEndian.AppendUint32(w, math.Float32bits(f))
	}
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), w, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ext.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNNPinCoversExternalData: an operator's model whose weights live in an
// external data file is pinned by a digest that covers that file, so a pin
// of the .onnx file's bytes alone (what sha256sum prints of it) is refused,
// the model's digest loads, and the same pin is refused once the weights
// beside the model are swapped. Its quota charge counts the external bytes.
func TestNNPinCoversExternalData(t *testing.T) {
	dir := t.TempDir()
	path := extModel(t, dir, []float32{1, 2, 3, 4})
	load := func() *hostfuncs.SharedModel {
		set := hostfuncs.NewModelSet(backend, onnx.Options{})
		t.Cleanup(set.Close)
		if err := set.Add(hostfuncs.Preload{Name: "ext", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
			t.Fatal(err)
		}
		return set.Get("ext")
	}
	sm := load()
	fileOnly := fileSHA256(t, path)
	if sm.SHA256 == fileOnly {
		t.Fatal("the model's digest is its .onnx file's alone: its external weights are not pinned")
	}
	onnxFile, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sm.Bytes != int64(len(onnxFile))+16 {
		t.Fatalf("charged %d bytes, want the .onnx's %d + 16 of external data", sm.Bytes, len(onnxFile))
	}
	pinned := func(set *hostfuncs.ModelSet, pin string) *env {
		return nnEnvWith(t, set, hostfuncs.InstanceConfig{Module: "pinned", NN: hostfuncs.NNConfig{Models: []string{"ext"}, SHA256: map[string]string{"ext": pin}}})
	}
	set := hostfuncs.NewModelSet(backend, onnx.Options{})
	defer set.Close()
	if err := set.Add(hostfuncs.Preload{Name: "ext", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
		t.Fatal(err)
	}
	if g := pinned(set, sm.SHA256).graphLoad("ext"); g <= 0 {
		t.Fatal("a pin of the model's digest was refused")
	}
	if e := pinned(set, fileOnly); e.graphLoad("ext") > 0 {
		t.Fatal("a pin of the .onnx file's bytes alone loaded a model with external data")
	}
	// The weights beside the model swapped: the old pin no longer loads.
	extModel(t, dir, []float32{9, 9, 9, 9})
	swapped := hostfuncs.NewModelSet(backend, onnx.Options{})
	defer swapped.Close()
	if err := swapped.Add(hostfuncs.Preload{Name: "ext", Encoding: "onnx", Target: "cpu", Path: path}); err != nil {
		t.Fatal(err)
	}
	if e := pinned(swapped, sm.SHA256); e.graphLoad("ext") > 0 || !strings.Contains(e.host.LastError(), "pins "+sm.SHA256) {
		t.Fatalf("swapped external weights loaded under the old pin (%s)", e.host.LastError())
	}
}
