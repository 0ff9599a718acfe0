// Package distill trains a small student network from a teacher's outputs
// (knowledge distillation) and compresses networks to int8, inside a fennec
// guest. Every computation runs on the host through the fennec_tensor
// functions: the student is an sdk/nn network, the soft-target loss and its
// gradient are the host's kl_distill, the hard-label loss its softmax
// cross-entropy, and quantization and int8 inference the host's
// quant_scales, quantize, dequantize and matmul_i8
// (docs/ABI.md, "Model compression").
//
// A student step mixes the two losses (Hinton et al., 2015):
//
//	loss = α · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1−α) · CE(student, labels)
//
// The T² factor keeps the soft gradient's scale independent of T, so α is a
// plain weight.
//
//	student, _ := nn.MLP([]int{features, 16, classes}, nn.ReLU, seed)
//	stats, err := distill.Train(student, distill.Data{X: x, Features: features,
//		Teacher: teacherLogits, Classes: classes, Labels: labels}, distill.Config{})
//	q, err := distill.QuantizeNet(student) // int8 copy for inference
//	pred, err := distill.Predict(q, x, features, 256)
package distill

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"unsafe"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/nn"
)

// Config sets a distillation run; the zero value means the defaults below.
type Config struct {
	// Temperature T > 0 softens both distributions (default 4).
	Temperature float32
	// Alpha in (0, 1] weighs the soft-target loss; 1 − Alpha goes to the
	// hard labels (default 0.7; forced to 1 when Data has no labels).
	Alpha float32
	// Epochs over the data (default 10) in shuffled batches of BatchSize
	// rows (default 32).
	Epochs, BatchSize int
	// LR is the learning rate of the default optimizer, SGD with momentum
	// 0.9 (default 0.05). Ignored when Optimizer is set.
	LR float32
	// Seed of the batch shuffling.
	Seed uint64
	// Optimizer updates the student; nil means SGD as above.
	Optimizer nn.Optimizer
}

// Defaults for zero Config fields.
const (
	DefaultTemperature = 4
	DefaultAlpha       = 0.7
	DefaultEpochs      = 10
	DefaultBatchSize   = 32
	DefaultLR          = 0.05
)

func (c Config) withDefaults() (Config, error) {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(c.Temperature) || c.Temperature < 0:
		return c, fmt.Errorf("distill: Config.Temperature = %v: must be positive and finite", c.Temperature)
	case !finite(c.Alpha) || c.Alpha < 0 || c.Alpha > 1:
		return c, fmt.Errorf("distill: Config.Alpha = %v: must be in (0, 1]", c.Alpha)
	case c.Epochs < 0:
		return c, fmt.Errorf("distill: Config.Epochs = %d: must not be negative", c.Epochs)
	case c.BatchSize < 0:
		return c, fmt.Errorf("distill: Config.BatchSize = %d: must not be negative", c.BatchSize)
	case !finite(c.LR) || c.LR < 0:
		return c, fmt.Errorf("distill: Config.LR = %v: must be positive and finite", c.LR)
	}
	if c.Temperature == 0 {
		c.Temperature = DefaultTemperature
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.Epochs == 0 {
		c.Epochs = DefaultEpochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.LR == 0 {
		c.LR = DefaultLR
	}
	return c, nil
}

// Data is a distillation set in guest memory, row major.
type Data struct {
	X        []float32 // inputs [n, Features]
	Features int
	Teacher  []float32 // the teacher's logits [n, Classes]
	Classes  int
	Labels   []int32 // hard labels [n] in [0, Classes); nil: soft targets only
}

// Rows checks the slices against each other and returns n.
func (d *Data) Rows() (int, error) {
	if d.Features <= 0 || d.Classes <= 0 {
		return 0, fmt.Errorf("distill: Data.Features = %d, Data.Classes = %d: both must be positive", d.Features, d.Classes)
	}
	if len(d.X)%d.Features != 0 {
		return 0, fmt.Errorf("distill: Data.X has %d values, not a multiple of %d features", len(d.X), d.Features)
	}
	n := len(d.X) / d.Features
	if len(d.Teacher) != n*d.Classes {
		return 0, fmt.Errorf("distill: Data.Teacher has %d logits, want %d rows x %d classes", len(d.Teacher), n, d.Classes)
	}
	if d.Labels != nil {
		if len(d.Labels) != n {
			return 0, fmt.Errorf("distill: Data.Labels has %d labels for %d rows", len(d.Labels), n)
		}
		for i, l := range d.Labels {
			if l < 0 || int(l) >= d.Classes {
				return 0, fmt.Errorf("distill: Data.Labels[%d] = %d is not a class in [0, %d)", i, l, d.Classes)
			}
		}
	}
	return n, nil
}

// Epoch is one epoch's mean losses over its batches (KL includes T²; CE
// is 0 without labels).
type Epoch struct {
	Loss, KL, CE float64
}

// Stats reports a run.
type Stats struct {
	Epochs []Epoch
	Steps  int
}

// batchBufs are the host tensors of one batch size.
type batchBufs struct {
	x, t, y, gKL, gCE hostBuf
}

func (b *batchBufs) free() {
	for _, h := range []*hostBuf{&b.x, &b.t, &b.y, &b.gKL, &b.gCE} {
		h.free()
	}
}

// Train fits student to the teacher's logits (and the labels, if any) and
// returns per-epoch losses. The student's output size must be d.Classes
// and its input size d.Features.
func Train(student *nn.Sequential, d Data, cfg Config) (Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	n, err := d.Rows()
	if err != nil {
		return Stats{}, err
	}
	if student.InputSize() != d.Features || student.OutputSize() != d.Classes {
		return Stats{}, fmt.Errorf("distill: student maps %d -> %d, data has %d features and %d classes",
			student.InputSize(), student.OutputSize(), d.Features, d.Classes)
	}
	alpha := cfg.Alpha
	if d.Labels == nil {
		alpha = 1
	}
	opt := cfg.Optimizer
	if opt == nil {
		opt = &nn.SGD{LR: cfg.LR, Momentum: 0.9}
		defer opt.Free()
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	bufs := map[int]*batchBufs{}
	defer func() {
		for _, b := range bufs {
			b.free()
		}
	}()
	f, k := d.Features, d.Classes
	xb := make([]float32, min(cfg.BatchSize, n)*f)
	tb := make([]float32, min(cfg.BatchSize, n)*k)
	yb := make([]int32, min(cfg.BatchSize, n))
	var st Stats
	for range cfg.Epochs {
		rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var ep Epoch
		batches := 0
		for lo := 0; lo < n; lo += cfg.BatchSize {
			idx := perm[lo:min(lo+cfg.BatchSize, n)]
			b := len(idx)
			for r, i := range idx {
				copy(xb[r*f:(r+1)*f], d.X[i*f:(i+1)*f])
				copy(tb[r*k:(r+1)*k], d.Teacher[i*k:(i+1)*k])
				if d.Labels != nil {
					yb[r] = d.Labels[i]
				}
			}
			bb := bufs[b]
			if bb == nil {
				bb = &batchBufs{}
				bufs[b] = bb
			}
			kl, ce, err := step(student, opt, bb, xb[:b*f], tb[:b*k], yb[:b], d.Labels != nil, b, f, k, cfg.Temperature, alpha)
			if err != nil {
				return st, err
			}
			ep.KL += kl
			ep.CE += ce
			ep.Loss += float64(alpha)*kl + float64(1-alpha)*ce
			batches++
			st.Steps++
		}
		if batches > 0 {
			ep.KL /= float64(batches)
			ep.CE /= float64(batches)
			ep.Loss /= float64(batches)
		}
		st.Epochs = append(st.Epochs, ep)
	}
	return st, nil
}

// step runs one batch: forward, mixed loss and gradient, backward, update.
func step(student *nn.Sequential, opt nn.Optimizer, bb *batchBufs, xb, tb []float32, yb []int32, labels bool,
	b, f, k int, T, alpha float32) (kl, ce float64, err error) {
	x, err := bb.x.get(sdk.F32, b, f)
	if err != nil {
		return 0, 0, err
	}
	if err := x.Write(xb); err != nil {
		return 0, 0, err
	}
	t, err := bb.t.get(sdk.F32, b, k)
	if err != nil {
		return 0, 0, err
	}
	if err := t.Write(tb); err != nil {
		return 0, 0, err
	}
	logits, _, err := student.Forward(x, []int{b, f})
	if err != nil {
		return 0, 0, err
	}
	gKL, err := bb.gKL.get(sdk.F32, b, k)
	if err != nil {
		return 0, 0, err
	}
	klLoss, _, err := KLDistill(logits, t, T, true, gKL)
	if err != nil {
		return 0, 0, err
	}
	if labels && alpha < 1 {
		y, err := bb.y.get(sdk.I32, b)
		if err != nil {
			return 0, 0, err
		}
		if err := y.WriteBytes(i32Bytes(yb)); err != nil {
			return 0, 0, err
		}
		gCE, err := bb.gCE.get(sdk.F32, b, k)
		if err != nil {
			return 0, 0, err
		}
		ceLoss, _, err := sdk.SoftmaxCrossEntropy(logits, y, gCE)
		if err != nil {
			return 0, 0, err
		}
		ce = float64(ceLoss)
		// g = alpha*gKL + (1-alpha)*gCE, in gKL
		if _, err := sdk.Scale(gKL, alpha, gKL); err != nil {
			return 0, 0, err
		}
		if err := sdk.Axpy(gKL, gCE, 1-alpha); err != nil {
			return 0, 0, err
		}
	}
	if err := student.Backward(gKL); err != nil {
		return 0, 0, err
	}
	if err := opt.Step(student.Params()); err != nil {
		return 0, 0, err
	}
	return float64(klLoss), ce, nil
}

// TeacherLogits runs a teacher network over x [n, features] in batches
// and returns its logits [n, classes] in guest memory, ready for Data.
func TeacherLogits(teacher Net, x []float32, features, batch int) ([]float32, error) {
	var out []float32
	err := forEachBatch(teacher, x, features, batch, func(logits *sdk.Tensor, rows int) error {
		got, err := logits.Read(nil)
		out = append(out, got...)
		return err
	})
	return out, err
}

// i32Bytes views int32s as their little-endian bytes (wasm is little endian).
func i32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// Predict returns the arg-max class of each row of x [n, features] under
// net, computed on the host in batches.
func Predict(net Net, x []float32, features, batch int) ([]int32, error) {
	var pred []int32
	var am hostBuf
	defer am.free()
	err := forEachBatch(net, x, features, batch, func(logits *sdk.Tensor, rows int) error {
		idx, err := am.get(sdk.I32, rows)
		if err != nil {
			return err
		}
		if _, err := sdk.ArgMax(logits, -1, idx); err != nil {
			return err
		}
		got, err := idx.ReadI32(nil)
		pred = append(pred, got...)
		return err
	})
	return pred, err
}

// forEachBatch uploads x in batches of rows, runs net and hands each
// batch's output to fn.
func forEachBatch(net Net, x []float32, features, batch int, fn func(out *sdk.Tensor, rows int) error) error {
	if features <= 0 || len(x)%features != 0 {
		return fmt.Errorf("distill: %d inputs are not rows of %d features", len(x), features)
	}
	if batch <= 0 {
		return errors.New("distill: batch size must be positive")
	}
	n := len(x) / features
	var xb hostBuf
	defer xb.free()
	for lo := 0; lo < n; lo += batch {
		rows := min(batch, n-lo)
		t, err := xb.get(sdk.F32, rows, features)
		if err != nil {
			return err
		}
		if err := t.Write(x[lo*features : (lo+rows)*features]); err != nil {
			return err
		}
		out, _, err := net.Forward(t, []int{rows, features})
		if err != nil {
			return err
		}
		if err := fn(out, rows); err != nil {
			return err
		}
	}
	return nil
}
