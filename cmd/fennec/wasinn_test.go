package main

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
)

// wasinnGuest builds modules/c-wasinn (a C guest written against the
// wasi-nn witx) into dir, without its manifest: fennec run gives a command
// module the default one, as wasmedge runs a bare .wasm.
func wasinnGuest(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a C guest; skipped with -short")
	}
	wasm, _, err := guests.Load(context.Background(), "c-wasinn")
	if errors.Is(err, guestbuild.ErrNoClang) || errors.Is(err, guests.ErrNoSource) {
		t.Skipf("C guest not built: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "guest.wasm")
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// printedFloats parses the guest's "output K: N bytes" blocks.
func printedFloats(t *testing.T, out string) []float32 {
	t.Helper()
	var vs []float32
	for _, line := range strings.Split(out, "\n") {
		if v, err := strconv.ParseFloat(strings.TrimSpace(line), 32); err == nil {
			vs = append(vs, float32(v))
		}
	}
	return vs
}

// TestWASINNCommandGuest runs the C wasi-nn guest on the PP-OCR direction
// classifier through `fennec run`, as `wasmedge --dir .:. --nn-preload
// default:ONNX:CPU:model.onnx guest.wasm ARGS` would, by name and from the
// model's bytes, and compares with nn/onnx's own run of the same input.
func TestWASINNCommandGuest(t *testing.T) {
	models := shared.Dir("models")
	if models == "" {
		t.Skip("../shared/models is absent")
	}
	model := filepath.Join(models, "ch_ppocr_mobile_v2.0_cls_infer.onnx")
	dir := t.TempDir()
	guest := wasinnGuest(t, dir)
	in := &nn.Tensor{DType: nn.Float32, Shape: []int{1, 3, 48, 192}, F32: make([]float32, 3*48*192)}
	raw := make([]byte, 4*len(in.F32))
	for i := range in.F32 {
		in.F32[i] = float32(math.Sin(float64(i) * 0.01))
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(in.F32[i]))
	}
	os.WriteFile(filepath.Join(dir, "in.f32"), raw, 0o644)
	os.WriteFile(filepath.Join(dir, "bad.onnx"), []byte("\x0a\xff\xff\xff\xff\x0fnot a model"), 0o644)
	os.Mkdir(filepath.Join(dir, "models"), 0o755)
	mb, _ := os.ReadFile(model)
	os.WriteFile(filepath.Join(dir, "models", "cls.onnx"), mb, 0o644)

	m, err := onnx.Load(model, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := onnx.NewSession(m, gpu.NewCPU())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	res, err := sess.Run(map[string]*nn.Tensor{m.Inputs()[0].Name: in})
	if err != nil {
		t.Fatal(err)
	}
	want := res[m.Outputs()[0].Name].F32

	check := func(name string, args ...string) {
		t.Helper()
		out, code := runFennec(t, dir, append([]string{"run", guest, "--no-cache"}, args...)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s", name, code, out)
		}
		got := printedFloats(t, out)
		if len(got) != len(want) {
			t.Fatalf("%s: printed %v, want %d values\n%s", name, got, len(want), out)
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("%s: output[%d] = %v, nn/onnx gives %v", name, i, got[i], want[i])
			}
		}
	}
	check("load_by_name", "--dir", ".:.", "--nn-preload", "default:ONNX:CPU:"+model, "--", "--name", "default", "-i", "f32:1x3x48x192:in.f32")
	check("load", "--dir", ".:.", "--nn-preload", "default:onnx:cpu:"+model, "--", "--file", "models/cls.onnx", "-i", "f32:1x3x48x192:in.f32")

	// Failures are the guest's exit code with the host's reason in the log,
	// and the host carries on.
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"ungranted", []string{"--dir", ".:.", "--nn-preload", "default:onnx:cpu:" + model, "--", "--name", "other", "-i", "f32:1x3x48x192:in.f32"}, "not granted"},
		{"hostile model file", []string{"--dir", ".:.", "--nn-preload", "default:onnx:cpu:" + model, "--", "--file", "bad.onnx", "-i", "f32:1x3x48x192:in.f32"}, "invalid-argument"},
		{"wrong shape", []string{"--dir", ".:.", "--nn-preload", "default:onnx:cpu:" + model, "--", "--name", "default", "-i", "f32:1x3x48x190:in.f32"}, "set_input"},
		{"output too large", []string{"--dir", ".:.", "--nn-preload", "default:onnx:cpu:" + model, "--", "--name", "default", "-i", "f32:1x3x48x192:in.f32", "--max", "4"}, "too-large"},
	} {
		out, code := runFennec(t, dir, append([]string{"run", guest, "--no-cache"}, c.args...)...)
		if code != 1 || !strings.Contains(out, c.msg) {
			t.Errorf("%s: exit %d, want 1 saying %q\n%s", c.name, code, c.msg, out)
		}
	}
	// Without --dir the guest sees no files; without --nn-preload no model.
	if out, code := runFennec(t, dir, "run", guest, "--no-cache", "--nn-preload", "default:onnx:cpu:"+model, "--", "--file", "models/cls.onnx"); code != 1 || !strings.Contains(out, "cannot open") {
		t.Errorf("no --dir: exit %d\n%s", code, out)
	}
	if out, code := runFennec(t, dir, "run", guest, "--no-cache", "--", "--name", "default"); code != exitBadInput || !strings.Contains(out, `without the capability "wasi:nn"`) {
		t.Errorf("no --nn-preload: exit %d\n%s", code, out)
	}
	if out, code := runFennec(t, dir, "run", guest, "--no-cache", "--nn-preload", "x:tflite:cpu:"+model); code != exitBadInput || !strings.Contains(out, "not supported") {
		t.Errorf("tflite preload: exit %d\n%s", code, out)
	}
}
