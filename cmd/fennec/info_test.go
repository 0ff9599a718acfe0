package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/gpu"
)

func TestPickBackendFallsBack(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b, reason := pickBackend(log, func() (gpu.Backend, string, error) {
		return nil, "", errors.New("cuda: no usable driver: cuInit: CUDA error 100 (CUDA_ERROR_NO_DEVICE)")
	})
	if b.Name() != "cpu" {
		t.Errorf("fallback backend %s, want cpu", b.Name())
	}
	if !strings.Contains(reason, "CUDA unavailable") || !strings.Contains(reason, "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("reason %q does not carry the cause", reason)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("fallback not logged as a warning with its cause: %s", logs.String())
	}
}

func TestPickBackendUsesAccelerator(t *testing.T) {
	var logs bytes.Buffer
	accel, _ := gpu.NewCPUWithConfig(gpu.CPUConfig{Threads: 1}) // stands in for a started accelerator
	b, reason := pickBackend(slog.New(slog.NewTextHandler(&logs, nil)), func() (gpu.Backend, string, error) {
		return accel, "device 0", nil
	})
	if b != gpu.Backend(accel) || reason != "device 0" {
		t.Errorf("pickBackend = %v, %q; want the accelerator", b, reason)
	}
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "device 0") {
		t.Errorf("choice not logged: %s", logs.String())
	}
}

func TestInfoCommand(t *testing.T) {
	out, code := runFennec(t, t.TempDir(), "info", "--json")
	if code != exitOK {
		t.Fatalf("fennec info --json exited %d: %s", code, out)
	}
	var r infoReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("info --json is not JSON: %v\n%s", err, out)
	}
	if r.CPU.Threads < 1 || r.CPU.Kernel == "" || r.Platform == "" {
		t.Errorf("cpu part incomplete: %+v", r)
	}
	if r.CUDA.Built != cudaBuild {
		t.Errorf("cuda.built = %v in a binary with cudaBuild %v", r.CUDA.Built, cudaBuild)
	}
	if !cudaBuild && (r.Backend != "cpu" || r.Reason != "built without -tags cuda" || r.CUDA.Error != "none: built without -tags cuda") {
		t.Errorf("default build: backend %q reason %q cuda %+v", r.Backend, r.Reason, r.CUDA)
	}
	if cudaBuild && r.CUDA.Available != (r.Backend == "cuda") {
		t.Errorf("cuda available %v but backend %q (%s)", r.CUDA.Available, r.Backend, r.Reason)
	}
	text, code := runFennec(t, t.TempDir(), "info")
	if code != exitOK || !strings.Contains(text, "backend: "+r.Backend) || !strings.Contains(text, "cuda:") {
		t.Errorf("fennec info text (exit %d):\n%s", code, text)
	}
	if !cudaBuild && !strings.Contains(text, "cuda:    none: built without -tags cuda") {
		t.Errorf("default build text does not say it has no CUDA:\n%s", text)
	}
	if _, code := runFennec(t, t.TempDir(), "info", "extra"); code != exitUsage && code != exitFailure {
		t.Errorf("info with an argument exited %d", code)
	}
}
