package modules_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fennec-edge/fennec/sdk"
)

// Tests of sdk/nn through the runtime (guest modules/testdata/nnguest)
// against a plain-Go float64 reference: Sigmoid/Tanh/ReLU layers, softmax
// cross-entropy with f32 one-hot and i32 class targets, MSE, SGD with and
// without momentum, and Adam. Each train call runs full-batch steps (batch
// size = n), so shuffling does not change the result.

// refNet is a 2-layer MLP in float64: W1 [in, h], b1 [h], W2 [h, out], b2 [out].
type refNet struct {
	in, h, out int
	p          [4][]float64 // W1, b1, W2, b2 (parameter order of sdk/nn)
}

func newRefNet(rng *rand.Rand, in, h, out int) refNet {
	n := refNet{in: in, h: h, out: out}
	for i, size := range []int{in * h, h, h * out, out} {
		n.p[i] = make([]float64, size)
		for j := range n.p[i] {
			// float32-exact values, so that the guest starts from the same weights
			n.p[i][j] = float64(float32(rng.NormFloat64() * 0.6))
		}
	}
	return n
}

func (n refNet) model() sdk.Model {
	m := sdk.Model{Name: "ref", Version: 1}
	shapes := [][]int{{n.in, n.h}, {n.h}, {n.h, n.out}, {n.out}}
	names := []string{"0.weight", "0.bias", "2.weight", "2.bias"}
	for i, v := range n.p {
		f := make([]float32, len(v))
		for j, x := range v {
			f[j] = float32(x)
		}
		m.Tensors = append(m.Tensors, sdk.F32Data(names[i], shapes[i], f))
	}
	return m
}

func activate(act string, x float64) (y, dydx float64) {
	switch act {
	case "sigmoid":
		s := 1 / (1 + math.Exp(-x))
		return s, s * (1 - s)
	case "tanh":
		t := math.Tanh(x)
		return t, 1 - t*t
	}
	if x > 0 {
		return x, 1
	}
	return 0, 0
}

// lossGrad returns the loss and the gradient of every parameter for the
// batch x [n, in] with targets t [n, out] (one-hot for softmax).
func (n refNet) lossGrad(act, loss string, x, t []float64) (float64, [4][]float64) {
	rows := len(x) / n.in
	var g [4][]float64
	for i := range g {
		g[i] = make([]float64, len(n.p[i]))
	}
	var total float64
	for r := range rows {
		xr := x[r*n.in : (r+1)*n.in]
		h := make([]float64, n.h)
		dh := make([]float64, n.h)
		for j := range n.h {
			s := n.p[1][j]
			for i := range n.in {
				s += xr[i] * n.p[0][i*n.h+j]
			}
			h[j], dh[j] = activate(act, s)
		}
		z := make([]float64, n.out)
		for k := range n.out {
			s := n.p[3][k]
			for j := range n.h {
				s += h[j] * n.p[2][j*n.out+k]
			}
			z[k] = s
		}
		tr := t[r*n.out : (r+1)*n.out]
		dz := make([]float64, n.out)
		switch loss {
		case "mse":
			for k := range z {
				d := z[k] - tr[k]
				total += d * d / float64(rows*n.out)
				dz[k] = 2 * d / float64(rows*n.out)
			}
		case "softmax":
			mx := math.Inf(-1)
			for _, v := range z {
				mx = math.Max(mx, v)
			}
			var sum float64
			for _, v := range z {
				sum += math.Exp(v - mx)
			}
			for k := range z {
				p := math.Exp(z[k]-mx) / sum
				total -= tr[k] * math.Log(p) / float64(rows)
				dz[k] = (p - tr[k]) / float64(rows)
			}
		}
		for k := range n.out {
			g[3][k] += dz[k]
			for j := range n.h {
				g[2][j*n.out+k] += h[j] * dz[k]
			}
		}
		for j := range n.h {
			var da float64
			for k := range n.out {
				da += dz[k] * n.p[2][j*n.out+k]
			}
			d := da * dh[j]
			g[1][j] += d
			for i := range n.in {
				g[0][i*n.h+j] += xr[i] * d
			}
		}
	}
	return total, g
}

// train runs steps full-batch optimizer steps and returns the loss of the
// last step (before its update), as Trainer reports it.
func (n *refNet) train(act, loss, opt string, lr, momentum float64, steps int, x, t []float64) float64 {
	var vel, m, v [4][]float64
	for i := range n.p {
		vel[i] = make([]float64, len(n.p[i]))
		m[i] = make([]float64, len(n.p[i]))
		v[i] = make([]float64, len(n.p[i]))
	}
	var last float64
	for step := 1; step <= steps; step++ {
		l, g := n.lossGrad(act, loss, x, t)
		last = l
		for i := range n.p {
			for j := range n.p[i] {
				switch opt {
				case "adam":
					const b1, b2, eps = 0.9, 0.999, 1e-8
					m[i][j] = b1*m[i][j] + (1-b1)*g[i][j]
					v[i][j] = b2*v[i][j] + (1-b2)*g[i][j]*g[i][j]
					mh := m[i][j] / (1 - math.Pow(b1, float64(step)))
					vh := v[i][j] / (1 - math.Pow(b2, float64(step)))
					n.p[i][j] -= lr * mh / (math.Sqrt(vh) + eps)
				default:
					vel[i][j] = momentum*vel[i][j] + g[i][j]
					n.p[i][j] -= lr * vel[i][j]
				}
			}
		}
	}
	return last
}

type nnCase struct {
	act, loss, opt string
	momentum, lr   float64
	steps          int
	i32Targets     bool
}

// nnData is a fixed batch: x [n, 4] and targets (regression [n, 2] for MSE,
// classes 0..2 for softmax, given as one-hot rows or indices).
func nnData(rng *rand.Rand, rows int, c nnCase, out int) (x, t []float64, y sdk.TensorData, xs sdk.TensorData) {
	x = make([]float64, rows*4)
	xf := make([]float32, len(x))
	for i := range x {
		xf[i] = float32(rng.NormFloat64())
		x[i] = float64(xf[i])
	}
	t = make([]float64, rows*out)
	switch c.loss {
	case "softmax":
		cls := make([]int32, rows)
		onehot := make([]float32, rows*out)
		for r := range cls {
			cls[r] = int32(rng.IntN(out))
			t[r*out+int(cls[r])] = 1
			onehot[r*out+int(cls[r])] = 1
		}
		if c.i32Targets {
			y = sdk.I32Data("y", []int{rows}, cls)
		} else {
			y = sdk.F32Data("y", []int{rows, out}, onehot)
		}
	default:
		tf := make([]float32, len(t))
		for i := range t {
			tf[i] = float32(rng.NormFloat64())
			t[i] = float64(tf[i])
		}
		y = sdk.F32Data("y", []int{rows, out}, tf)
	}
	return x, t, y, sdk.F32Data("x", []int{rows, 4}, xf)
}

func closeTo(got, want float64) bool { return math.Abs(got-want) <= 2e-4+2e-3*math.Abs(want) }

func TestNNAgainstReference(t *testing.T) {
	mod := load(t, "testdata/nnguest", "testdata/nnguest/fennec.toml")
	const rows, hidden = 12, 5
	for _, c := range []nnCase{
		{act: "sigmoid", loss: "mse", opt: "sgd", lr: 0.1, steps: 1},
		{act: "tanh", loss: "mse", opt: "sgd", lr: 0.1, steps: 1},
		{act: "relu", loss: "mse", opt: "sgd", lr: 0.1, steps: 1},
		{act: "tanh", loss: "softmax", opt: "sgd", lr: 0.1, steps: 1},
		{act: "tanh", loss: "softmax", opt: "sgd", lr: 0.1, steps: 1, i32Targets: true},
		{act: "sigmoid", loss: "mse", opt: "sgd", lr: 0.2, steps: 6},                 // plain SGD
		{act: "sigmoid", loss: "mse", opt: "sgd", lr: 0.05, momentum: 0.9, steps: 8}, // momentum
		{act: "tanh", loss: "softmax", opt: "sgd", lr: 0.1, momentum: 0.5, steps: 5, i32Targets: true},
		{act: "relu", loss: "softmax", opt: "adam", lr: 0.01, steps: 7, i32Targets: true},
		{act: "sigmoid", loss: "mse", opt: "adam", lr: 0.02, steps: 5},
	} {
		name := fmt.Sprintf("%s/%s/%s/m%.1f/steps%d/i32=%v", c.act, c.loss, c.opt, c.momentum, c.steps, c.i32Targets)
		t.Run(name, func(t *testing.T) {
			out := 2
			if c.loss == "softmax" {
				out = 3
			}
			rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(c.steps)))
			ref := newRefNet(rng, 4, hidden, out)
			x, tg, y, xs := nnData(rng, rows, c, out)
			in := map[string]any{"act": c.act, "loss": c.loss, "opt": c.opt, "momentum": c.momentum,
				"train": &sdk.TrainInput{Model: ref.model(), Data: sdk.Dataset{X: xs, Y: y},
					Settings: sdk.Settings{LR: c.lr, Epochs: uint64(c.steps), BatchSize: rows}}}

			// One step in gradient mode: the loss and every gradient.
			gin := *in["train"].(*sdk.TrainInput)
			gin.Settings.Mode = "gradient"
			g := call[sdk.TrainOutput](t, mod, "train", map[string]any{"act": c.act, "loss": c.loss, "train": &gin})
			wantLoss, wantGrad := ref.lossGrad(c.act, c.loss, x, tg)
			if !closeTo(g.Metrics["loss"], wantLoss) {
				t.Errorf("loss %.6f, reference %.6f", g.Metrics["loss"], wantLoss)
			}
			compareTensors(t, "gradient", g.Model, wantGrad)

			// The optimizer over several steps: final weights and last loss.
			tr := call[sdk.TrainOutput](t, mod, "train", in)
			last := ref.train(c.act, c.loss, c.opt, c.lr, c.momentum, c.steps, x, tg)
			if tr.Metrics["steps"] != float64(c.steps) || !closeTo(tr.Metrics["loss"], last) {
				t.Errorf("steps %v, last loss %.6f, reference %.6f", tr.Metrics["steps"], tr.Metrics["loss"], last)
			}
			compareTensors(t, "weights", tr.Model, ref.p)
		})
	}
}

func compareTensors(t *testing.T, what string, m sdk.Model, want [4][]float64) {
	t.Helper()
	if len(m.Tensors) != 4 {
		t.Fatalf("%s: %d tensors", what, len(m.Tensors))
	}
	for i, td := range m.Tensors {
		got, err := td.F32()
		if err != nil || len(got) != len(want[i]) {
			t.Fatalf("%s %s: %v, %d values want %d", what, td.Name, err, len(got), len(want[i]))
		}
		for j := range got {
			if !closeTo(float64(got[j]), want[i][j]) {
				t.Fatalf("%s %s[%d] = %.6f, reference %.6f", what, td.Name, j, got[j], want[i][j])
			}
		}
	}
}
