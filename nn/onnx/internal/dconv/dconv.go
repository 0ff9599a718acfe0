// Package dconv is a direct convolution kernel for convolutions with few
// output channels on small planes (a ResNet-style CNN's 3x3 convolutions
// of 16-64 channels): for every position q of a flat plane and every
// output channel o,
//
//	out[q*mp+o] = sum over k of x[offs[k]+q] * wt[k*mp+o]
//
// where offs holds, per tap k (input channel, kernel row, kernel column),
// the tap's offset in the caller's stride-phase planes of the padded input
// and wt is the weight transposed to [tap][output channel], mp (a multiple
// of 16) channels wide. The AVX-512 tiles keep J blocks of 16 output
// channels for P consecutive positions in registers (J*P accumulators,
// the input broadcast, the weights loaded once per tap), so nothing is
// unrolled or packed per call; the result is position-major, which the
// caller transposes.
package dconv

import "fmt"

// tileP is the positions per tile of a chunk of J blocks (J*P <= 24
// accumulators, with J weight vectors and a broadcast register).
var tileP = [5]int{0, 16, 12, 8, 6}

// Unit is a multiple of every tile's positions: Run over [0, npos) is Run
// over [q0, q1) and [q1, npos) (x and out advanced by q0 and q0*mp) for q0,
// q1 multiples of Unit, within the same buffers.
const Unit = 48

// chunk returns the blocks of the next chunk out of nb blocks left.
func chunk(nb int) int { return min(nb, 4) }

// Rows returns the positions Run computes (and out must hold, times mp)
// for npos positions and mp output channels: npos rounded up to the
// tiles' width, which the caller's input must cover too.
func Rows(npos, mp int) int {
	r := npos
	for nb := mp / 16; nb > 0; {
		j := chunk(nb)
		r = max(r, (npos+tileP[j]-1)/tileP[j]*tileP[j])
		nb -= j
	}
	return r
}

// Check reports why Run would refuse its arguments (nil when it would
// not): mp a positive multiple of 16, wt of len(offs) x mp, out of
// Rows(npos, mp) x mp, every tap's run of Rows positions inside x.
func Check(x []float32, offs []int32, wt []float32, mp int, out []float32, npos int) error {
	if mp <= 0 || mp%16 != 0 || npos < 0 {
		return fmt.Errorf("dconv: %d output channels, %d positions", mp, npos)
	}
	kk, rows := len(offs), Rows(npos, mp)
	if len(wt) < kk*mp || len(out) < rows*mp {
		return fmt.Errorf("dconv: weights %d, out %d for %d taps x %d channels x %d positions", len(wt), len(out), kk, mp, rows)
	}
	for _, o := range offs {
		if o < 0 || int(o)+rows > len(x) {
			return fmt.Errorf("dconv: tap offset %d + %d positions outside %d inputs", o, rows, len(x))
		}
	}
	return nil
}

// Run computes out (see the package comment) for positions [0, npos);
// the rows from npos to Rows(npos, mp) are scratch (the tiles past the
// end). It panics where Check refuses.
func Run(x []float32, offs []int32, wt []float32, mp int, out []float32, npos int) {
	if err := Check(x, offs, wt, mp, out, npos); err != nil {
		panic(err)
	}
	if len(offs) == 0 {
		clear(out[:Rows(npos, mp)*mp])
		return
	}
	if !Available {
		runGo(x, offs, wt, mp, out, npos)
		return
	}
	runAsm(x, offs, wt, mp, out, npos)
}

// runGo is the definition (and the path without AVX-512).
func runGo(x []float32, offs []int32, wt []float32, mp int, out []float32, npos int) {
	rows := Rows(npos, mp)
	kk := len(offs)
	for q := 0; q < rows; q++ {
		o := out[q*mp : (q+1)*mp]
		clear(o)
		for k := 0; k < kk; k++ {
			v := x[int(offs[k])+q]
			w := wt[k*mp : (k+1)*mp]
			for i := range o {
				o[i] += v * w[i]
			}
		}
	}
}
