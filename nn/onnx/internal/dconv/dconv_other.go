//go:build !amd64 || purego

package dconv

// Available is false: Run is the pure-Go definition here.
const Available = false

func rowsAsm(x []float32, offs []int32, wt, bias []float32, mp int, out []float32, oh, ow, w2 int, relu bool) {
	rowsGo(x, offs, wt, bias, mp, out, oh, ow, w2, relu)
}
