package benchsuite

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/internal/bench"
)

// Tensor-kernel benchmarks: `fennec bench gemm|elementwise|int8`. They run on
// the backend fennec uses for tensor host calls (the CPU backend here; the
// gemm and elementwise cases go through the gpu.Backend interface, so a
// CUDA build measures its backend the same way). Where the binary is built
// with `-tags openblas`, SGEMM is measured side by side with OpenBLAS.

func init() {
	bench.Register(bench.Case{Group: "gemm", Name: "sgemm", Doc: "square f32 matmul through the backend, GFLOP/s (vs OpenBLAS when built with -tags openblas)", Run: benchSgemm})
	bench.Register(bench.Case{Group: "gemm", Name: "skinny", Doc: "batch x 30 x 16 matmul (a small dense layer), ns per call", Run: benchSkinny})
	bench.Register(bench.Case{Group: "elementwise", Name: "ops", Doc: "elementwise ops, exp/sigmoid/tanh, reductions, softmax and cross-entropy on 16M floats, GB/s beside a plain Go copy loop", Run: benchElementwise})
	bench.Register(bench.Case{Group: "int8", Name: "linear", Doc: "int8 quantized vs f32 dense layer, GOP/s", Run: benchInt8})
	bench.Register(bench.Case{Group: "int8", Name: "sparse", Doc: "90%-pruned sparse vs dense layer, ns per call", Run: benchSparse})
}

// kernelBackend is the backend the tensor host functions use.
func kernelBackend() gpu.Backend { return gpu.NewCPU() }

func kbRand(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.Float64()*2 - 1)
	}
	return v
}

// kbTensor creates an f32 tensor holding data.
func kbTensor(be gpu.Backend, shape []int, data []float32) (gpu.Tensor, error) {
	t, err := be.New(gpu.F32, shape)
	if err != nil {
		return nil, err
	}
	if data != nil {
		if err := be.Write(t, gpu.F32ToBytes(data)); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func kbNote(be gpu.Backend) string {
	if c, ok := be.(*gpu.CPU); ok {
		return fmt.Sprintf("%s backend, %s kernel, %d threads", be.Name(), c.Kernel(), c.Threads())
	}
	return be.Name() + " backend"
}

func benchSgemm(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	be := kernelBackend()
	sizes := []int{256, 512, 1024, 2048}
	if o.Quick {
		sizes = []int{64, 256}
	}
	var out []bench.Result
	for _, n := range sizes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		ad, bd := kbRand(n*n, 1), kbRand(n*n, 2)
		a, err := kbTensor(be, []int{n, n}, ad)
		if err != nil {
			return nil, err
		}
		b, err := kbTensor(be, []int{n, n}, bd)
		if err != nil {
			return nil, err
		}
		c, err := kbTensor(be, []int{n, n}, nil)
		if err != nil {
			return nil, err
		}
		var runErr error
		ns := bench.Time(o, 5, func(k int) {
			for i := 0; i < k && runErr == nil; i++ {
				runErr = be.MatMul(c, a, b, false, false)
			}
		})
		be.Free(a)
		be.Free(b)
		be.Free(c)
		if runErr != nil {
			return nil, runErr
		}
		flop := 2 * float64(n) * float64(n) * float64(n)
		r := bench.Result{Group: "gemm", Name: fmt.Sprintf("sgemm/n=%d", n), Value: flop / ns, Unit: "GFLOP/s",
			Target: ">= 0.6 x OpenBLAS", Note: kbNote(be)}
		if ref := gpu.ReferenceSgemm; ref != nil {
			cd := make([]float32, n*n)
			rns := bench.Time(o, 5, func(k int) {
				for i := 0; i < k; i++ {
					ref(false, false, n, n, n, ad, bd, cd)
				}
			})
			r.Ref, r.RefValue = gpu.ReferenceName, flop/rns
			r.Ratio = r.Value / r.RefValue
		}
		out = append(out, r)
	}
	return out, nil
}

func benchSkinny(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	be := kernelBackend()
	var out []bench.Result
	for _, batch := range []int{1, 32, 64, 256} {
		xd, wd := kbRand(batch*30, 3), kbRand(30*16, 4)
		x, err := kbTensor(be, []int{batch, 30}, xd)
		if err != nil {
			return nil, err
		}
		w, err := kbTensor(be, []int{30, 16}, wd)
		if err != nil {
			return nil, err
		}
		y, err := kbTensor(be, []int{batch, 16}, nil)
		if err != nil {
			return nil, err
		}
		var runErr error
		ns := bench.Time(o, 5, func(k int) {
			for i := 0; i < k && runErr == nil; i++ {
				runErr = be.MatMul(y, x, w, false, false)
			}
		})
		be.Free(x)
		be.Free(w)
		be.Free(y)
		if runErr != nil {
			return nil, runErr
		}
		r := bench.Result{Group: "gemm", Name: fmt.Sprintf("skinny/%dx30x16", batch), Value: ns, Unit: "ns/op", Note: kbNote(be)}
		if ref := gpu.ReferenceSgemm; ref != nil {
			yd := make([]float32, batch*16)
			r.RefValue = bench.Time(o, 5, func(k int) {
				for i := 0; i < k; i++ {
					ref(false, false, batch, 16, 30, xd, wd, yd)
				}
			})
			r.Ref, r.Ratio = gpu.ReferenceName, r.RefValue/ns
		}
		out = append(out, r)
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

func benchElementwise(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	be := kernelBackend()
	n := 1 << 24
	if o.Quick {
		n = 1 << 18
	}
	rows := n / 1024
	x, err := kbTensor(be, []int{rows, 1024}, kbRand(n, 5))
	if err != nil {
		return nil, err
	}
	y, err := kbTensor(be, []int{rows, 1024}, kbRand(n, 6))
	if err != nil {
		return nil, err
	}
	out, err := kbTensor(be, []int{rows, 1024}, nil)
	if err != nil {
		return nil, err
	}
	red, err := kbTensor(be, []int{rows}, nil)
	if err != nil {
		return nil, err
	}
	labels, err := be.New(gpu.I32, []int{rows}) // class 0 for every row
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, t := range []gpu.Tensor{x, y, out, red, labels} {
			be.Free(t)
		}
	}()
	row, err := kbTensor(be, []int{1024}, kbRand(1024, 8))
	if err != nil {
		return nil, err
	}
	defer be.Free(row)
	src, dst := kbRand(n, 7), make([]float32, n)
	gbps := func(bytesPerElem int, f func() error) (float64, error) {
		var runErr error
		ns := bench.Time(o, 5, func(k int) {
			for i := 0; i < k && runErr == nil; i++ {
				runErr = f()
			}
		})
		return float64(bytesPerElem) * float64(n) / ns, runErr
	}
	copyGB, _ := gbps(8, func() error {
		for i := range dst {
			dst[i] = src[i]
		}
		return nil
	})
	cases := []struct {
		name  string
		bytes int
		f     func() error
	}{
		{"add", 12, func() error { return be.Binary(gpu.Add, out, x, y) }},
		{"mul_row_broadcast", 8, func() error { return be.Binary(gpu.Mul, out, x, row) }},
		{"scale", 8, func() error { return be.Unary(gpu.Scale, out, x, 0.5) }},
		{"relu", 8, func() error { return be.Unary(gpu.ReLU, out, x, 0) }},
		{"exp", 8, func() error { return be.Unary(gpu.Exp, out, x, 0) }},
		{"sigmoid", 8, func() error { return be.Unary(gpu.Sigmoid, out, x, 0) }},
		{"tanh", 8, func() error { return be.Unary(gpu.Tanh, out, x, 0) }},
		{"axpy", 12, func() error { return be.Axpy(out, x, 0.1) }},
		{"sum_rows", 4, func() error { return be.Reduce(gpu.Sum, red, x, 1) }},
		{"softmax_rows", 8, func() error { return be.Softmax(out, x, 1, false) }},
		{"logsoftmax_rows", 8, func() error { return be.Softmax(out, x, 1, true) }},
		// cross-entropy of [rows, 1024] logits against class indices: read
		// the logits, write the gradient
		{"ce_loss_grad", 8, func() error { _, err := be.Loss(gpu.SoftmaxCrossEntropy, out, x, labels); return err }},
	}
	res := []bench.Result{{Group: "elementwise", Name: "copyloop", Value: copyGB, Unit: "GB/s",
		Note: fmt.Sprintf("plain Go copy loop over %d floats (read+write)", n)}}
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		v, err := gbps(c.bytes, c.f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		res = append(res, bench.Result{Group: "elementwise", Name: c.name, Value: v, Unit: "GB/s",
			Ref: "copyloop", RefValue: copyGB, Ratio: v / copyGB, Target: "memory bandwidth", Note: kbNote(be)})
	}
	return res, nil
}

func benchInt8(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	cpu, err := gpu.NewCPUWithConfig(gpu.CPUConfig{})
	if err != nil {
		return nil, err
	}
	var res []bench.Result
	for _, sz := range [][3]int{{1, 784, 256}, {64, 784, 256}, {1, 1024, 1024}, {64, 1024, 1024}} {
		batch, in, outN := sz[0], sz[1], sz[2]
		w, x := kbRand(in*outN, 9), kbRand(batch*in, 10)
		y := make([]float32, batch*outN)
		q, err := gpu.QuantizeLinear(w, in, outN, nil)
		if err != nil {
			return nil, err
		}
		if err := q.Calibrate(x, 1); err != nil {
			return nil, err
		}
		ops := 2 * float64(batch*in*outN)
		f32ns := bench.Time(o, 5, func(k int) {
			for i := 0; i < k; i++ {
				_ = cpu.Sgemm(false, false, batch, outN, in, x, w, y)
			}
		})
		var runErr error
		qns := bench.Time(o, 5, func(k int) {
			for i := 0; i < k && runErr == nil; i++ {
				runErr = q.Forward(y, x, batch)
			}
		})
		if runErr != nil {
			return nil, runErr
		}
		res = append(res, bench.Result{Group: "int8", Name: fmt.Sprintf("linear/%dx%dx%d", batch, in, outN),
			Value: ops / qns, Unit: "GOP/s", Ref: "f32 sgemm", RefValue: ops / f32ns, Ratio: f32ns / qns,
			Note: fmt.Sprintf("int8 kernel %s; weights %d vs %d bytes", gpu.Int8Kernels()[0], q.Bytes(), 4*in*outN)})
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func benchSparse(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	cpu, err := gpu.NewCPUWithConfig(gpu.CPUConfig{})
	if err != nil {
		return nil, err
	}
	var res []bench.Result
	for _, sz := range [][3]int{{1, 784, 256}, {64, 1024, 1024}} {
		batch, in, outN := sz[0], sz[1], sz[2]
		w, x := kbRand(in*outN, 11), kbRand(batch*in, 12)
		y := make([]float32, batch*outN)
		dense := bench.Time(o, 5, func(k int) {
			for i := 0; i < k; i++ {
				_ = cpu.Sgemm(false, false, batch, outN, in, x, w, y)
			}
		})
		if _, err := gpu.Prune(w, 0.9); err != nil {
			return nil, err
		}
		s, err := gpu.NewSparseLinear(w, in, outN, nil)
		if err != nil {
			return nil, err
		}
		var runErr error
		sparse := bench.Time(o, 5, func(k int) {
			for i := 0; i < k && runErr == nil; i++ {
				runErr = s.Forward(y, x, batch)
			}
		})
		if runErr != nil {
			return nil, runErr
		}
		res = append(res, bench.Result{Group: "int8", Name: fmt.Sprintf("sparse90/%dx%dx%d", batch, in, outN),
			Value: sparse, Unit: "ns/op", Ref: "dense f32 sgemm", RefValue: dense, Ratio: dense / sparse,
			Note: fmt.Sprintf("CSR, %d of %d weights kept, %d vs %d bytes", s.NNZ(), in*outN, s.Bytes(), 4*in*outN)})
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	return res, nil
}
