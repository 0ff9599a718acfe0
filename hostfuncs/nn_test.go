package hostfuncs_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/wasmtest"
)

const handlesAt = 600

func (e *env) graphLoad(name string) int32 {
	e.put(nameAt, []byte(name))
	return e.call("fennec_nn_graph_load", nameAt, u(int32(len(name))))
}

// TestNNRunOnHandles: fennec_nn runs a model on tensor handles and returns
// handles; its metadata calls describe the graph.
func TestNNRunOnHandles(t *testing.T) {
	e := nnEnv(t, hostfuncs.InstanceConfig{})
	g := e.graphLoad("add")
	if g <= 0 {
		t.Fatalf("graph_load = %d: %s", g, e.host.LastError())
	}
	if n := e.call("fennec_nn_graph_io_count", u(g), 0); n != 2 {
		t.Fatalf("inputs = %d", n)
	}
	if n := e.call("fennec_nn_graph_io_count", u(g), 1); n != 1 {
		t.Fatalf("outputs = %d", n)
	}
	if n := e.call("fennec_nn_graph_io_name", u(g), 0, 1, nnOutAt, 64); n != 1 || string(e.get(nnOutAt, 1)) != "b" {
		t.Fatalf("input 1 name: %d %q", n, e.get(nnOutAt, 1))
	}
	if r := e.call("fennec_nn_graph_io_shape", u(g), 0, 0, nnOutAt, 8); r != 3 || binary.LittleEndian.Uint32(e.get(nnOutAt+8, 4)) != 4 {
		t.Fatalf("input 0 shape: rank %d (%s)", r, e.host.LastError())
	}
	if dt := e.call("fennec_nn_graph_io_dtype", u(g), 1, 0); dt != 1 {
		t.Fatalf("output dtype %d, want f32 (1)", dt)
	}
	a := e.newF32([]int32{2, 1, 4}, addA...)
	b := e.newF32([]int32{3, 1}, addB...)
	e.put(handlesAt, wasmtest.LE32(a, b))
	if n := e.call("fennec_nn_graph_run", u(g), handlesAt, 2, handlesAt+16, 1); n != 1 {
		t.Fatalf("graph_run = %d: %s", n, e.host.LastError())
	}
	out := int32(binary.LittleEndian.Uint32(e.get(handlesAt+16, 4)))
	got, want := e.read(out), addWant()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("out[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	// int64 outputs come back as i32 tensors.
	c := e.graphLoad("cast")
	x := e.newF32([]int32{3, 4}, 1, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.7)
	e.put(handlesAt, wasmtest.LE32(x))
	if n := e.call("fennec_nn_graph_run", u(c), handlesAt, 1, handlesAt+16, 1); n != 1 {
		t.Fatalf("graph_run cast = %d: %s", n, e.host.LastError())
	}
	h := int32(binary.LittleEndian.Uint32(e.get(handlesAt+16, 4)))
	if dt := e.call("fennec_tensor_dtype", u(h)); dt != 3 {
		t.Fatalf("cast output dtype %d, want i32", dt)
	}
	if n := e.call("fennec_tensor_read", u(h), nnOutAt, 48); n != 48 || int32(binary.LittleEndian.Uint32(e.get(nnOutAt+4, 4))) != -2 || int32(binary.LittleEndian.Uint32(e.get(nnOutAt+44, 4))) != 12 {
		t.Fatalf("cast output read %d: %v", n, e.get(nnOutAt, 48))
	}
}

func TestNNHostile(t *testing.T) {
	e := nnEnv(t, hostfuncs.InstanceConfig{})
	g := e.graphLoad("add")
	a := e.newF32([]int32{2, 1, 4}, addA...)
	b := e.newF32([]int32{3, 1}, addB...)
	wrong := e.newF32([]int32{1, 2, 4}, addA...)
	e.put(shapeAt, wasmtest.LE32(2, 1, 4))
	ints := e.call("fennec_tensor_new", 3, shapeAt, 3, 0, 0)
	cases := []struct {
		name    string
		fn      string
		handles []int32
		args    []uint64
		code    hostfuncs.Code
		msg     string
	}{
		{"forged graph", "graph_run", []int32{a, b}, []uint64{u(g + 1), handlesAt, 2, handlesAt + 16, 1}, hostfuncs.EHANDLE, "not a loaded graph"},
		{"tensor handle as graph", "graph_io_count", nil, []uint64{u(a), 0}, hostfuncs.EHANDLE, "not a loaded graph"},
		{"forged tensor", "graph_run", []int32{a, b + 1}, []uint64{u(g), handlesAt, 2, handlesAt + 16, 1}, hostfuncs.EHANDLE, "not a live tensor"},
		{"graph as tensor", "graph_run", []int32{a, g}, []uint64{u(g), handlesAt, 2, handlesAt + 16, 1}, hostfuncs.EHANDLE, "not a live tensor"},
		{"wrong dtype", "graph_run", []int32{ints, b}, []uint64{u(g), handlesAt, 2, handlesAt + 16, 1}, hostfuncs.EDTYPE, "is i32"},
		{"wrong shape", "graph_run", []int32{wrong, b}, []uint64{u(g), handlesAt, 2, handlesAt + 16, 1}, hostfuncs.ESHAPE, "dimension 0"},
		{"too few inputs", "graph_run", []int32{a}, []uint64{u(g), handlesAt, 1, handlesAt + 16, 1}, hostfuncs.EINVAL, "has 2 inputs"},
		{"no room for outputs", "graph_run", []int32{a, b}, []uint64{u(g), handlesAt, 2, handlesAt + 16, 0}, hostfuncs.EINVAL, "has 1 outputs"},
		{"outputs past memory", "graph_run", []int32{a, b}, []uint64{u(g), handlesAt, 2, 2*65536 - 2, 1}, hostfuncs.EMEM, "outside guest memory"},
		{"bad which", "graph_io_count", nil, []uint64{u(g), 2}, hostfuncs.EINVAL, "which is 2"},
		{"bad index", "graph_io_dtype", nil, []uint64{u(g), 0, 2}, hostfuncs.EINVAL, "index 2"},
		{"shape buffer small", "graph_io_shape", nil, []uint64{u(g), 0, 0, nnOutAt, 2}, hostfuncs.EINVAL, "rank 3"},
		{"name past memory", "graph_io_name", nil, []uint64{u(g), 0, 0, 2*65536 - 0, 64}, hostfuncs.EMEM, "outside guest memory"},
	}
	for _, c := range cases {
		if c.handles != nil {
			e.put(handlesAt, wasmtest.LE32(c.handles...))
		}
		if got := e.call("fennec_nn_"+c.fn, c.args...); hostfuncs.Code(got) != c.code || !strings.Contains(e.host.LastError(), c.msg) {
			t.Errorf("%s: %s = %d (%s), want %s saying %q", c.name, c.fn, got, e.host.LastError(), c.code, c.msg)
		}
	}
	if r := e.graphLoad("secret"); hostfuncs.Code(r) != hostfuncs.EDENIED {
		t.Fatalf("ungranted graph_load = %d (%s)", r, e.host.LastError())
	}
	if r := e.call("fennec_nn_graph_free", u(g)); r != 0 {
		t.Fatalf("graph_free = %d (%s)", r, e.host.LastError())
	}
	if r := e.call("fennec_nn_graph_free", u(g)); hostfuncs.Code(r) != hostfuncs.EHANDLE {
		t.Fatalf("double graph_free = %d", r)
	}
}

// TestNNSharedGraph: two instances run the same loaded model (weights
// once per process), each with its own buffers and quota.
func TestNNSharedGraph(t *testing.T) {
	e1, e2 := nnEnv(t, hostfuncs.InstanceConfig{}), nnEnv(t, hostfuncs.InstanceConfig{})
	_, c1 := e1.readyContext()
	_, c2 := e2.readyContext()
	if e1.setInput(c1, 1, typF32, []int32{3, 1}, []float32{0, 0, 0}) != 0 || e1.call("wasi_ephemeral_nn_compute", uint64(c1)) != 0 {
		t.Fatal(e1.host.LastError())
	}
	e1.call("wasi_ephemeral_nn_get_output", uint64(c1), 0, nnOutAt, 96, writtenAt)
	e2.call("wasi_ephemeral_nn_get_output", uint64(c2), 0, nnOutAt, 96, writtenAt)
	if floats(e1.get(nnOutAt, 4))[0] != 1 || floats(e2.get(nnOutAt, 4))[0] != 11 {
		t.Fatalf("outputs %v %v: the instances' buffers are not their own", floats(e1.get(nnOutAt, 4)), floats(e2.get(nnOutAt, 4)))
	}
	if models(t).Get("add") == nil {
		t.Fatal("shared model missing")
	}
}
