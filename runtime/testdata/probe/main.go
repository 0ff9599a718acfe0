// Command probe is a deliberately hostile (and benchmarking) guest for the
// runtime's tests: each entrypoint misbehaves in one way. Built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package main

import (
	"encoding/binary"
	"os"
	"unsafe"

	"github.com/fennec-edge/fennec/sdk"
)

//go:wasmimport fennec abi_version
func abiVersion() int32

//go:wasmimport fennec_tensor rank
func tRank(h int32) int32

//go:wasmimport fennec_tensor new
func tNew(dtype int32, shape unsafe.Pointer, rank int32, data unsafe.Pointer, n int32) int32

//go:wasmimport fennec_tensor read
func tRead(h int32, buf unsafe.Pointer, n int32) int32

//go:wasmimport fennec_tensor free
func tFree(h int32) int32

//go:wasmimport fennec output
func output(ptr unsafe.Pointer, n int32) int32

func main() {}

func out32(vs ...int32) {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	output(unsafe.Pointer(&b[0]), int32(len(b)))
}

// echo returns its input.
//
//go:wasmexport echo
func echo(n int32) int32 {
	return sdk.Serve(n, func(in []byte) ([]byte, error) { return in, nil })
}

// spin never returns and never calls the host.
//
//go:wasmexport spin
func spin(n int32) int32 {
	x := n
	for {
		x = x*31 + 7
	}
}

// spinbrief loops about a second without host calls, then calls the host.
//
//go:wasmexport spinbrief
func spinbrief(n int32) int32 {
	x := n
	for i := 0; i < 1<<30; i++ {
		x = x*31 + int32(i)
	}
	return tRank(x)
}

// spinhost loops forever but calls the host on every iteration.
//
//go:wasmexport spinhost
func spinhost(n int32) int32 {
	for {
		tRank(n)
	}
}

var hoard [][]byte

// grow allocates until memory runs out.
//
//go:wasmexport grow
func grow(n int32) int32 {
	for {
		b := make([]byte, 1<<20)
		b[0] = 1
		hoard = append(hoard, b)
	}
}

func deep(n int) int {
	var pad [16384]byte
	pad[n%16384] = byte(n)
	return deep(n+1) + int(pad[0])
}

// recurse recurses without bound.
//
//go:wasmexport recurse
func recurse(n int32) int32 { return int32(deep(int(n))) }

// crash panics mid-call, after creating a tensor.
//
//go:wasmexport crash
func crash(n int32) int32 {
	shape := [1]int32{4}
	tNew(1, unsafe.Pointer(&shape[0]), 1, nil, 0)
	var m map[string]int
	m["x"] = 1 // nil map write: a Go panic, then proc_exit(2)
	return 0
}

// unreachable traps the way a C guest would: a direct out-of-bounds
// load at an address far beyond memory.
//
//go:wasmexport oob
func oob(n int32) int32 {
	p := (*int32)(unsafe.Pointer(uintptr(0xFFFFFF00)))
	return *p
}

// forge calls tensor functions with forged and out-of-range arguments and
// outputs the result codes.
//
//go:wasmexport forge
func forge(n int32) int32 {
	shape := [2]int32{2, 2}
	h := tNew(1, unsafe.Pointer(&shape[0]), 2, nil, 0)
	far := unsafe.Pointer(uintptr(0xFFFFFFF0))
	big := [3]int32{1 << 30, 1 << 30, 1 << 30}
	out32(
		h,
		tRank(h+1),   // forged
		tRank(12345), // forged
		tRank(n),     // a handle passed in from another instance
		tRead(h, far, 16),
		tNew(1, far, 2, nil, 0),
		tNew(1, unsafe.Pointer(&big[0]), 3, nil, 0),
		tNew(1, unsafe.Pointer(&shape[0]), 2, far, 16),
		tFree(h),
		tFree(h), // double free
	)
	return 0
}

// quota creates 1 KiB tensors until the host refuses; it outputs the count
// and the refusal code, then frees them all.
//
//go:wasmexport quota
func quota(n int32) int32 {
	shape := [1]int32{256}
	var hs []int32
	for {
		h := tNew(1, unsafe.Pointer(&shape[0]), 1, nil, 0)
		if h < 0 {
			out32(int32(len(hs)), h)
			break
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		tFree(h)
	}
	return 0
}

// leak creates one tensor and returns its handle, keeping it.
//
//go:wasmexport leak
func leak(n int32) int32 {
	shape := [1]int32{1}
	out32(tNew(1, unsafe.Pointer(&shape[0]), 1, nil, 0))
	return 0
}

// fail returns a guest error with a message.
//
//go:wasmexport fail
func fail(n int32) int32 {
	return sdk.Serve(n, func([]byte) ([]byte, error) { return nil, sdk.ErrNotWasm })
}

// noop_loop calls abi_version n times: the cost of a bare host call.
//
//go:wasmexport noop_loop
func noopLoop(n int32) int32 {
	for i := int32(0); i < n; i++ {
		abiVersion()
	}
	return 0
}

var benchHandle int32

// rank_loop calls tensor.rank n times on a live handle: the cost of a host
// call that finds its instance and checks a handle.
//
//go:wasmexport rank_loop
func rankLoop(n int32) int32 {
	if benchHandle == 0 {
		shape := [1]int32{4}
		benchHandle = tNew(1, unsafe.Pointer(&shape[0]), 1, nil, 0)
	}
	for i := int32(0); i < n; i++ {
		tRank(benchHandle)
	}
	return 0
}

// count_loop runs a tight loop of n iterations with no host calls: the cost
// of termination checks.
//
//go:wasmexport count_loop
func countLoop(n int32) int32 {
	x := int32(0)
	for i := int32(0); i < n; i++ {
		x = x*31 + i
	}
	out32(x)
	return 0
}

// matmul_go multiplies two n x n matrices in Go inside the guest.
//
//go:wasmexport matmul_go
func matmulGo(n int32) int32 {
	a, b, c := mats(int(n))
	N := int(n)
	for i := 0; i < N; i++ {
		for k := 0; k < N; k++ {
			aik := a[i*N+k]
			row := b[k*N : k*N+N]
			dst := c[i*N : i*N+N]
			for j := range dst {
				dst[j] += aik * row[j]
			}
		}
	}
	out32(int32(c[0]))
	return 0
}

// readdata returns the content of /data/hello.txt, or the error.
//
//go:wasmexport readdata
func readdata(n int32) int32 {
	return sdk.Serve(n, func([]byte) ([]byte, error) { return os.ReadFile("/data/hello.txt") })
}

// getenv returns $GREETING and whether $HOME is set.
//
//go:wasmexport getenv
func getenv(n int32) int32 {
	return sdk.Serve(n, func([]byte) ([]byte, error) {
		_, home := os.LookupEnv("HOME")
		s := os.Getenv("GREETING")
		if home {
			s += " HOME-LEAKED"
		}
		return []byte(s), nil
	})
}

// matmul_go_naive is the textbook i-j-k triple loop in Go inside the guest.
//
//go:wasmexport matmul_go_naive
func matmulGoNaive(n int32) int32 {
	a, b, c := mats(int(n))
	N := int(n)
	for i := 0; i < N; i++ {
		for j := 0; j < N; j++ {
			var s float32
			for k := 0; k < N; k++ {
				s += a[i*N+k] * b[k*N+j]
			}
			c[i*N+j] = s
		}
	}
	out32(int32(c[0]))
	return 0
}

// matmul_host multiplies the same matrices through host functions, copies
// in and out included.
//
//go:wasmexport matmul_host
func matmulHost(n int32) int32 {
	a, b, c := mats(int(n))
	N := int(n)
	sa, _ := sdk.FromF32([]int{N, N}, a)
	sb, _ := sdk.FromF32([]int{N, N}, b)
	sc, err := sdk.MatMul(sa, sb, false, false, nil)
	if err != nil {
		sdk.Fail(err.Error())
		return 1
	}
	sc.Read(c)
	sa.Free()
	sb.Free()
	sc.Free()
	out32(int32(c[0]))
	return 0
}

var ma, mb, mc []float32

func mats(n int) (a, b, c []float32) {
	if len(ma) != n*n {
		ma, mb, mc = make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
		for i := range ma {
			ma[i] = float32(i%7) * 0.5
			mb[i] = float32(i%5) * 0.25
		}
	}
	clear(mc)
	return ma, mb, mc
}
