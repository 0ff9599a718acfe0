// Package ocrproc is the guest-side arithmetic of the ocr module
// (modules/ocr), kept free of host calls so that it is tested and fuzzed
// natively: decoding an untrusted image (PNG, JPEG, binary PGM/PPM) under
// size limits, the PaddleOCR pre-processing of detection, direction and
// recognition inputs, DB post-processing of the detection map into text
// boxes, cropping a box upright, and CTC greedy decoding.
//
// It follows PaddleOCR's reference pipeline (tools/infer/predict_system.py,
// ppocr/postprocess/db_postprocess.py, rec_postprocess.py): channels in
// BGR order, det resized so the long side is at most 960 and both sides are
// multiples of 32, box threshold 0.3 / box score 0.6 / unclip 1.5, crops
// 48 px high, results under a score of 0.5 dropped.
package ocrproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder
	_ "image/png"  // registers the PNG decoder
)

// Limits bound what an untrusted image may make the decoder allocate.
// Zero fields take the defaults.
type Limits struct {
	MaxSide   int // longest side in pixels (default 8192)
	MaxPixels int // width*height (default 16 Mpx)
}

func (l Limits) withDefaults() Limits {
	if l.MaxSide <= 0 {
		l.MaxSide = 8192
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = 16 << 20
	}
	return l
}

// Image is an 8-bit image, 3 bytes per pixel in B, G, R order (PaddleOCR
// works on OpenCV's BGR images), row-major.
type Image struct {
	W, H int
	Pix  []uint8
}

// NewImage returns a black w x h image.
func NewImage(w, h int) *Image { return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)} }

// ErrTooLarge is returned for an image whose header claims more pixels
// than the limits allow; nothing of its size is allocated.
var ErrTooLarge = errors.New("image too large")

func (l Limits) check(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image size %dx%d: must be positive", w, h)
	}
	if w > l.MaxSide || h > l.MaxSide || w*h > l.MaxPixels {
		return fmt.Errorf("%w: %dx%d (limits: side %d, %d pixels)", ErrTooLarge, w, h, l.MaxSide, l.MaxPixels)
	}
	return nil
}

// Decode reads a PNG, JPEG or binary PGM/PPM (P5/P6, maxval <= 255) image.
// The header's size is checked against lim before any pixel is decoded.
func Decode(data []byte, lim Limits) (*Image, error) {
	lim = lim.withDefaults()
	if len(data) >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '6') {
		return decodePNM(data, lim)
	}
	if len(data) >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '4' {
		return nil, fmt.Errorf("netpbm P%c (ASCII or bitmap) is not supported: use binary P5 (PGM) or P6 (PPM)", data[1])
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image header: %w (PNG, JPEG, PGM and PPM are read)", err)
	}
	if err := lim.check(cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	m, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	return fromImage(m), nil
}

func fromImage(m image.Image) *Image {
	b := m.Bounds()
	out := NewImage(b.Dx(), b.Dy())
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			var r, g, bl uint8
			switch m := m.(type) {
			case *image.Gray:
				v := m.GrayAt(x, y).Y
				r, g, bl = v, v, v
			case *image.YCbCr:
				c := m.YCbCrAt(x, y)
				r, g, bl = color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			default:
				// alpha composited over white, as a page would be
				cr, cg, cb, ca := m.At(x, y).RGBA()
				w := 0xffff - ca
				r, g, bl = uint8((cr+w)>>8), uint8((cg+w)>>8), uint8((cb+w)>>8)
			}
			out.Pix[i], out.Pix[i+1], out.Pix[i+2] = bl, g, r
			i += 3
		}
	}
	return out
}

// decodePNM reads binary PGM (P5) and PPM (P6) with maxval <= 255.
func decodePNM(data []byte, lim Limits) (*Image, error) {
	kind := data[1]
	pos := 2
	var vals [3]int
	for k := range vals {
		// whitespace and comments before each header number
		for pos < len(data) {
			c := data[pos]
			if c == '#' {
				for pos < len(data) && data[pos] != '\n' {
					pos++
				}
				continue
			}
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				pos++
				continue
			}
			break
		}
		start := pos
		v := 0
		for pos < len(data) && data[pos] >= '0' && data[pos] <= '9' {
			if v > 1<<24 {
				return nil, fmt.Errorf("pnm header: %s too large", [3]string{"width", "height", "maxval"}[k])
			}
			v = v*10 + int(data[pos]-'0')
			pos++
		}
		if pos == start {
			return nil, fmt.Errorf("pnm header: %s missing at byte %d", [3]string{"width", "height", "maxval"}[k], pos)
		}
		vals[k] = v
	}
	if pos >= len(data) || !(data[pos] == ' ' || data[pos] == '\t' || data[pos] == '\n' || data[pos] == '\r') {
		return nil, fmt.Errorf("pnm header: no whitespace after maxval at byte %d", pos)
	}
	pos++
	w, h, maxval := vals[0], vals[1], vals[2]
	if err := lim.check(w, h); err != nil {
		return nil, fmt.Errorf("pnm: %w", err)
	}
	if maxval < 1 || maxval > 255 {
		return nil, fmt.Errorf("pnm: maxval %d: only 1..255 (8-bit) is read", maxval)
	}
	ch := 1
	if kind == '6' {
		ch = 3
	}
	need := w * h * ch
	if len(data)-pos < need {
		return nil, fmt.Errorf("pnm: %dx%d needs %d pixel bytes, file has %d", w, h, need, len(data)-pos)
	}
	px := data[pos : pos+need]
	out := NewImage(w, h)
	scale := func(v uint8) uint8 {
		if int(v) >= maxval {
			return 255
		}
		return uint8(int(v) * 255 / maxval)
	}
	for i := 0; i < w*h; i++ {
		if ch == 1 {
			v := scale(px[i])
			out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
		} else {
			out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = scale(px[3*i+2]), scale(px[3*i+1]), scale(px[3*i])
		}
	}
	return out, nil
}

// at returns channel c of pixel (x, y), clamping coordinates to the
// image (OpenCV's BORDER_REPLICATE).
func (m *Image) at(x, y, c int) float32 {
	x = min(max(x, 0), m.W-1)
	y = min(max(y, 0), m.H-1)
	return float32(m.Pix[3*(y*m.W+x)+c])
}

// bilinear samples channel c at (fx, fy) in pixel-centre coordinates.
func (m *Image) bilinear(fx, fy float32, c int) float32 {
	x0f, y0f := floor32(fx), floor32(fy)
	ax, ay := fx-x0f, fy-y0f
	x0, y0 := int(x0f), int(y0f)
	top := m.at(x0, y0, c)*(1-ax) + m.at(x0+1, y0, c)*ax
	bot := m.at(x0, y0+1, c)*(1-ax) + m.at(x0+1, y0+1, c)*ax
	return top*(1-ay) + bot*ay
}

func floor32(v float32) float32 {
	i := float32(int(v))
	if i > v {
		i--
	}
	return i
}

// Resize scales m to w x h with bilinear interpolation on half-pixel
// centres (cv2.resize INTER_LINEAR).
func (m *Image) Resize(w, h int) *Image {
	out := NewImage(w, h)
	sx, sy := float32(m.W)/float32(w), float32(m.H)/float32(h)
	for y := 0; y < h; y++ {
		fy := (float32(y)+0.5)*sy - 0.5
		for x := 0; x < w; x++ {
			fx := (float32(x)+0.5)*sx - 0.5
			o := 3 * (y*w + x)
			for c := 0; c < 3; c++ {
				out.Pix[o+c] = clampByte(m.bilinear(fx, fy, c))
			}
		}
	}
	return out
}

func clampByte(v float32) uint8 {
	v += 0.5
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v)
}

// Rotate180 turns the image upside down in place.
func (m *Image) Rotate180() {
	n := m.W * m.H
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		a, b := m.Pix[3*i:3*i+3], m.Pix[3*j:3*j+3]
		a[0], a[1], a[2], b[0], b[1], b[2] = b[0], b[1], b[2], a[0], a[1], a[2]
	}
}

// rot90 turns the image 90 degrees counter-clockwise (np.rot90).
func (m *Image) rot90() *Image {
	out := NewImage(m.H, m.W)
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			// (x, y) -> (y, W-1-x)
			ny, nx := m.W-1-x, y
			copy(out.Pix[3*(ny*out.W+nx):3*(ny*out.W+nx)+3], m.Pix[3*(y*m.W+x):3*(y*m.W+x)+3])
		}
	}
	return out
}
