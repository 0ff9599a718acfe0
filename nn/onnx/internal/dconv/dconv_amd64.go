//go:build amd64 && !purego

package dconv

import "golang.org/x/sys/cpu"

//go:generate go run gen.go

// Available reports whether Run has its AVX-512 kernel (otherwise it runs
// the pure-Go definition, which the callers do not choose for speed).
var Available = cpu.X86.HasAVX512F

//go:noescape
func tileJ1P16(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int)

//go:noescape
func tileJ2P12(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int)

//go:noescape
func tileJ3P8(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int)

//go:noescape
func tileJ4P6(x *float32, offs *int32, kk int, wt *float32, ldw int, out *float32, ldo int)

// runAsm runs the tiles; Check has bounded every read and write.
func runAsm(x []float32, offs []int32, wt []float32, mp int, out []float32, npos int) {
	kk := len(offs)
	for o, nb := 0, mp/16; nb > 0; {
		j := chunk(nb)
		p := tileP[j]
		for q := 0; q < npos; q += p {
			xp, op := &x[q], &out[q*mp+o]
			wp := &wt[o]
			switch j {
			case 1:
				tileJ1P16(xp, &offs[0], kk, wp, mp, op, mp)
			case 2:
				tileJ2P12(xp, &offs[0], kk, wp, mp, op, mp)
			case 3:
				tileJ3P8(xp, &offs[0], kk, wp, mp, op, mp)
			default:
				tileJ4P6(xp, &offs[0], kk, wp, mp, op, mp)
			}
		}
		o += 16 * j
		nb -= j
	}
}
