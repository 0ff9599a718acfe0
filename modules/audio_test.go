package modules_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/modules/internal/wav"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

// nnModule compiles the guest in dir with its fennec.toml on an engine
// whose model set holds the given preloads (name -> file in ../shared/models).
func nnModule(t testing.TB, dir string, models map[string]string) *runtime.Module {
	t.Helper()
	shm := shared.Dir("models")
	if shm == "" {
		t.Skip("../shared/models is absent")
	}
	set := hostfuncs.NewModelSet(nil, onnx.Options{})
	t.Cleanup(func() { set.Close() })
	for name, file := range models {
		if err := set.Add(hostfuncs.Preload{Name: name, Encoding: "onnx", Target: "cpu", Path: filepath.Join(shm, file)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	eng, err := runtime.New(ctx, runtime.Config{
		CacheDir: filepath.Join(os.TempDir(), "fennec-test-wazero-cache"),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Services: &hostfuncs.Services{NN: &hostfuncs.NNServices{Models: set}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	bin, err := os.ReadFile(wasmFor(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	man, err := runtime.ReadManifest(filepath.Join(dir, "fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := eng.Compile(ctx, bin, man)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	return mod
}

// speech says text with espeak-ng, resampled to 16 kHz mono 16-bit by sox,
// and returns its samples trimmed to where the voice is (|x| > 0.01).
func speech(t testing.TB, text string) []int16 {
	t.Helper()
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install espeak-ng sox)", tool)
		}
	}
	dir := t.TempDir()
	raw, out := filepath.Join(dir, "raw.wav"), filepath.Join(dir, "16k.wav")
	if b, err := exec.Command("espeak-ng", "-w", raw, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v %s", err, b)
	}
	if b, err := exec.Command("sox", raw, "-r", "16000", "-c", "1", "-b", "16", out).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, data, err := wav.ParseWAV(b)
	if err != nil || f.SampleRate != 16000 || f.Bits != 16 || f.Channels != 1 {
		t.Fatalf("sox output: %+v %v", f, err)
	}
	pcm := make([]int16, len(data)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	lo, hi := 0, len(pcm)
	for lo < hi && math.Abs(float64(pcm[lo])) < 328 {
		lo++
	}
	for hi > lo && math.Abs(float64(pcm[hi-1])) < 328 {
		hi--
	}
	return pcm[lo:hi]
}

// wavFile writes 16 kHz mono 16-bit PCM as a WAV file.
func wavFile(pcm []int16) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*len(pcm)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(uint32(16000))
	le(uint32(32000))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * len(pcm)))
	le(pcm)
	return b.Bytes()
}

// twoPhrases is 1 s of silence, a phrase, 1.5 s of silence, a second
// phrase, 1 s of silence, and where the phrases truly are (seconds).
func twoPhrases(t testing.TB) ([]int16, [2][2]float64) {
	a := speech(t, "the quick brown fox jumps over the lazy dog")
	b := speech(t, "seven green apples are on the table")
	sil := func(s float64) []int16 { return make([]int16, int(s*16000)) }
	var pcm []int16
	pcm = append(pcm, sil(1)...)
	aStart := float64(len(pcm)) / 16000
	pcm = append(pcm, a...)
	aEnd := float64(len(pcm)) / 16000
	pcm = append(pcm, sil(1.5)...)
	bStart := float64(len(pcm)) / 16000
	pcm = append(pcm, b...)
	bEnd := float64(len(pcm)) / 16000
	pcm = append(pcm, sil(1)...)
	return pcm, [2][2]float64{{aStart, aEnd}, {bStart, bEnd}}
}

type vadSegments struct {
	SampleRate int     `cbor:"sample_rate"`
	Duration   float64 `cbor:"duration"`
	Windows    int     `cbor:"windows"`
	Segments   []struct {
		Start float64 `cbor:"start"`
		End   float64 `cbor:"end"`
		Prob  float32 `cbor:"prob"`
	} `cbor:"segments"`
}

type vadFrames struct {
	Window int       `cbor:"window"`
	Probs  []float32 `cbor:"probs"`
}

// TestVADSegments: the vad module finds the two phrases of espeak-ng
// speech separated by 1.5 s of silence, each boundary within 0.25 s of
// where the voice is, from a WAV file and from the same audio as raw PCM.
func TestVADSegments(t *testing.T) {
	pcm, truth := twoPhrases(t)
	mod := nnModule(t, "vad", map[string]string{"vad": "silero_vad_v5.onnx"})
	ctx := context.Background()
	file := wavFile(pcm)
	for name, in := range map[string][]byte{"wav": file, "raw pcm": file[44:]} {
		b, err := mod.Call(ctx, "segments", in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out vadSegments
		if err := sdk.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Segments) != 2 || out.SampleRate != 16000 || out.Windows != (len(pcm)+511)/512 {
			t.Fatalf("%s: %+v, want 2 segments near %v", name, out, truth)
		}
		for i, s := range out.Segments {
			if math.Abs(s.Start-truth[i][0]) > 0.25 || math.Abs(s.End-truth[i][1]) > 0.25 || s.Prob < 0.5 {
				t.Fatalf("%s: segment %d = %+v, truth %v", name, i, s, truth[i])
			}
			t.Logf("%s: segment %d: %.3f-%.3f s (truth %.3f-%.3f), mean p %.3f", name, i, s.Start, s.End, truth[i][0], truth[i][1], s.Prob)
		}
	}
}

// TestVADFramesMatchOnnxruntime: the module's per-window probabilities
// against silero-vad's own computation in python onnxruntime on the same
// audio: >= 99 % of the speech/non-speech decisions (p >= 0.5) agree.
func TestVADFramesMatchOnnxruntime(t *testing.T) {
	pcm, _ := twoPhrases(t)
	mod := nnModule(t, "vad", map[string]string{"vad": "silero_vad_v5.onnx"})
	path := filepath.Join(t.TempDir(), "two.wav")
	os.WriteFile(path, wavFile(pcm), 0o644)
	var ref []float32
	pyRef(t, &ref, "vad", filepath.Join(shared.Dir("models"), "silero_vad_v5.onnx"), path)
	b, err := mod.Call(context.Background(), "frames", wavFile(pcm))
	if err != nil {
		t.Fatal(err)
	}
	var out vadFrames
	if err := sdk.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Probs) != len(ref) || out.Window != 512 {
		t.Fatalf("%d windows of %d, onnxruntime %d", len(out.Probs), out.Window, len(ref))
	}
	agree, maxDiff := 0, 0.0
	for i := range ref {
		if (out.Probs[i] >= 0.5) == (ref[i] >= 0.5) {
			agree++
		}
		maxDiff = max(maxDiff, math.Abs(float64(out.Probs[i]-ref[i])))
	}
	frac := float64(agree) / float64(len(ref))
	t.Logf("%d windows: %.2f %% of decisions agree with onnxruntime, max |p - p_ort| = %.2g", len(ref), 100*frac, maxDiff)
	if frac < 0.99 {
		t.Fatalf("only %.2f %% of decisions agree", 100*frac)
	}
}

// pyRef runs modules/testdata/audio/reference.py, skipping without python
// onnxruntime.
func pyRef(t testing.TB, v any, args ...string) {
	t.Helper()
	if err := exec.Command("python3", "-c", "import onnxruntime, numpy").Run(); err != nil {
		t.Skip("python3 with onnxruntime and numpy is not available")
	}
	out, err := exec.Command("python3", append([]string{"testdata/audio/reference.py"}, args...)...).Output()
	if err != nil {
		t.Fatalf("reference.py: %v", err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatal(err)
	}
}

// TestVADHostile: bytes that are not audio, or audio the model does not
// take, are errors naming the problem, and the instance keeps serving.
func TestVADHostile(t *testing.T) {
	mod := nnModule(t, "vad", map[string]string{"vad": "silero_vad_v5.onnx"})
	ctx := context.Background()
	cases := map[string][]byte{
		"odd raw length":  {1, 2, 3},
		"44.1 kHz":        bytes.Replace(wavFile(make([]int16, 100)), []byte{0x80, 0x3e, 0, 0, 0, 0x7d}, []byte{0x44, 0xac, 0, 0, 0x88, 0x58}, 1),
		"truncated fmt":   []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"),
		"chunk too large": []byte("RIFF\x00\x00\x00\x00WAVEJUNK\xff\xff\xff\x7f"),
	}
	want := map[string]string{
		"odd raw length":  "whole number of 16-bit samples",
		"44.1 kHz":        "sample rate 44100",
		"truncated fmt":   "claims 16 bytes",
		"chunk too large": "claims",
	}
	for name, in := range cases {
		_, err := mod.Call(ctx, "segments", in)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want[name])) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want[name])
		}
	}
	// Empty input is no audio: no windows, no segments.
	b, err := mod.Call(ctx, "segments", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out vadSegments
	if err := sdk.Unmarshal(b, &out); err != nil || out.Windows != 0 || len(out.Segments) != 0 {
		t.Fatalf("empty input: %+v %v", out, err)
	}
}

type wakewordOut struct {
	SampleRate int         `cbor:"sample_rate"`
	Step       float64     `cbor:"step"`
	Times      []float64   `cbor:"times"`
	Embeddings [][]float32 `cbor:"embeddings"`
}

// TestWakewordEmbedMatchesOnnxruntime: the wakeword-embed module emits one
// 96-d embedding per 80 ms of espeak-ng speech, equal (to float error) to
// openWakeWord's streaming front end run in python onnxruntime.
func TestWakewordEmbedMatchesOnnxruntime(t *testing.T) {
	pcm, _ := twoPhrases(t)
	mod := nnModule(t, "wakeword-embed", map[string]string{"melspec": "melspectrogram.onnx", "embedding": "embedding_model.onnx"})
	b, err := mod.Call(context.Background(), "embed", wavFile(pcm))
	if err != nil {
		t.Fatal(err)
	}
	var out wakewordOut
	if err := sdk.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Embeddings) != len(pcm)/1280 || len(out.Times) != len(out.Embeddings) || out.Step != 0.08 || out.Times[0] != 0.08 {
		t.Fatalf("%d embeddings (times %d, step %v) for %d samples, want %d", len(out.Embeddings), len(out.Times), out.Step, len(pcm), len(pcm)/1280)
	}
	// Speech and silence give different embeddings (the models ran on the audio).
	if d := dist(out.Embeddings[5], out.Embeddings[30]); d < 1 {
		t.Fatalf("silence and speech embeddings differ by only %v", d)
	}
	path := filepath.Join(t.TempDir(), "two.wav")
	os.WriteFile(path, wavFile(pcm), 0o644)
	shm := shared.Dir("models")
	var ref [][]float32
	pyRef(t, &ref, "ww", filepath.Join(shm, "melspectrogram.onnx"), filepath.Join(shm, "embedding_model.onnx"), path)
	if len(ref) != len(out.Embeddings) {
		t.Fatalf("%d embeddings, onnxruntime %d", len(out.Embeddings), len(ref))
	}
	maxDiff, maxAbs := 0.0, 0.0
	for i := range ref {
		if len(out.Embeddings[i]) != 96 {
			t.Fatalf("embedding %d has %d values", i, len(out.Embeddings[i]))
		}
		for j, v := range ref[i] {
			maxDiff = max(maxDiff, math.Abs(float64(out.Embeddings[i][j]-v)))
			maxAbs = max(maxAbs, math.Abs(float64(v)))
		}
	}
	t.Logf("%d embeddings of 96: max |e - e_ort| = %.3g (max |e_ort| = %.3g)", len(ref), maxDiff, maxAbs)
	if maxDiff > 1e-3*max(1, maxAbs) {
		t.Fatalf("max abs diff %v against onnxruntime", maxDiff)
	}
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// benchAudio is minutes of the two-phrase espeak-ng clip, repeated.
func benchAudio(b *testing.B, minutes float64) []int16 {
	clip, _ := twoPhrases(b)
	var pcm []int16
	for len(pcm) < int(minutes*60*16000) {
		pcm = append(pcm, clip...)
	}
	return pcm
}

// benchModule times one call of entry on audio per iteration and reports
// the real-time factor (seconds of compute per second of audio), beside
// python onnxruntime's (1 thread) on the same file when it is available.
func benchModule(b *testing.B, mod *runtime.Module, entry string, pcm []int16, ref ...string) {
	in := wavFile(pcm)
	ctx := context.Background()
	if _, err := mod.Call(ctx, entry, in); err != nil { // warm: instance, graphs
		b.Fatal(err)
	}
	secs := float64(len(pcm)) / 16000
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := mod.Call(ctx, entry, in); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/secs, "rtf")
	if cpu > 0 { // on a loaded machine the wall-clock figure is larger than the work
		b.ReportMetric(cpu.Seconds()/float64(b.N)/secs, "cpu-rtf")
	}
	b.ReportMetric(secs, "audio-s")
	if len(ref) > 0 && exec.Command("python3", "-c", "import onnxruntime").Run() == nil {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "a.wav")
		os.WriteFile(path, in, 0o644)
		var med [2]float64 // wall, cpu
		pyRef(b, &med, append(ref, path, "3")...)
		b.ReportMetric(med[0]/secs, "ort-rtf")
		b.ReportMetric(med[1]/secs, "ort-cpu-rtf")
	}
}

// BenchmarkVADModule: the vad module's segments on 3 minutes of speech
// and silence (extrapolates linearly to an hour: one window at a time).
//
//	go test ./modules -run XXX -bench VADModule -benchtime 3x -count 3
func BenchmarkVADModule(b *testing.B) {
	mod := nnModule(b, "vad", map[string]string{"vad": "silero_vad_v5.onnx"})
	benchModule(b, mod, "segments", benchAudio(b, 3), "vad-bench", filepath.Join(shared.Dir("models"), "silero_vad_v5.onnx"))
}

// BenchmarkWakewordEmbedModule: the wakeword-embed module on 1 minute.
func BenchmarkWakewordEmbedModule(b *testing.B) {
	mod := nnModule(b, "wakeword-embed", map[string]string{"melspec": "melspectrogram.onnx", "embedding": "embedding_model.onnx"})
	shm := shared.Dir("models")
	benchModule(b, mod, "embed", benchAudio(b, 1), "ww-bench", filepath.Join(shm, "melspectrogram.onnx"), filepath.Join(shm, "embedding_model.onnx"))
}
