package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
	"github.com/fennec-edge/fennec/internal/shared"
)

// guestModule writes the named example guest and its manifest into dir as
// NAME.wasm and NAME.toml (as `fennec guests build --out` does).
func guestModule(t *testing.T, dir, name string) string {
	t.Helper()
	g, err := guests.Get(context.Background(), name)
	if errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guests.ErrNoSource) {
		t.Skipf("cannot build guest %s here: %v", name, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".wasm")
	os.WriteFile(p, g.Wasm, 0o644)
	os.WriteFile(filepath.Join(dir, name+".toml"), g.ManifestTOML, 0o644)
	return p
}

// TestRunRawBytes: a module whose manifest says input = "bytes" gets the
// --input file as it is (here bytes that are neither CSV, JSON nor CBOR,
// which reach the vad module's WAV/PCM parser), and --format is refused.
func TestRunRawBytes(t *testing.T) {
	models, _ := filepath.Abs(shared.Dir("models"))
	dir := t.TempDir()
	mod := guestModule(t, dir, "vad")
	os.WriteFile(filepath.Join(dir, "odd.bin"), []byte{1, 2, 3}, 0o644)
	out, code := runFennec(t, dir, "run", mod, "--input", "odd.bin", "--format", "json", "--no-cache")
	if code != exitBadInput || !strings.Contains(out, `takes raw bytes (its manifest says input = "bytes")`) {
		t.Fatalf("--format json: %d\n%s", code, out)
	}
	if shared.Dir("models") == "" {
		t.Skip("../shared/models is absent: the host grants \"nn\" only with a model preloaded")
	}
	out, code = runFennec(t, dir, "run", mod, "--nn-preload", "vad:onnx:cpu:"+filepath.Join(models, "silero_vad_v5.onnx"), "--input", "odd.bin", "--no-cache")
	if code != exitFailure || !strings.Contains(out, "3 bytes is not a whole number of 16-bit samples") {
		t.Fatalf("raw bytes: %d\n%s", code, out)
	}
}

// TestRunVADOnSpeech runs README's commands: speech made with espeak-ng
// and sox, the vad module with Silero VAD v5 preloaded, two segments out.
func TestRunVADOnSpeech(t *testing.T) {
	models := shared.Dir("models")
	if models == "" {
		t.Skip("../shared/models is absent")
	}
	models, _ = filepath.Abs(models)
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install espeak-ng sox)", tool)
		}
	}
	dir := t.TempDir()
	mod := guestModule(t, dir, "vad")
	for _, cmd := range [][]string{
		{"espeak-ng", "-w", "a.wav", "the quick brown fox jumps over the lazy dog"},
		{"sox", "a.wav", "-r", "16000", "-c", "1", "-b", "16", "a16.wav", "pad", "1", "1.5"},
		{"sox", "a16.wav", "a16.wav", "speech.wav"},
	} {
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Dir = dir
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, b)
		}
	}
	out, code := runFennec(t, dir, "run", mod, "--nn-preload", "vad:onnx:cpu:"+filepath.Join(models, "silero_vad_v5.onnx"), "--input", "speech.wav", "--no-cache")
	if code != exitOK || strings.Count(out, `"start"`) != 2 || !strings.Contains(out, `"sample_rate": 16000`) {
		t.Fatalf("run vad: %d\n%s", code, out)
	}
	t.Logf("fennec run vad.wasm --input speech.wav:\n%s", out)
}
