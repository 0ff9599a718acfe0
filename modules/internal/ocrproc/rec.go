package ocrproc

import (
	"fmt"
	"math"
	"strings"
)

// MaxCropPixels bounds one crop (a box cannot be larger than the image,
// which Decode bounds already; this guards hand-made boxes).
const MaxCropPixels = 16 << 20

// Crop cuts box out of m upright (get_rotate_crop_image): its width is the
// longer of the top and bottom edges, its height the longer of the left and
// right ones, sampled bilinearly over the quadrilateral with replicated
// borders; a crop at least 1.5 times taller than wide is turned 90 degrees
// counter-clockwise, as vertical text.
func Crop(m *Image, b Box) (*Image, error) {
	w := int(math.Max(dist(b[0], b[1]), dist(b[2], b[3])))
	h := int(math.Max(dist(b[0], b[3]), dist(b[1], b[2])))
	if w <= 0 || h <= 0 || w*h > MaxCropPixels || w > 1<<16 || h > 1<<16 {
		return nil, fmt.Errorf("crop %dx%d: out of range", w, h)
	}
	out := NewImage(w, h)
	for y := 0; y < h; y++ {
		bv := (float64(y) + 0.5) / float64(h)
		for x := 0; x < w; x++ {
			a := (float64(x) + 0.5) / float64(w)
			sx := (1-a)*(1-bv)*b[0].X + a*(1-bv)*b[1].X + a*bv*b[2].X + (1-a)*bv*b[3].X
			sy := (1-a)*(1-bv)*b[0].Y + a*(1-bv)*b[1].Y + a*bv*b[2].Y + (1-a)*bv*b[3].Y
			o := 3 * (y*w + x)
			for c := 0; c < 3; c++ {
				out.Pix[o+c] = clampByte(m.bilinear(float32(sx), float32(sy), c))
			}
		}
	}
	if float64(h)/float64(w) >= 1.5 {
		out = out.rot90()
	}
	return out, nil
}

// LineInput is resize_norm_img: m scaled to height h keeping its aspect
// (width at most w), values (v/255-0.5)/0.5, zero-padded on the right to
// width w; CHW.
func LineInput(m *Image, w, h int) []float32 {
	rw := int(math.Ceil(float64(h) * float64(m.W) / float64(m.H)))
	rw = min(max(rw, 1), w)
	r := m.Resize(rw, h)
	out := make([]float32, 3*w*h)
	for c := 0; c < 3; c++ {
		for y := 0; y < h; y++ {
			row := out[c*w*h+y*w : c*w*h+y*w+rw]
			for x := range row {
				row[x] = (float32(r.Pix[3*(y*rw+x)+c])/255 - 0.5) / 0.5
			}
		}
	}
	return out
}

// RecWidth is the recognition input's width for a crop: PaddleOCR's
// max(320, 48*w/h) for height 48, capped at maxW.
func RecWidth(m *Image, h, maxW int) int {
	w := int(float64(h) * math.Max(320.0/48, float64(m.W)/float64(m.H)))
	return min(w, maxW)
}

// Dict is the recognition model's character list: index 0 is the CTC
// blank, then the keys file's lines, then a space.
type Dict []string

// ParseDict reads a PaddleOCR keys file (one character per line).
func ParseDict(keys string) Dict {
	keys = strings.TrimSuffix(strings.ReplaceAll(keys, "\r\n", "\n"), "\n")
	d := Dict{""}
	d = append(d, strings.Split(keys, "\n")...)
	return append(d, " ")
}

// CTCDecode is CTCLabelDecode's greedy path: per time step the best class
// and its probability; repeats collapsed, blanks dropped; the score is the
// mean probability of the kept steps (0 when none is kept).
func CTCDecode(idx []int32, prob []float32, d Dict) (string, float32, error) {
	if len(idx) != len(prob) {
		return "", 0, fmt.Errorf("ctc: %d indices, %d probabilities", len(idx), len(prob))
	}
	var sb strings.Builder
	var sum float64
	n := 0
	for t, c := range idx {
		if c < 0 || int(c) >= len(d) {
			return "", 0, fmt.Errorf("ctc: class %d at step %d outside the dictionary's %d", c, t, len(d))
		}
		if c == 0 || (t > 0 && idx[t-1] == c) {
			continue
		}
		sb.WriteString(d[c])
		sum += float64(prob[t])
		n++
	}
	if n == 0 {
		return "", 0, nil
	}
	return sb.String(), float32(sum / float64(n)), nil
}
