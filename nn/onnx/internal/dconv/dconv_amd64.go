//go:build amd64 && !purego

package dconv

import "golang.org/x/sys/cpu"

//go:generate go run gen.go

// Available reports whether Run has its AVX-512 kernel (otherwise it runs
// the pure-Go definition, which the callers do not choose for speed).
var Available = cpu.X86.HasAVX512F

//go:noescape
func tileJ1P16(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ2P12(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ3P8(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ4P6(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ1P8(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ1P4(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ2P8(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ2P4(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ3P4(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

//go:noescape
func tileJ4P4(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int)

// tile runs the tile of j blocks by p positions.
func tile(j, p int, x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int, bias *float32, relu int) {
	switch j<<8 | p {
	case 1<<8 | 16:
		tileJ1P16(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 1<<8 | 8:
		tileJ1P8(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 1<<8 | 4:
		tileJ1P4(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 2<<8 | 12:
		tileJ2P12(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 2<<8 | 8:
		tileJ2P8(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 2<<8 | 4:
		tileJ2P4(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 3<<8 | 8:
		tileJ3P8(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 3<<8 | 4:
		tileJ3P4(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 4<<8 | 6:
		tileJ4P6(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	case 4<<8 | 4:
		tileJ4P4(x, offs, kk, wt, ldw, out, ldo, bias, relu)
	default:
		panic("dconv: no such tile")
	}
}

// rowsAsm runs RunRows's tiles; CheckRows has bounded every access.
func rowsAsm(x []float32, offs []int32, wt, bias []float32, mp int, out []float32, oh, ow, w2 int, relu bool) {
	kk := len(offs)
	r := 0
	if relu {
		r = 1
	}
	for o, nb := 0, mp/16; nb > 0; {
		j := chunk(nb)
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; {
				p := pick(ow-ox, j)
				tile(j, p, &x[oy*w2+ox], &offs[0], kk, &wt[o], mp, &out[(oy*ow+ox)*mp+o], mp, &bias[o], r)
				ox += p
			}
		}
		o += 16 * j
		nb -= j
	}
}
