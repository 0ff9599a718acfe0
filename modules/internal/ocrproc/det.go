package ocrproc

import (
	"fmt"
	"math"
	"sort"
)

// DetSize is PaddleOCR's DetResizeForTest (limit_type "max"): the long
// side scaled down to at most limit, each side rounded to a multiple of 32
// (at least 32).
func DetSize(w, h, limit int) (int, int) {
	ratio := 1.0
	if m := max(w, h); m > limit {
		ratio = float64(limit) / float64(m)
	}
	r := func(v int) int { return max(int(math.Round(float64(v)*ratio/32))*32, 32) }
	return r(w), r(h)
}

var (
	detMean = [3]float32{0.485, 0.456, 0.406}
	detStd  = [3]float32{0.229, 0.224, 0.225}
)

// DetInput resizes m to w x h and returns the detector's input, CHW in
// the image's (BGR) channel order, normalised with ImageNet's mean and std.
func DetInput(m *Image, w, h int) []float32 {
	r := m.Resize(w, h)
	out := make([]float32, 3*w*h)
	for c := 0; c < 3; c++ {
		plane := out[c*w*h : (c+1)*w*h]
		for i := range plane {
			plane[i] = (float32(r.Pix[3*i+c])/255 - detMean[c]) / detStd[c]
		}
	}
	return out
}

// Point is an image position in pixels.
type Point struct{ X, Y float64 }

// Box is a text region: four corners clockwise from the top left.
type Box [4]Point

// DBOptions are DBPostProcess's settings; zero fields take PaddleOCR's
// defaults.
type DBOptions struct {
	Thresh        float32 // bitmap threshold (0.3)
	BoxThresh     float32 // minimum mean probability inside a box (0.6)
	UnclipRatio   float64 // (1.5)
	MaxCandidates int     // regions examined, largest first (1000)
}

func (o DBOptions) withDefaults() DBOptions {
	if o.Thresh == 0 {
		o.Thresh = 0.3
	}
	if o.BoxThresh == 0 {
		o.BoxThresh = 0.6
	}
	if o.UnclipRatio == 0 {
		o.UnclipRatio = 1.5
	}
	if o.MaxCandidates == 0 {
		o.MaxCandidates = 1000
	}
	return o
}

const minSize = 3

// DBPostprocess turns the detector's probability map prob (h x w) into
// boxes in the coordinates of the source image (srcW x srcH): threshold,
// connected regions (8-connected, as OpenCV's outer contours), minimum-area
// rectangle of each, its mean probability, unclip by area*ratio/perimeter,
// scale, and PaddleOCR's filter of tiny boxes. Boxes come sorted top to
// bottom, left to right on a line.
func DBPostprocess(prob []float32, w, h, srcW, srcH int, opt DBOptions) ([]Box, error) {
	if w <= 0 || h <= 0 || len(prob) != w*h {
		return nil, fmt.Errorf("det map: %d values for %dx%d", len(prob), w, h)
	}
	opt = opt.withDefaults()
	regions := components(prob, w, h, opt.Thresh)
	// OpenCV returns contours in no useful order and PaddleOCR keeps the
	// first max_candidates; take the largest regions instead.
	sort.SliceStable(regions, func(i, j int) bool { return regions[i].n > regions[j].n })
	if len(regions) > opt.MaxCandidates {
		regions = regions[:opt.MaxCandidates]
	}
	var boxes []Box
	for _, rg := range regions {
		hull := convexHull(rg.pts)
		box, sside := miniBox(hull)
		if sside < minSize {
			continue
		}
		if boxScore(prob, w, h, box) < opt.BoxThresh {
			continue
		}
		box, sside = unclip(box, opt.UnclipRatio)
		if sside < minSize+2 {
			continue
		}
		var b Box
		for i, p := range box {
			b[i] = Point{
				X: clampF(math.Round(p.X/float64(w)*float64(srcW)), 0, float64(srcW-1)),
				Y: clampF(math.Round(p.Y/float64(h)*float64(srcH)), 0, float64(srcH-1)),
			}
		}
		if dist(b[0], b[1]) <= 3 || dist(b[0], b[3]) <= 3 {
			continue
		}
		boxes = append(boxes, b)
	}
	SortBoxes(boxes)
	return boxes, nil
}

type region struct {
	n   int     // pixels
	pts []Point // the leftmost and rightmost pixel of each row
}

// components labels 8-connected regions of prob > thresh with an explicit
// stack (bounded by w*h) and keeps, per region, each row's extreme pixels:
// enough for the convex hull.
func components(prob []float32, w, h int, thresh float32) []region {
	label := make([]int32, w*h)
	var out []region
	stack := make([]int32, 0, 64)
	rowMin := make([]int32, h)
	rowMax := make([]int32, h)
	for start := range prob {
		if prob[start] <= thresh || label[start] != 0 {
			continue
		}
		id := int32(len(out) + 1)
		label[start] = id
		stack = append(stack[:0], int32(start))
		y0, y1 := h, -1
		n := 0
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			n++
			x, y := p%w, p/w
			if y < y0 {
				for r := y; r < y0 && r < h; r++ {
					rowMin[r], rowMax[r] = int32(w), -1
				}
				y0 = y
			}
			if y > y1 {
				for r := max(y1+1, y0); r <= y; r++ {
					rowMin[r], rowMax[r] = int32(w), -1
				}
				y1 = y
			}
			rowMin[y] = min(rowMin[y], int32(x))
			rowMax[y] = max(rowMax[y], int32(x))
			for dy := -1; dy <= 1; dy++ {
				ny := y + dy
				if ny < 0 || ny >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					nx := x + dx
					if nx < 0 || nx >= w || (dx == 0 && dy == 0) {
						continue
					}
					q := ny*w + nx
					if label[q] == 0 && prob[q] > thresh {
						label[q] = id
						stack = append(stack, int32(q))
					}
				}
			}
		}
		rg := region{n: n}
		for r := y0; r <= y1; r++ {
			if rowMax[r] < 0 {
				continue
			}
			rg.pts = append(rg.pts, Point{float64(rowMin[r]), float64(r)})
			if rowMax[r] != rowMin[r] {
				rg.pts = append(rg.pts, Point{float64(rowMax[r]), float64(r)})
			}
		}
		out = append(out, rg)
	}
	return out
}

func cross(o, a, b Point) float64 { return (a.X-o.X)*(b.Y-o.Y) - (a.Y-o.Y)*(b.X-o.X) }

// convexHull is Andrew's monotone chain, counter-clockwise, no collinear
// points.
func convexHull(pts []Point) []Point {
	p := append([]Point(nil), pts...)
	sort.Slice(p, func(i, j int) bool {
		if p[i].X != p[j].X {
			return p[i].X < p[j].X
		}
		return p[i].Y < p[j].Y
	})
	if len(p) < 3 {
		return p
	}
	hull := make([]Point, 0, 2*len(p))
	for _, q := range p {
		for len(hull) >= 2 && cross(hull[len(hull)-2], hull[len(hull)-1], q) <= 0 {
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, q)
	}
	lower := len(hull) + 1
	for i := len(p) - 2; i >= 0; i-- {
		q := p[i]
		for len(hull) >= lower && cross(hull[len(hull)-2], hull[len(hull)-1], q) <= 0 {
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, q)
	}
	return hull[:len(hull)-1]
}

// minAreaRect returns the corners of the minimum-area rectangle around a
// convex polygon (rotating calipers over its edges).
func minAreaRect(hull []Point) [4]Point {
	if len(hull) == 0 {
		return [4]Point{}
	}
	if len(hull) == 1 {
		return [4]Point{hull[0], hull[0], hull[0], hull[0]}
	}
	best := math.Inf(1)
	var rect [4]Point
	for i := range hull {
		a, b := hull[i], hull[(i+1)%len(hull)]
		ex, ey := b.X-a.X, b.Y-a.Y
		l := math.Hypot(ex, ey)
		if l == 0 {
			continue
		}
		ux, uy := ex/l, ey/l // edge direction
		vx, vy := -uy, ux    // normal
		minU, maxU, minV, maxV := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, p := range hull {
			u := (p.X-a.X)*ux + (p.Y-a.Y)*uy
			v := (p.X-a.X)*vx + (p.Y-a.Y)*vy
			minU, maxU = math.Min(minU, u), math.Max(maxU, u)
			minV, maxV = math.Min(minV, v), math.Max(maxV, v)
		}
		if area := (maxU - minU) * (maxV - minV); area < best-1e-9 {
			best = area
			c := func(u, v float64) Point { return Point{a.X + u*ux + v*vx, a.Y + u*uy + v*vy} }
			rect = [4]Point{c(minU, minV), c(maxU, minV), c(maxU, maxV), c(minU, maxV)}
		}
	}
	return rect
}

// miniBox is PaddleOCR's get_mini_boxes: the minimum-area rectangle with
// its corners ordered top-left, top-right, bottom-right, bottom-left, and
// its shorter side.
func miniBox(hull []Point) ([4]Point, float64) {
	r := minAreaRect(hull)
	return orderBox(r), math.Min(dist(r[0], r[1]), dist(r[1], r[2]))
}

func orderBox(r [4]Point) [4]Point {
	p := r
	sort.Slice(p[:], func(i, j int) bool { return p[i].X < p[j].X })
	var out [4]Point
	if p[1].Y > p[0].Y {
		out[0], out[3] = p[0], p[1]
	} else {
		out[0], out[3] = p[1], p[0]
	}
	if p[3].Y > p[2].Y {
		out[1], out[2] = p[2], p[3]
	} else {
		out[1], out[2] = p[3], p[2]
	}
	return out
}

func dist(a, b Point) float64 { return math.Hypot(a.X-b.X, a.Y-b.Y) }

func clampF(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// boxScore is box_score_fast: the mean probability over the pixels of the
// box's bounding rectangle that lie in the box (corners truncated to
// integers, boundary included, as cv2.fillPoly).
func boxScore(prob []float32, w, h int, box [4]Point) float32 {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	var q [4]Point
	for i, p := range box {
		xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
		ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
		q[i] = Point{math.Trunc(p.X), math.Trunc(p.Y)}
	}
	x0 := int(clampF(math.Floor(xmin), 0, float64(w-1)))
	x1 := int(clampF(math.Ceil(xmax), 0, float64(w-1)))
	y0 := int(clampF(math.Floor(ymin), 0, float64(h-1)))
	y1 := int(clampF(math.Ceil(ymax), 0, float64(h-1)))
	var sum float64
	n := 0
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			if inQuad(q, Point{float64(x), float64(y)}) {
				sum += float64(prob[y*w+x])
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float32(sum / float64(n))
}

// inQuad reports whether p lies in the convex quadrilateral q (either
// orientation), boundary included.
func inQuad(q [4]Point, p Point) bool {
	var pos, neg bool
	for i := range q {
		c := cross(q[i], q[(i+1)%4], p)
		if c > 1e-9 {
			pos = true
		} else if c < -1e-9 {
			neg = true
		}
	}
	return !(pos && neg)
}

// unclip grows a rectangle by d = area*ratio/perimeter on every side:
// the minimum-area rectangle of pyclipper's round-joined offset polygon.
func unclip(box [4]Point, ratio float64) ([4]Point, float64) {
	wv := Point{box[1].X - box[0].X, box[1].Y - box[0].Y}
	hv := Point{box[3].X - box[0].X, box[3].Y - box[0].Y}
	bw, bh := math.Hypot(wv.X, wv.Y), math.Hypot(hv.X, hv.Y)
	if bw == 0 || bh == 0 {
		return box, 0
	}
	d := bw * bh * ratio / (2 * (bw + bh))
	ux, uy := wv.X/bw*d, wv.Y/bw*d
	vx, vy := hv.X/bh*d, hv.Y/bh*d
	out := [4]Point{
		{box[0].X - ux - vx, box[0].Y - uy - vy},
		{box[1].X + ux - vx, box[1].Y + uy - vy},
		{box[2].X + ux + vx, box[2].Y + uy + vy},
		{box[3].X - ux + vx, box[3].Y - uy + vy},
	}
	return orderBox(out), math.Min(bw, bh) + 2*d
}

// SortBoxes orders boxes top to bottom, and left to right among boxes
// whose tops are within 10 px (PaddleOCR's sorted_boxes).
func SortBoxes(b []Box) {
	sort.SliceStable(b, func(i, j int) bool {
		if b[i][0].Y != b[j][0].Y {
			return b[i][0].Y < b[j][0].Y
		}
		return b[i][0].X < b[j][0].X
	})
	for i := 0; i+1 < len(b); i++ {
		for j := i; j >= 0; j-- {
			if math.Abs(b[j+1][0].Y-b[j][0].Y) < 10 && b[j+1][0].X < b[j][0].X {
				b[j], b[j+1] = b[j+1], b[j]
			} else {
				break
			}
		}
	}
}
