//go:build !amd64 || purego

package gpu

// vecMath is false: there are no vector kernels on this platform.
const vecMath = false

func expSlice(o, a []float32)                         { expSliceGo(o, a[:len(o)]) }
func expBiasSum(o, a []float32, bias float32) float64 { return expBiasSumGo(o, a[:len(o)], bias) }
func sigmoidSlice(o, a []float32)                     { sigmoidSliceGo(o, a[:len(o)]) }
func tanhSlice(o, a []float32)                        { tanhSliceGo(o, a[:len(o)]) }
