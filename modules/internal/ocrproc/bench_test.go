package ocrproc

import (
	"os"
	"testing"
)

// BenchmarkPipeline times the guest's post-processing steps natively on a
// rendered page (FENNEC_OCR_PAGE, e.g. written by FENNEC_OCR_DUMP in
// modules/ocr_test.go); the probability map is the page's darkness.
func BenchmarkPipeline(b *testing.B) {
	p := os.Getenv("FENNEC_OCR_PAGE")
	if p == "" {
		b.Skip("FENNEC_OCR_PAGE not set")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Decode(data, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	w, h := DetSize(m.W, m.H, 960)
	in := DetInput(m, w, h)
	prob := make([]float32, w*h)
	for i := range prob {
		if in[i] < 0 {
			prob[i] = 0.9
		}
	}
	boxes, err := DBPostprocess(prob, w, h, m.W, m.H, DBOptions{UnclipRatio: 2.5})
	if err != nil {
		b.Fatal(err)
	}
	if len(boxes) == 0 { // 24 line-sized boxes, as the rendered page has
		for i := range 24 {
			y := float64(41*i + 20)
			boxes = append(boxes, Box{{X: 25, Y: y}, {X: 330, Y: y}, {X: 330, Y: y + 36}, {X: 25, Y: y + 36}})
		}
	}
	b.Run("decode", func(b *testing.B) {
		for range b.N {
			Decode(data, Limits{})
		}
	})
	b.Run("detinput", func(b *testing.B) {
		for range b.N {
			DetInput(m, w, h)
		}
	})
	b.Run("dbpost", func(b *testing.B) {
		for range b.N {
			DBPostprocess(prob, w, h, m.W, m.H, DBOptions{UnclipRatio: 2.5})
		}
	})
	b.Run("crop+lineinput", func(b *testing.B) {
		b.ReportMetric(float64(len(boxes)), "boxes")
		for range b.N {
			for _, bx := range boxes {
				c, err := Crop(m, bx)
				if err == nil {
					LineInput(c, RecWidth(c, 48, 3200), 48)
				}
			}
		}
	})
}
