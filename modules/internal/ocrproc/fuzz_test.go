package ocrproc

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"testing"
)

// FuzzDecode: any bytes either decode to an image within the limits, whose
// pixel buffer matches its size, or give an error; never a panic or an
// allocation beyond the limits.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 3, 2)))
	f.Add(buf.Bytes())
	f.Add([]byte("P5 2 2 255\n\x00\x01\x02\x03"))
	f.Add([]byte("P6 1 1 15\n\x01\x02\x03"))
	f.Add([]byte("P5 100000 100000 255\n"))
	lim := Limits{MaxSide: 256, MaxPixels: 1 << 14}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, lim)
		if err != nil {
			return
		}
		if m.W <= 0 || m.H <= 0 || m.W > 256 || m.H > 256 || m.W*m.H > 1<<14 || len(m.Pix) != 3*m.W*m.H {
			t.Fatalf("decoded %dx%d with %d bytes", m.W, m.H, len(m.Pix))
		}
	})
}

func TestDecodeRefusesHugeHeader(t *testing.T) {
	_, err := Decode([]byte("P6 100000 100000 255\n"), Limits{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

// TestDBPostprocessRectangle: one 40x8 blob of probability 0.9 in a 64x32
// map gives one box around it, grown by unclip and scaled to the source.
func TestDBPostprocessRectangle(t *testing.T) {
	w, h := 64, 32
	prob := make([]float32, w*h)
	for y := 12; y < 20; y++ {
		for x := 10; x < 50; x++ {
			prob[y*w+x] = 0.9
		}
	}
	boxes, err := DBPostprocess(prob, w, h, 128, 64, DBOptions{})
	if err != nil || len(boxes) != 1 {
		t.Fatalf("boxes %v, err %v", boxes, err)
	}
	b := boxes[0]
	if !(b[0].X < 20 && b[0].Y < 24 && b[2].X > 98 && b[2].Y > 38 && b[2].X <= 127 && b[2].Y <= 63) {
		t.Fatalf("box %v does not enclose the blob scaled x2", b)
	}
	if _, err := DBPostprocess(prob[:10], w, h, 128, 64, DBOptions{}); err == nil {
		t.Fatal("short map accepted")
	}
}
