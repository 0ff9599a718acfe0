//go:build datasets

package gpu

// Compression measured on real data (BENCHMARKS.md):
//
//	go test -tags datasets -run Compression -v ./gpu/
//
// It trains small MLPs in plain Go on this package's SGEMM, then measures
// test accuracy, model bytes and inference time of the f32 model, its int8
// quantization, its 90%-pruned sparse version (with and without a short
// masked fine-tune), and a distilled student. Data comes from
// ../shared/data; the test skips when it is absent.

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const dataDir = "../../shared/data"

type dataset struct {
	name                 string
	features, classes    int
	trainX, testX        []float32
	trainY, testY        []int
	hidden, epochs, bs   int
	lr                   float32
	studentHidden        int
	calibRows, timeBatch int
}

func loadWDBC(t *testing.T) *dataset {
	f, err := os.Open(filepath.Join(dataDir, "wdbc.csv"))
	if err != nil {
		t.Skipf("WDBC not available (%v); see ../shared/data/README.md", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	var x []float32
	var y []int
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(parts) != 31 {
			t.Fatalf("wdbc: line with %d fields", len(parts))
		}
		for _, p := range parts[:30] {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil {
				t.Fatal(err)
			}
			x = append(x, float32(v))
		}
		c, _ := strconv.Atoi(parts[30])
		y = append(y, c)
	}
	n := len(y)
	perm := rand.New(rand.NewPCG(42, 0)).Perm(n)
	nTrain := n * 4 / 5
	d := &dataset{name: "WDBC", features: 30, classes: 2, hidden: 16, epochs: 200, bs: 32, lr: 0.05, studentHidden: 4, calibRows: 200, timeBatch: 1}
	for i, p := range perm {
		row := x[p*30 : (p+1)*30]
		if i < nTrain {
			d.trainX = append(d.trainX, row...)
			d.trainY = append(d.trainY, y[p])
		} else {
			d.testX = append(d.testX, row...)
			d.testY = append(d.testY, y[p])
		}
	}
	// standardise with training statistics
	for j := 0; j < 30; j++ {
		var s, ss float64
		for i := 0; i < nTrain; i++ {
			v := float64(d.trainX[i*30+j])
			s += v
			ss += v * v
		}
		mean := s / float64(nTrain)
		sd := math.Sqrt(ss/float64(nTrain) - mean*mean)
		for _, xs := range [][]float32{d.trainX, d.testX} {
			for i := 0; i < len(xs)/30; i++ {
				xs[i*30+j] = float32((float64(xs[i*30+j]) - mean) / sd)
			}
		}
	}
	return d
}

func readIDX(t *testing.T, name string, magic uint32) ([]byte, []int) {
	f, err := os.Open(filepath.Join(dataDir, "fashion-mnist", name))
	if err != nil {
		t.Skipf("Fashion-MNIST not available (%v); see ../shared/data/README.md", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(b) != magic {
		t.Fatalf("%s: bad magic", name)
	}
	ndim := int(magic & 0xff)
	dims := make([]int, ndim)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(b[4+4*i:]))
	}
	return b[4+4*ndim:], dims
}

func loadFashion(t *testing.T) *dataset {
	d := &dataset{name: "Fashion-MNIST", features: 784, classes: 10, hidden: 256, epochs: 5, bs: 64, lr: 0.1, studentHidden: 32, calibRows: 1000, timeBatch: 64}
	load := func(img, lbl string) ([]float32, []int) {
		px, dims := readIDX(t, img, 2051)
		lb, _ := readIDX(t, lbl, 2049)
		n := dims[0]
		x := make([]float32, n*784)
		for i := range x {
			x[i] = float32(px[i]) / 255
		}
		y := make([]int, n)
		for i := range y {
			y[i] = int(lb[i])
		}
		return x, y
	}
	d.trainX, d.trainY = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
	d.testX, d.testY = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
	return d
}

// mlp is in -> hidden (ReLU) -> classes.
type mlp struct {
	in, h, c       int
	w1, b1, w2, b2 []float32
	m1, m2         []float32 // pruning masks (nil = dense)
}

func newMLP(r *rand.Rand, in, h, c int) *mlp {
	m := &mlp{in: in, h: h, c: c, w1: make([]float32, in*h), b1: make([]float32, h), w2: make([]float32, h*c), b2: make([]float32, c)}
	for i := range m.w1 {
		m.w1[i] = float32(r.NormFloat64() * math.Sqrt(2/float64(in)))
	}
	for i := range m.w2 {
		m.w2[i] = float32(r.NormFloat64() * math.Sqrt(1/float64(h)))
	}
	return m
}

func (m *mlp) bytes() int { return 4 * (len(m.w1) + len(m.b1) + len(m.w2) + len(m.b2)) }

// forward returns hidden pre-activations z1, activations a1 and logits.
func (m *mlp) forward(cpu *CPU, x []float32, n int) (z1, a1, logits []float32) {
	z1 = make([]float32, n*m.h)
	_ = cpu.Sgemm(false, false, n, m.h, m.in, x, m.w1, z1)
	a1 = make([]float32, n*m.h)
	for i := range z1 {
		z1[i] += m.b1[i%m.h]
		a1[i] = max(z1[i], 0)
	}
	logits = make([]float32, n*m.c)
	_ = cpu.Sgemm(false, false, n, m.c, m.h, a1, m.w2, logits)
	for i := range logits {
		logits[i] += m.b2[i%m.c]
	}
	return
}

// step applies one SGD step given dlogits (already divided by the batch).
func (m *mlp) step(cpu *CPU, x, z1, a1, dl []float32, n int, lr float32) {
	dw2 := make([]float32, m.h*m.c)
	_ = cpu.Sgemm(true, false, m.h, m.c, n, a1, dl, dw2)
	da1 := make([]float32, n*m.h)
	_ = cpu.Sgemm(false, true, n, m.h, m.c, dl, m.w2, da1)
	for i := range da1 {
		if z1[i] <= 0 {
			da1[i] = 0
		}
	}
	dw1 := make([]float32, m.in*m.h)
	_ = cpu.Sgemm(true, false, m.in, m.h, n, x, da1, dw1)
	for i := 0; i < n; i++ {
		for j := 0; j < m.c; j++ {
			m.b2[j] -= lr * dl[i*m.c+j]
		}
		for j := 0; j < m.h; j++ {
			m.b1[j] -= lr * da1[i*m.h+j]
		}
	}
	axpy(m.w2, dw2, -lr)
	axpy(m.w1, dw1, -lr)
	if m.m1 != nil {
		for i := range m.w1 {
			m.w1[i] *= m.m1[i]
		}
		for i := range m.w2 {
			m.w2[i] *= m.m2[i]
		}
	}
}

// ceGrad returns softmax(logits) - onehot(y), divided by n.
func ceGrad(logits []float32, y []int, n, c int) []float32 {
	g := make([]float32, n*c)
	for i := 0; i < n; i++ {
		softmaxRow(g[i*c:(i+1)*c], logits[i*c:(i+1)*c], false)
		g[i*c+y[i]] -= 1
		for j := 0; j < c; j++ {
			g[i*c+j] /= float32(n)
		}
	}
	return g
}

// train runs SGD epochs; teacher (optional) gives distillation logits with
// mixing weight alpha on the KL term at temperature T.
func (m *mlp) train(cpu *CPU, d *dataset, epochs int, lr float32, seed uint64, teacher *mlp, alpha, T float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	n := len(d.trainY)
	for ep := 0; ep < epochs; ep++ {
		perm := r.Perm(n)
		for s := 0; s < n; s += d.bs {
			e := min(s+d.bs, n)
			bn := e - s
			x := make([]float32, bn*d.features)
			y := make([]int, bn)
			for i, p := range perm[s:e] {
				copy(x[i*d.features:], d.trainX[p*d.features:(p+1)*d.features])
				y[i] = d.trainY[p]
			}
			z1, a1, logits := m.forward(cpu, x, bn)
			g := ceGrad(logits, y, bn, m.c)
			if teacher != nil {
				_, _, tl := teacher.forward(cpu, x, bn)
				kg := make([]float32, len(g))
				if _, err := KLDistill(kg, logits, tl, bn, m.c, T); err != nil {
					panic(err)
				}
				for i := range g {
					g[i] = (1-alpha)*g[i] + alpha*kg[i]
				}
			}
			m.step(cpu, x, z1, a1, g, bn, lr)
		}
	}
}

func accuracy(logits []float32, y []int, c int) float64 {
	ok := 0
	for i, yi := range y {
		row := logits[i*c : (i+1)*c]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == yi {
			ok++
		}
	}
	return 100 * float64(ok) / float64(len(y))
}

// qmlp is the int8 version of an mlp.
type qmlp struct{ l1, l2 *QLinear }

func quantizeMLP(t *testing.T, cpu *CPU, m *mlp, calib []float32, rows int) *qmlp {
	l1, err := QuantizeLinear(m.w1, m.in, m.h, m.b1)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := QuantizeLinear(m.w2, m.h, m.c, m.b2)
	if err != nil {
		t.Fatal(err)
	}
	if err := l1.Calibrate(calib, 1); err != nil {
		t.Fatal(err)
	}
	_, a1, _ := m.forward(cpu, calib, rows)
	if err := l2.Calibrate(a1, 1); err != nil {
		t.Fatal(err)
	}
	return &qmlp{l1, l2}
}

func (q *qmlp) forward(x []float32, n int) []float32 {
	h := make([]float32, n*q.l1.Out)
	_ = q.l1.Forward(h, x, n)
	for i, v := range h {
		h[i] = max(v, 0)
	}
	out := make([]float32, n*q.l2.Out)
	_ = q.l2.Forward(out, h, n)
	return out
}

func (q *qmlp) bytes() int { return q.l1.Bytes() + q.l2.Bytes() }

type smlp struct{ l1, l2 *SparseLinear }

func (s *smlp) forward(x []float32, n int) []float32 {
	h := make([]float32, n*s.l1.Out)
	_ = s.l1.Forward(h, x, n)
	for i, v := range h {
		h[i] = max(v, 0)
	}
	out := make([]float32, n*s.l2.Out)
	_ = s.l2.Forward(out, h, n)
	return out
}

// timeInfer returns the median time per batch of f over the test set in
// batches of bs.
func timeInfer(d *dataset, bs int, f func(x []float32, n int)) time.Duration {
	var ts []time.Duration
	for rep := 0; rep < 5; rep++ {
		start := time.Now()
		batches := 0
		for s := 0; s < len(d.testY) && batches < 200; s += bs {
			e := min(s+bs, len(d.testY))
			f(d.testX[s*d.features:e*d.features], e-s)
			batches++
		}
		ts = append(ts, time.Since(start)/time.Duration(batches))
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}

func TestCompression(t *testing.T) {
	for _, load := range []func(*testing.T) *dataset{loadWDBC, loadFashion} {
		d := load(t)
		t.Run(d.name, func(t *testing.T) { compressionReport(t, d) })
	}
}

func compressionReport(t *testing.T, d *dataset) {
	cpu, _ := NewCPUWithConfig(CPUConfig{})
	nTest := len(d.testY)
	r := rand.New(rand.NewPCG(1, 1))
	start := time.Now()
	m := newMLP(r, d.features, d.hidden, d.classes)
	m.train(cpu, d, d.epochs, d.lr, 1, nil, 0, 0)
	t.Logf("%s: trained %d-%d-%d MLP in %v", d.name, d.features, d.hidden, d.classes, time.Since(start).Round(time.Millisecond))
	_, _, lf := m.forward(cpu, d.testX, nTest)
	accF := accuracy(lf, d.testY, d.classes)

	// int8 PTQ, calibrated on training rows
	calib := d.trainX[:d.calibRows*d.features]
	q := quantizeMLP(t, cpu, m, calib, d.calibRows)
	accQ := accuracy(q.forward(d.testX, nTest), d.testY, d.classes)

	bs := d.timeBatch
	t.Logf("%s f32:  accuracy %.2f%%  %d bytes", d.name, accF, m.bytes())
	t.Logf("%s int8: accuracy %.2f%% (%+.2f points)  %d bytes (%.2fx smaller)",
		d.name, accQ, accQ-accF, q.bytes(), float64(m.bytes())/float64(q.bytes()))
	var tf time.Duration
	for _, b := range slices.Compact([]int{1, bs}) {
		f := timeInfer(d, b, func(x []float32, n int) { m.forward(cpu, x, n) })
		tq := timeInfer(d, b, func(x []float32, n int) { q.forward(x, n) })
		t.Logf("%s inference, batch %d: f32 %v, int8 %v (%.2fx)", d.name, b, f, tq, float64(f)/float64(tq))
		tf = f
	}
	if math.Abs(accQ-accF) > 1 {
		t.Errorf("int8 accuracy %.2f%% is more than 1 point from f32 %.2f%%", accQ, accF)
	}

	// magnitude pruning to 90%, then a short masked fine-tune
	pm := &mlp{in: m.in, h: m.h, c: m.c, w1: slices.Clone(m.w1), b1: slices.Clone(m.b1), w2: slices.Clone(m.w2), b2: slices.Clone(m.b2)}
	_, _ = Prune(pm.w1, 0.9)
	_, _ = Prune(pm.w2, 0.9)
	_, _, lp := pm.forward(cpu, d.testX, nTest)
	accP := accuracy(lp, d.testY, d.classes)
	pm.m1, pm.m2 = make([]float32, len(pm.w1)), make([]float32, len(pm.w2))
	for i, v := range pm.w1 {
		if v != 0 {
			pm.m1[i] = 1
		}
	}
	for i, v := range pm.w2 {
		if v != 0 {
			pm.m2[i] = 1
		}
	}
	pm.train(cpu, d, max(1, d.epochs/5), d.lr/2, 2, nil, 0, 0)
	_, _, lpf := pm.forward(cpu, d.testX, nTest)
	accPF := accuracy(lpf, d.testY, d.classes)
	s1, _ := NewSparseLinear(pm.w1, pm.in, pm.h, pm.b1)
	s2, _ := NewSparseLinear(pm.w2, pm.h, pm.c, pm.b2)
	sm := &smlp{s1, s2}
	ts := timeInfer(d, bs, func(x []float32, n int) { sm.forward(x, n) })
	sb := s1.Bytes() + s2.Bytes()
	t.Logf("%s pruned 90%%: accuracy %.2f%% without fine-tune, %.2f%% after %d masked epochs; CSR %d bytes (%.2fx smaller); %v per batch (%.2fx vs f32 dense)",
		d.name, accP, accPF, max(1, d.epochs/5), sb, float64(m.bytes())/float64(sb), ts, float64(tf)/float64(ts))

	// distillation: a small student from the teacher's logits vs from labels
	rs := rand.New(rand.NewPCG(3, 3))
	plain := newMLP(rs, d.features, d.studentHidden, d.classes)
	student := &mlp{in: plain.in, h: plain.h, c: plain.c, w1: slices.Clone(plain.w1), b1: slices.Clone(plain.b1), w2: slices.Clone(plain.w2), b2: slices.Clone(plain.b2)}
	plain.train(cpu, d, d.epochs, d.lr, 4, nil, 0, 0)
	student.train(cpu, d, d.epochs, d.lr, 4, m, 0.7, 4)
	_, _, lpl := plain.forward(cpu, d.testX, nTest)
	_, _, lst := student.forward(cpu, d.testX, nTest)
	t.Logf("%s distillation: %d-hidden student %.2f%% with KL(T=4, alpha=0.7) vs %.2f%% from labels only (teacher %.2f%%, %d vs %d bytes)",
		d.name, d.studentHidden, accuracy(lst, d.testY, d.classes), accuracy(lpl, d.testY, d.classes), accF, student.bytes(), m.bytes())
}
