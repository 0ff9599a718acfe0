// Package sim runs a whole federation in one process: an embedded hub and N
// simulated devices, each with its own connection, trainer and non-IID data
// shard, reporting per-round progress; and the data sets the simulations
// and benchmarks use (generated patient vitals, WDBC, Fashion-MNIST).
package sim

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/train"
	"github.com/fennec-edge/fennec/internal/shared"
)

// Data is a classification data set split into train and test.
type Data struct {
	Name              string
	Features, Classes int
	TrainX            []float32 // [n, Features]
	TrainY            []int32
	TestX             []float32
	TestY             []int32
	// FeatureNames, when known.
	FeatureNames []string
	// TrainGroups (optional, len(TrainY)) is each training row's unit of
	// privacy, such as its patient (any int32 ids; rows of one unit share
	// one). The DP-SGD modes clip per unit; without it every row is its
	// own unit.
	TrainGroups []int32
}

// Groups returns the dense unit ids (0..units-1, in order of first
// appearance) of rows idx under TrainGroups, or nil without it.
func (d *Data) Groups(idx []int) *model.Tensor {
	if d.TrainGroups == nil {
		return nil
	}
	ids := make([]int32, len(idx))
	dense := map[int32]int32{}
	for i, r := range idx {
		g := d.TrainGroups[r]
		id, ok := dense[g]
		if !ok {
			id = int32(len(dense))
			dense[g] = id
		}
		ids[i] = id
	}
	t := model.I32Tensor("groups", []uint64{uint64(len(idx))}, ids)
	return &t
}

// Dataset packs rows idx of (x, y) into an ABI Dataset.
func Dataset(x []float32, y []int32, features int, idx []int) train.Dataset {
	xs := make([]float32, 0, len(idx)*features)
	ys := make([]int32, 0, len(idx))
	for _, i := range idx {
		xs = append(xs, x[i*features:(i+1)*features]...)
		ys = append(ys, y[i])
	}
	return train.Dataset{
		X: model.F32Tensor("x", []uint64{uint64(len(idx)), uint64(features)}, xs),
		Y: model.I32Tensor("y", []uint64{uint64(len(idx))}, ys),
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Test returns the test split as a Dataset.
func (d *Data) Test() train.Dataset { return Dataset(d.TestX, d.TestY, d.Features, seq(len(d.TestY))) }

// Train returns the whole training split as a Dataset.
func (d *Data) Train() train.Dataset {
	return Dataset(d.TrainX, d.TrainY, d.Features, seq(len(d.TrainY)))
}

// Shards splits the training rows over n devices. skew 0 is IID (a random
// equal split); skew > 0 draws each class's share per device from a
// Dirichlet(1/skew) distribution (larger skew, more label imbalance; 1 is
// the common Dirichlet alpha = 1 setting). Every device gets at least one
// row.
func (d *Data) Shards(n int, skew float64, seed uint64) ([][]int, error) {
	rows := len(d.TrainY)
	if n < 1 || n > rows {
		return nil, fmt.Errorf("sim: %d devices for %d training rows", n, rows)
	}
	r := rand.New(rand.NewPCG(seed, 11))
	shards := make([][]int, n)
	if skew <= 0 {
		p := r.Perm(rows)
		for i, row := range p {
			shards[i%n] = append(shards[i%n], row)
		}
		return shards, nil
	}
	byClass := map[int32][]int{}
	for i, y := range d.TrainY {
		byClass[y] = append(byClass[y], i)
	}
	classes := make([]int32, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool { return classes[i] < classes[j] })
	alpha := 1 / skew
	for _, c := range classes {
		rowsC := byClass[c]
		r.Shuffle(len(rowsC), func(i, j int) { rowsC[i], rowsC[j] = rowsC[j], rowsC[i] })
		w := make([]float64, n)
		var s float64
		for i := range w {
			w[i] = gamma(r, alpha)
			s += w[i]
		}
		start := 0
		acc := 0.0
		for i := range w {
			acc += w[i] / s
			end := int(math.Round(acc * float64(len(rowsC))))
			if i == n-1 {
				end = len(rowsC)
			}
			shards[i] = append(shards[i], rowsC[start:end]...)
			start = end
		}
	}
	// Give empty shards a row from the largest.
	for i := range shards {
		if len(shards[i]) == 0 {
			big := 0
			for j := range shards {
				if len(shards[j]) > len(shards[big]) {
					big = j
				}
			}
			last := len(shards[big]) - 1
			shards[i] = append(shards[i], shards[big][last])
			shards[big] = shards[big][:last]
		}
	}
	return shards, nil
}

// gamma samples Gamma(alpha, 1) (Marsaglia-Tsang, with the alpha < 1 boost).
func gamma(r *rand.Rand, alpha float64) float64 {
	if alpha < 1 {
		return gamma(r, alpha+1) * math.Pow(r.Float64(), 1/alpha)
	}
	d := alpha - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// standardize scales features to zero mean, unit variance using the
// training split's statistics.
func (d *Data) standardize() {
	f := d.Features
	n := len(d.TrainY)
	mean := make([]float64, f)
	sd := make([]float64, f)
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			mean[j] += float64(d.TrainX[i*f+j])
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			e := float64(d.TrainX[i*f+j]) - mean[j]
			sd[j] += e * e
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j] / float64(n))
		if sd[j] == 0 {
			sd[j] = 1
		}
	}
	apply := func(x []float32) {
		for i := 0; i+f <= len(x); i += f {
			for j := 0; j < f; j++ {
				x[i+j] = float32((float64(x[i+j]) - mean[j]) / sd[j])
			}
		}
	}
	apply(d.TrainX)
	apply(d.TestX)
}

// split moves a random testFrac of rows to the test split.
func split(name string, f, classes int, x []float32, y []int32, testFrac float64, seed uint64) *Data {
	r := rand.New(rand.NewPCG(seed, 3))
	p := r.Perm(len(y))
	nt := int(float64(len(y)) * testFrac)
	d := &Data{Name: name, Features: f, Classes: classes}
	for k, i := range p {
		if k < nt {
			d.TestX = append(d.TestX, x[i*f:(i+1)*f]...)
			d.TestY = append(d.TestY, y[i])
		} else {
			d.TrainX = append(d.TrainX, x[i*f:(i+1)*f]...)
			d.TrainY = append(d.TrainY, y[i])
		}
	}
	if testFrac > 0 {
		d.standardize()
	}
	return d
}

// DataDir returns ../shared/data beside the repository, or "" when absent
// (internal/shared).
func DataDir() string { return shared.Dir("data") }

// LoadCSV reads a numeric CSV whose last column is an integer class label,
// holds out testFrac of the rows as the test split and standardises the
// features with the training split's statistics; testFrac 0 keeps every
// row for training and the raw values (device-local data, preprocessed
// upstream).
// A first line that does not parse as numbers is skipped as a header (as
// WDBC's "569,30,malignant,benign").
func LoadCSV(path string, testFrac float64, seed uint64) (*Data, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var rd io.Reader = fh
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(fh)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rd = gz
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var x []float32
	var y []int32
	f := -1
	line := 0
	classes := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		parts := strings.Split(s, ",")
		vals := make([]float64, len(parts))
		ok := true
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				ok = false
				break
			}
			vals[i] = v
		}
		if !ok {
			if line == 1 {
				continue
			}
			return nil, fmt.Errorf("%s:%d: not numeric", path, line)
		}
		if f < 0 {
			f = len(parts) - 1
			if f < 1 {
				return nil, fmt.Errorf("%s:%d: need features and a label", path, line)
			}
		}
		if len(parts)-1 != f {
			return nil, fmt.Errorf("%s:%d: %d columns, expected %d", path, line, len(parts), f+1)
		}
		lab := vals[f]
		if lab != math.Trunc(lab) || lab < 0 || lab > 1000 {
			return nil, fmt.Errorf("%s:%d: label %v is not a class index", path, line, lab)
		}
		for _, v := range vals[:f] {
			x = append(x, float32(v))
		}
		y = append(y, int32(lab))
		classes = max(classes, int(lab)+1)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(y) < 10 {
		return nil, fmt.Errorf("%s: only %d rows", path, len(y))
	}
	return split(strings.TrimSuffix(filepath.Base(path), ".csv"), f, classes, x, y, testFrac, seed), nil
}

// LoadFashion reads Fashion-MNIST (IDX, gzip) from dir, scaling pixels to
// [0, 1] (no standardisation). ntrain/ntest limit the rows (0 = all).
func LoadFashion(dir string, ntrain, ntest int) (*Data, error) {
	rd := func(name string, magic uint32) ([]byte, []uint32, error) {
		fh, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, err
		}
		defer fh.Close()
		gz, err := gzip.NewReader(fh)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		b, err := io.ReadAll(io.LimitReader(gz, 100<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		nd := int(magic & 0xff)
		if len(b) < 4+4*nd || binary.BigEndian.Uint32(b) != magic {
			return nil, nil, fmt.Errorf("%s: bad IDX header", name)
		}
		dims := make([]uint32, nd)
		total := 1
		for i := range dims {
			dims[i] = binary.BigEndian.Uint32(b[4+4*i:])
			total *= int(dims[i])
		}
		body := b[4+4*nd:]
		if len(body) != total {
			return nil, nil, fmt.Errorf("%s: %d bytes, header says %d", name, len(body), total)
		}
		return body, dims, nil
	}
	load := func(prefix string, limit int) ([]float32, []int32, error) {
		img, dims, err := rd(prefix+"-images-idx3-ubyte.gz", 0x803)
		if err != nil {
			return nil, nil, err
		}
		lab, ldims, err := rd(prefix+"-labels-idx1-ubyte.gz", 0x801)
		if err != nil {
			return nil, nil, err
		}
		n := int(dims[0])
		if int(ldims[0]) != n || dims[1]*dims[2] != 784 {
			return nil, nil, errors.New("fashion: images and labels disagree")
		}
		if limit > 0 && limit < n {
			n = limit
		}
		x := make([]float32, n*784)
		for i := range x {
			x[i] = float32(img[i]) / 255
		}
		y := make([]int32, n)
		for i := range y {
			y[i] = int32(lab[i])
		}
		return x, y, nil
	}
	trX, trY, err := load("train", ntrain)
	if err != nil {
		return nil, err
	}
	teX, teY, err := load("t10k", ntest)
	if err != nil {
		return nil, err
	}
	return &Data{Name: "fashion-mnist", Features: 784, Classes: 10, TrainX: trX, TrainY: trY, TestX: teX, TestY: teY}, nil
}

// TrainDataset returns the training split, labels as f32 [n] when
// f32Labels (binary single-logit modules) or i32 class indices.
func (d *Data) TrainDataset(f32Labels bool) train.Dataset {
	ds := d.Train()
	if f32Labels {
		f := make([]float32, len(d.TrainY))
		for i, y := range d.TrainY {
			f[i] = float32(y)
		}
		ds.Y = model.F32Tensor("y", []uint64{uint64(len(f))}, f)
	}
	return ds
}
