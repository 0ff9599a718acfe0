// Package dconv is a direct convolution kernel for convolutions with few
// output channels on small planes (a ResNet-style CNN's 3x3 convolutions
// of 16-64 channels): for every output position (oy, ox) and every output
// channel o (RunRows),
//
//	out[(oy*ow+ox)*mp+o] = bias[o] + sum over k of x[offs[k]+oy*w2+ox] * wt[k*mp+o]
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

// chunk returns the blocks of the next chunk out of nb blocks left.
func chunk(nb int) int { return min(nb, 4) }

// rowTiles lists the tile widths of a chunk of J blocks, widest first.
var rowTiles = [5][]int{nil, {16, 8, 4}, {12, 8, 4}, {8, 4}, {6, 4}}

// pick returns the width of the tile that starts rem positions before a
// row's end: the widest that fits, else the narrowest (which overruns).
func pick(rem, j int) int {
	for _, p := range rowTiles[j] {
		if p <= rem {
			return p
		}
	}
	return rowTiles[j][len(rowTiles[j])-1]
}

// RowsSpan returns, for RunRows over oh rows of ow positions at row stride
// w2 and mp channels, how many positions past a tap's offset it reads and
// how many out rows (of mp) it writes: the last row's last tile may run
// past ow.
func RowsSpan(oh, ow, w2, mp int) (read, write int) {
	over := 0
	for nb := mp / 16; nb > 0; {
		j := chunk(nb)
		q := 0
		for q < ow {
			q += pick(ow-q, j)
		}
		over = max(over, q-ow)
		nb -= j
	}
	return (oh-1)*w2 + ow + over, oh*ow + over
}

// CheckRows reports why RunRows would refuse its arguments (nil when it
// would not).
func CheckRows(x []float32, offs []int32, wt, bias []float32, mp int, out []float32, oh, ow, w2 int) error {
	if mp <= 0 || mp%16 != 0 || oh <= 0 || ow <= 0 || w2 < ow {
		return fmt.Errorf("dconv: %d output channels, %d rows of %d at stride %d", mp, oh, ow, w2)
	}
	read, write := RowsSpan(oh, ow, w2, mp)
	kk := len(offs)
	if len(wt) < kk*mp || len(out) < write*mp || len(bias) < mp {
		return fmt.Errorf("dconv: weights %d, out %d, bias %d for %d taps x %d channels x %d positions", len(wt), len(out), len(bias), kk, mp, write)
	}
	for _, o := range offs {
		if o < 0 || int(o)+read > len(x) {
			return fmt.Errorf("dconv: tap offset %d + %d positions outside %d inputs", o, read, len(x))
		}
	}
	return nil
}

// RunRows computes the output rows: for oh rows of ow positions
// whose inputs lie w2 apart (the phase planes' row stride), for oy < oh,
// ox < ow and o < mp,
//
//	out[(oy*ow+ox)*mp+o] = bias[o] + sum over k of x[offs[k]+oy*w2+ox] * wt[k*mp+o]
//
// (bias holds mp values: the accumulators start there; with relu, each
// result is max(0, result), a NaN kept) so the w2-ow columns between rows (a flat run over the phase planes
// would compute and drop them) are not computed, and the result is
// compact. Each row is covered by tiles of the widths
// the chunk has (16, 12, 8, 6 or 4 positions); a last tile that runs past
// the row's end writes into the next row's place before that row is
// computed, or into out's slack (RowsSpan) after the last row. It panics
// where CheckRows refuses.
func RunRows(x []float32, offs []int32, wt, bias []float32, mp int, out []float32, oh, ow, w2 int, relu bool) {
	if err := CheckRows(x, offs, wt, bias, mp, out, oh, ow, w2); err != nil {
		panic(err)
	}
	if len(offs) == 0 || !Available {
		rowsGo(x, offs, wt, bias, mp, out, oh, ow, w2, relu)
		return
	}
	rowsAsm(x, offs, wt, bias, mp, out, oh, ow, w2, relu)
}

// rowsGo is RunRows's definition (positions past each row not written).
func rowsGo(x []float32, offs []int32, wt, bias []float32, mp int, out []float32, oh, ow, w2 int, relu bool) {
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			o := out[(oy*ow+ox)*mp:][:mp]
			copy(o, bias[:mp])
			for k, off := range offs {
				v := x[int(off)+oy*w2+ox]
				w := wt[k*mp : (k+1)*mp]
				for i := range o {
					o[i] += v * w[i]
				}
			}
			if relu {
				for i, v := range o {
					if v < 0 {
						o[i] = 0
					}
				}
			}
		}
	}
}
