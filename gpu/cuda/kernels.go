package cuda

import (
	_ "embed" // kernels.cu
	"fmt"
	"math"
)

// kernelSource is the CUDA C source of every kernel, compiled by NVRTC when
// a backend starts.
//
//go:embed kernels.cu
var kernelSource string

// Parameter kinds of a kernel. Every kind occupies one 8-byte launch slot.
type pkind uint8

const (
	pPtr pkind = iota + 1 // device pointer (any element type)
	pI64                  // long long
	pF32                  // float, in the low 4 bytes of the slot
	pF64                  // double
)

// kernelSpec names a kernel and the kinds of its parameters, in order.
type kernelSpec struct {
	name   string
	params []pkind
}

func rep(k pkind, n int) []pkind {
	s := make([]pkind, n)
	for i := range s {
		s[i] = k
	}
	return s
}

func cat(parts ...[]pkind) []pkind {
	var s []pkind
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

// kernelSpecs lists every kernel of kernels.cu. kernels_test.go checks the
// list against the source, so a launch with the wrong arity or kind cannot
// reach a device.
var kernelSpecs = []kernelSpec{
	{"binary", []pkind{pI64, pPtr, pPtr, pPtr, pI64, pI64, pI64}},
	{"binary_bcast", cat([]pkind{pI64, pPtr, pPtr, pPtr, pI64}, rep(pI64, 3*maxDims))},
	{"unary", []pkind{pI64, pPtr, pPtr, pI64, pF32}},
	{"unary_grad", []pkind{pI64, pPtr, pPtr, pPtr, pI64, pF32}},
	{"axpy", []pkind{pPtr, pPtr, pI64, pF32}},
	{"reduce_rows", []pkind{pI64, pPtr, pPtr, pI64, pI64}},
	{"reduce_cols", []pkind{pI64, pPtr, pPtr, pI64, pI64, pI64}},
	{"softmax_rows", []pkind{pPtr, pPtr, pI64, pI64, pI64}},
	{"softmax_cols", []pkind{pPtr, pPtr, pI64, pI64, pI64, pI64}},
	{"argmax_rows", []pkind{pPtr, pPtr, pI64, pI64}},
	{"argmax_cols", []pkind{pPtr, pPtr, pI64, pI64, pI64}},
	{"loss_mse", []pkind{pPtr, pPtr, pPtr, pPtr, pI64, pF64}},
	{"loss_bce", []pkind{pPtr, pPtr, pPtr, pPtr, pI64, pF64}},
	{"sce_check", []pkind{pPtr, pPtr, pI64, pI64}},
	{"sce_rows", []pkind{pPtr, pPtr, pPtr, pPtr, pPtr, pI64, pI64, pF64, pPtr}},
}

func specOf(name string) (kernelSpec, bool) {
	for _, s := range kernelSpecs {
		if s.name == name {
			return s, true
		}
	}
	return kernelSpec{}, false
}

// Arguments of a kernel launch, built with the helpers below and checked
// against the kernel's spec before launching.
type arg struct {
	kind pkind
	bits uint64
}

func ptrArg(p uintptr) arg { return arg{pPtr, uint64(p)} }
func i64Arg(v int) arg     { return arg{pI64, uint64(int64(v))} }
func f32Arg(v float32) arg { return arg{pF32, uint64(math.Float32bits(v))} }
func f64Arg(v float64) arg { return arg{pF64, math.Float64bits(v)} }
func boolArg(b bool) arg {
	if b {
		return i64Arg(1)
	}
	return i64Arg(0)
}

func nilArg() arg              { return arg{pPtr, 0} }
func opArg[T ~uint8](op T) arg { return i64Arg(int(op)) }

// packArgs checks args against the named kernel and returns the 8-byte
// parameter slots to launch it with.
func packArgs(name string, args []arg) ([]uint64, error) {
	spec, ok := specOf(name)
	if !ok {
		return nil, fmt.Errorf("cuda: no kernel %q", name)
	}
	if len(args) != len(spec.params) {
		return nil, fmt.Errorf("cuda: kernel %s takes %d parameters, got %d", name, len(spec.params), len(args))
	}
	slots := make([]uint64, len(args))
	for i, a := range args {
		if a.kind != spec.params[i] {
			return nil, fmt.Errorf("cuda: kernel %s parameter %d has kind %d, got %d", name, i, spec.params[i], a.kind)
		}
		slots[i] = a.bits
	}
	return slots, nil
}
