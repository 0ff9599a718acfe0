//go:build !amd64 || purego

package dconv

// Available is false: Run is the pure-Go definition here.
const Available = false

func runAsm(x []float32, offs []int32, wt []float32, mp int, out []float32, npos int) {
	runGo(x, offs, wt, mp, out, npos)
}
