package strategy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Median is the coordinate-wise median (Yin et al. 2018), as numpy's
// np.median in Flower's aggregate_median: the middle value, or the mean of
// the two middle values for an even count. Example counts are ignored.
type Median struct{}

func (Median) Name() string { return "median" }
func (Median) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	out := coordMedian(vecs(updates), len(global))
	return out, finite("median", out)
}

// MinUpdates: the median of fewer than 3 values is not robust to one of
// them (of 2 it is their mean).
func (Median) MinUpdates() int     { return 3 }
func (Median) Requirement() string { return "n >= 3 (the median of 2 is their mean)" }

func vecs(updates []Update) [][]float32 {
	v := make([][]float32, len(updates))
	for i := range updates {
		v[i] = updates[i].Vec
	}
	return v
}

func coordMedian(vs [][]float32, n int) []float32 {
	out := make([]float32, n)
	k := len(vs)
	parallel(n, func(lo, hi int) {
		col := make([]float32, k)
		for i := lo; i < hi; i++ {
			for j, v := range vs {
				col[j] = v[i]
			}
			out[i] = median(col)
		}
	})
	return out
}

// median of col (reordered in place).
func median(col []float32) float32 {
	k := len(col)
	if k == 1 {
		return col[0]
	}
	sortCol(col)
	if k%2 == 1 {
		return col[k/2]
	}
	return float32((float64(col[k/2-1]) + float64(col[k/2])) / 2)
}

// sortCol sorts col ascending in a total order in which NaN is above
// +Inf, so that a NaN is one more outlier at the top for the rules that
// trim or take middle values, instead of landing anywhere (a < or >
// comparison with NaN is always false, and slices.Sort puts NaN first).
func sortCol(col []float32) {
	// NaNs to the end, then the rest in the ordinary order.
	n := len(col)
	for i := 0; i < n; {
		if x := col[i]; x != x {
			n--
			col[i], col[n] = col[n], x
			continue
		}
		i++
	}
	if n <= 32 {
		insertion(col[:n])
	} else {
		slices.Sort(col[:n])
	}
}

func insertion(a []float32) {
	for i := 1; i < len(a); i++ {
		x := a[i]
		j := i - 1
		for ; j >= 0 && a[j] > x; j-- {
			a[j+1] = a[j]
		}
		a[j+1] = x
	}
}

// orderable maps NaN (a distance or score involving a non-finite value) to
// +Inf, so that it sorts last and is never chosen as the best.
func orderable(x float64) float64 {
	if x != x {
		return math.Inf(1)
	}
	return x
}

// TrimmedMean is the coordinate-wise trimmed mean (Yin et al. 2018) as
// Flower's FedTrimmedAvg / scipy.stats.trim_mean: per coordinate, drop the
// int(Beta*n) smallest and largest values and average the rest. Beta
// defaults to 0.2 (Flower's default) and must be < 0.5.
type TrimmedMean struct{ Beta float64 }

func (TrimmedMean) Name() string { return "trimmedmean" }
func (t TrimmedMean) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	beta := t.Beta
	if beta == 0 {
		beta = 0.2
	}
	if beta < 0 || beta >= 0.5 {
		return nil, fmt.Errorf("strategy trimmedmean: beta %v outside [0, 0.5)", beta)
	}
	k := len(updates)
	cut := int(beta * float64(k))
	keep := k - 2*cut
	if keep <= 0 {
		return nil, fmt.Errorf("strategy trimmedmean: beta %v leaves nothing of %d updates", beta, k)
	}
	vs := vecs(updates)
	out := make([]float32, len(global))
	parallel(len(global), func(lo, hi int) {
		col := make([]float32, k)
		for i := lo; i < hi; i++ {
			for j, v := range vs {
				col[j] = v[i]
			}
			sortCol(col)
			var s float64
			for _, x := range col[cut : k-cut] {
				s += float64(x)
			}
			out[i] = float32(s / float64(keep))
		}
	})
	return out, finite("trimmedmean", out)
}

func (t TrimmedMean) beta() float64 {
	if t.Beta == 0 {
		return 0.2
	}
	return t.Beta
}

// MinUpdates is the smallest n with int(Beta*n) >= 1: below it nothing is
// trimmed and the rule is the plain mean.
func (t TrimmedMean) MinUpdates() int {
	b := t.beta()
	if !(b > 0 && b < 0.5) {
		return math.MaxInt32 // refused by Aggregate anyway
	}
	n := math.Ceil(1 / b)
	for n < math.MaxInt32 && int(b*n) < 1 {
		n++
	}
	return int(min(n, math.MaxInt32))
}

func (t TrimmedMean) Requirement() string {
	return fmt.Sprintf("trims int(%g*n) >= 1 value at each end", t.beta())
}

// distances returns the matrix of squared Euclidean distances between the
// vectors (float64 accumulation), as Flower's _compute_distances.
func distances(vs [][]float32) [][]float64 {
	k := len(vs)
	d := make([][]float64, k)
	for i := range d {
		d[i] = make([]float64, k)
	}
	type pair struct{ i, j int }
	var pairs []pair
	for i := 0; i < k; i++ {
		for j := i + 1; j < k; j++ {
			pairs = append(pairs, pair{i, j})
		}
	}
	n := len(pairs)
	if n == 0 {
		return d
	}
	parallelItems(n, func(p int) {
		a, b := vs[pairs[p].i], vs[pairs[p].j]
		b = b[:len(a)]
		var s0, s1, s2, s3 float64
		x := 0
		for ; x+4 <= len(a); x += 4 {
			// Differences in float64: two finite f32 values of opposite
			// sign near the f32 limit differ by more than f32 holds.
			e0 := float64(a[x]) - float64(b[x])
			e1 := float64(a[x+1]) - float64(b[x+1])
			e2 := float64(a[x+2]) - float64(b[x+2])
			e3 := float64(a[x+3]) - float64(b[x+3])
			s0 += e0 * e0
			s1 += e1 * e1
			s2 += e2 * e2
			s3 += e3 * e3
		}
		for ; x < len(a); x++ {
			e := float64(a[x]) - float64(b[x])
			s0 += e * e
		}
		s := orderable(s0 + s1 + s2 + s3)
		d[pairs[p].i][pairs[p].j] = s
		d[pairs[p].j][pairs[p].i] = s
	})
	return d
}

// krumScores returns, for each candidate in idx, the sum of squared
// distances to its n-f-2 nearest other candidates (at least 1).
func krumScores(d [][]float64, idx []int, f int) []float64 {
	nc := max(1, len(idx)-f-2)
	scores := make([]float64, len(idx))
	row := make([]float64, 0, len(idx))
	for a, i := range idx {
		row = row[:0]
		for _, j := range idx {
			if j != i {
				row = append(row, d[i][j])
			}
		}
		sort.Float64s(row)
		var s float64
		for _, x := range row[:min(nc, len(row))] {
			s += x
		}
		scores[a] = orderable(s)
	}
	return scores
}

// Krum (Blanchard et al. 2017) selects the update whose summed squared
// distance to its n-f-2 nearest neighbours is smallest. With M > 0 it is
// MultiKrum: the example-weighted mean of the M best-scored updates. F is
// the assumed number of Byzantine devices. As Flower's aggregate_krum.
type Krum struct{ F, M int }

func (k Krum) Name() string {
	if k.M > 0 {
		return "multikrum"
	}
	return "krum"
}

// MinUpdates is Blanchard et al.'s n >= 2f+3.
func (k Krum) MinUpdates() int { return 2*k.F + 3 }
func (k Krum) Requirement() string {
	return fmt.Sprintf("n >= 2f+3 with f=%d", k.F)
}

func (k Krum) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	if k.F < 0 || k.M < 0 {
		return nil, errors.New("strategy krum: F and M must be >= 0")
	}
	d := distances(vecs(updates))
	idx := make([]int, len(updates))
	for i := range idx {
		idx[i] = i
	}
	scores := krumScores(d, idx, k.F)
	order := argsort(scores)
	if k.M == 0 {
		out := slices.Clone(updates[order[0]].Vec)
		return out, finite("krum", out)
	}
	m := min(k.M, len(updates))
	sel := make([]Update, m)
	for i := range sel {
		sel[i] = updates[order[i]]
	}
	out, err := WeightedMean(sel, exampleWeights(sel))
	if err != nil {
		return nil, err
	}
	return out, finite("multikrum", out)
}

func argsort(s []float64) []int {
	o := make([]int, len(s))
	for i := range o {
		o[i] = i
	}
	sort.SliceStable(o, func(a, b int) bool { return orderable(s[o[a]]) < orderable(s[o[b]]) })
	return o
}

// Bulyan (El Mhamdi et al. 2018) as Flower's aggregate_bulyan with Krum as
// the first rule: select theta = n-2f updates by repeatedly taking the Krum
// choice among those left, then per coordinate average the beta = theta-2f
// values closest to the selected set's coordinate-wise median. Requires
// n >= 4f+3.
type Bulyan struct{ F int }

func (Bulyan) Name() string { return "bulyan" }

// MinUpdates is El Mhamdi et al.'s n >= 4f+3.
func (b Bulyan) MinUpdates() int { return 4*b.F + 3 }
func (b Bulyan) Requirement() string {
	return fmt.Sprintf("n >= 4f+3 with f=%d", b.F)
}
func (b Bulyan) Aggregate(_ uint64, global []float32, updates []Update) ([]float32, error) {
	if err := check(global, updates); err != nil {
		return nil, err
	}
	n, f := len(updates), b.F
	if f < 0 || n < 4*f+3 {
		return nil, fmt.Errorf("strategy bulyan: needs n >= 4f+3 updates, have n=%d f=%d", n, f)
	}
	all := vecs(updates)
	d := distances(all)
	left := make([]int, n)
	for i := range left {
		left[i] = i
	}
	theta := n - 2*f
	beta := theta - 2*f
	selected := make([][]float32, 0, theta)
	for range theta {
		sc := krumScores(d, left, f)
		best := argsort(sc)[0]
		selected = append(selected, all[left[best]])
		left = slices.Delete(left, best, best+1)
	}
	med := coordMedian(selected, len(global))
	out := make([]float32, len(global))
	parallel(len(global), func(lo, hi int) {
		type dv struct {
			dist float64
			v    float32
		}
		col := make([]dv, theta)
		for i := lo; i < hi; i++ {
			for j, v := range selected {
				col[j] = dv{orderable(math.Abs(float64(v[i]) - float64(med[i]))), v[i]}
			}
			if beta < theta {
				sort.Slice(col, func(a, c int) bool { return col[a].dist < col[c].dist })
			}
			var s float64
			for _, x := range col[:beta] {
				s += float64(x.v)
			}
			out[i] = float32(s / float64(beta))
		}
	})
	return out, finite("bulyan", out)
}
