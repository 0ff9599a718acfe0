package onnx

import (
	"github.com/fennec-edge/fennec/nn/onnx/internal/dconv"
	"github.com/fennec-edge/fennec/nn/onnx/internal/vec"
)

// dconvEntry is a node's plan for the direct kernel: the taps' offsets in
// the stride-phase planes of cg channels, and, for a constant weight at
// src, the weight transposed per group to [cg*kh*kw][mp].
type dconvEntry struct {
	w         window // by value, as rowsEntry
	cg, mg, g int
	offs      []int32
	maxOff    int
	src       *float32
	wt        []float32
}

// Direct-kernel limits: output channels per group and output positions
// per image, what t_resnet needs (RATIONALE "Why a direct convolution for
// few output channels"); wider layers keep the packed product, which
// splits over threads (the direct path runs on one).
const (
	directMaxM     = 64
	directMaxPlane = 1024
)

// directOn lets the tests run the other product paths on a CPU with
// AVX-512.
var directOn = true

// useDirect reports whether convCore runs win (cg input and mg output
// channels per group) with the direct kernel.
func useDirect(win *window, cg, mg int, isCPU bool) bool {
	if !(directOn && dconv.Available && isCPU && win.kh*win.kw > 1 && cg > 1 && mg <= directMaxM &&
		win.oh*win.ow <= directMaxPlane && win.phaseable()) {
		return false
	}
	// the tap offsets are int32 (float64 keeps a hostile size from
	// overflowing the test itself)
	_, _, planeSz := phaseDims(win)
	return float64(cg)*float64(win.sh*win.sw)*float64(planeSz) < 1<<30
}

// directPlan returns the node's cached plan for win, making it on first
// use (or when the window or a constant weight changes).
func (c *kctx) directPlan(win *window, cg, mg, g int, wt []float32, wConst bool) *dconvEntry {
	var src *float32
	if wConst && len(wt) > 0 {
		src = &wt[0]
	}
	if c.n.wc != nil {
		if e := c.n.wc.dcv.Load(); e != nil && e.w == *win && e.cg == cg && e.mg == mg && e.g == g && e.src == src {
			return e
		}
	}
	_, w2, planeSz := phaseDims(win)
	per := win.sh * win.sw * planeSz
	e := &dconvEntry{w: *win, cg: cg, mg: mg, g: g, src: src}
	e.offs = make([]int32, 0, cg*win.kh*win.kw)
	for ch := 0; ch < cg; ch++ {
		for ki := 0; ki < win.kh; ki++ {
			ry, oy := (ki*win.dh)%win.sh, (ki*win.dh)/win.sh
			for kj := 0; kj < win.kw; kj++ {
				rx, ox := (kj*win.dw)%win.sw, (kj*win.dw)/win.sw
				o := ch*per + (ry*win.sw+rx)*planeSz + oy*w2 + ox
				e.offs = append(e.offs, int32(o))
				e.maxOff = max(e.maxOff, o)
			}
		}
	}
	if src != nil {
		mp := (mg + 15) &^ 15
		e.wt = make([]float32, g*len(e.offs)*mp)
		transposeWeights(e.wt, wt, g, mg, mp, len(e.offs))
	}
	if c.n.wc != nil {
		c.n.wc.dcv.Store(e)
	}
	return e
}

// transposeWeights writes the weight wt [g*mg][kk] as dst [g][kk][mp],
// channels mg to mp zero.
func transposeWeights(dst, wt []float32, g, mg, mp, kk int) {
	clear(dst[:g*kk*mp])
	for gi := 0; gi < g; gi++ {
		d := dst[gi*kk*mp : (gi+1)*kk*mp]
		for o := 0; o < mg; o++ {
			row := wt[(gi*mg+o)*kk : (gi*mg+o+1)*kk]
			for k, v := range row {
				d[k*mp+o] = v
			}
		}
	}
}

// convDirect runs a Conv with the direct kernel (dconv): per image and
// group, the cg input channels split into the stride phases of their
// padded planes (as the phased product does), the kernel over each output
// row's ow positions (dconv.RunRows: none of the w2-ow columns a flat run
// over the phase planes computes and drops) into a compact
// position-major buffer, and its transpose into place. A row's last
// tile may read past the row, into the next row or the zeroed slack
// after the phase planes.
//
// The bias (nil for none) is where the kernel's accumulators start; with
// relu the kernel stores max(0, x).
func (c *kctx) convDirect(win *window, x, wt, bias, out []float32, g, cg, mg int, wConst, relu bool) error {
	h2, w2, planeSz := phaseDims(win)
	per := win.sh * win.sw * planeSz
	kk := cg * win.kh * win.kw
	mp := (mg + 15) &^ 15
	read, write := dconv.RowsSpan(win.oh, win.ow, w2, mp)
	if err := c.checkWork("direct convolution phases", cg, per+read); err != nil {
		return err
	}
	if err := c.checkWork("direct convolution buffer", write, mp); err != nil {
		return err
	}
	e := c.directPlan(win, cg, mg, g, wt, wConst)
	nd := max(cg*per, e.maxOff+read)
	dec := c.s.hostGet(nd)
	defer c.s.hostPut(dec)
	// the pads, the spare rows and the slack stay zero; splitInterior
	// writes the rest
	clear(dec)
	tmp := c.s.hostGet(write * mp)
	defer c.s.hostPut(tmp)
	wtT := e.wt
	if wtT == nil {
		if err := c.checkWork("direct convolution weights", g*kk, mp); err != nil {
			return err
		}
		wtT = c.s.hostGet(g * kk * mp)
		defer c.s.hostPut(wtT)
		transposeWeights(wtT, wt, g, mg, mp, kk)
	}
	// the group's bias padded to mp channels
	bp := c.s.hostGet(mp)
	defer c.s.hostPut(bp)
	clear(bp)
	hw, plane, m := win.h*win.w, win.oh*win.ow, g*mg
	for b := 0; b < win.n; b++ {
		for gi := 0; gi < g; gi++ {
			splitInterior(win, x[(b*win.ch+gi*cg)*hw:(b*win.ch+gi*cg+cg)*hw], dec, cg, per, h2, w2, planeSz)
			if bias != nil {
				copy(bp, bias[gi*mg:(gi+1)*mg])
			}
			dconv.RunRows(dec, e.offs, wtT[gi*kk*mp:(gi+1)*kk*mp], bp, mp, tmp, win.oh, win.ow, w2, relu)
			dst := out[(b*m+gi*mg)*plane : (b*m+gi*mg+mg)*plane]
			vec.TransposeLd(dst, tmp, plane, mg, mp, plane)
		}
	}
	return nil
}

// splitInterior writes the stride phases of the zero-padded channels of
// src (cg planes of h*w) into dec (as splitPhases per channel, per floats
// apart) where dec's pads are already zero: only the rows and columns
// that come from the image are written, with each phase's ranges worked
// out once for all channels and the short rows of the small planes copied
// inline (a copy, fill or gather call per row cost more than its few
// elements: t_resnet's stages split ~2,400 rows per run).
func splitInterior(w *window, src, dec []float32, cg, per, h2, w2, planeSz int) {
	hw := w.h * w.w
	for py := 0; py < w.sh; py++ {
		// rows y2 with 0 <= y2*sh+py-pt < h
		y0, y1 := tapRange(py-w.pt, w.sh, h2, w.h)
		for px := 0; px < w.sw; px++ {
			j0, j1 := tapRange(px-w.pl, w.sw, w2, w.w)
			j0 = min(j0, w2)
			j1 = min(max(j1, j0), w2)
			n := j1 - j0
			if n == 0 || y1 <= y0 {
				continue
			}
			ix0 := px - w.pl + j0*w.sw
			for ch := 0; ch < cg; ch++ {
				p := dec[ch*per+(py*w.sw+px)*planeSz:][:planeSz]
				img := src[ch*hw : (ch+1)*hw]
				for y2 := y0; y2 < y1; y2++ {
					row := p[y2*w2+j0:][:n]
					s := img[(y2*w.sh+py-w.pt)*w.w+ix0:]
					switch {
					case w.sw == 1 && n >= 16:
						copy(row, s)
					case w.sw == 1:
						s = s[:n]
						for j := range row {
							row[j] = s[j]
						}
					case w.sw == 2 && n >= 16:
						vec.Gather2(row, s)
					default:
						s = s[:(n-1)*w.sw+1]
						for j := range row {
							row[j] = s[j*w.sw]
						}
					}
				}
			}
		}
	}
}
