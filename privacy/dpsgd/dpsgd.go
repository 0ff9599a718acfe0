// Package dpsgd is the per-unit gradient kernel of differentially private
// SGD (Abadi et al. 2016) where the unit of privacy is a group of rows,
// such as all of one patient's readings: for each sampled unit it sums the
// per-row gradients of the unit's rows, clips that sum to L2 norm C, and
// adds it to the step's total. The caller adds the Gaussian noise
// N(0, (zC)^2) to the total (privacy/dp.Source) and charges the privacy
// accountant for a Poisson-subsampled Gaussian at the sampling rate of
// Sample.
//
// The network is a ReLU multilayer perceptron with one output logit and
// binary cross-entropy on it (the deterioration-risk model of
// modules/risk-train); weights are [in, out] row-major, y = x·W + b, the
// parameter layout W0, b0, W1, b1, ... as in sdk/nn. The package knows
// nothing of Wasm: hostfuncs' dp_sgd_step wraps it for guests.
package dpsgd

import (
	"fmt"
	"math"
	"slices"

	"github.com/fennec-edge/fennec/privacy/dp"
)

// Limits on what ClipSum accepts (every size comes from untrusted input).
const (
	// MaxLayers is the most linear layers of a network.
	MaxLayers = 16
	// MaxWidth is the widest layer.
	MaxWidth = 1 << 14
)

// Layer is one linear layer: W [In, Out] row-major and B [Out].
type Layer struct {
	In, Out int
	W, B    []float32
}

// Net is a ReLU MLP: layers chained with ReLU between them and one logit
// after the last.
type Net []Layer

// Validate checks the layers' shapes and chaining.
func (n Net) Validate() error {
	if len(n) == 0 || len(n) > MaxLayers {
		return fmt.Errorf("dpsgd: %d layers, want 1..%d", len(n), MaxLayers)
	}
	for i, l := range n {
		switch {
		case l.In < 1 || l.Out < 1 || l.In > MaxWidth || l.Out > MaxWidth:
			return fmt.Errorf("dpsgd: layer %d is %dx%d, want sizes in 1..%d", i, l.In, l.Out, MaxWidth)
		case len(l.W) != l.In*l.Out:
			return fmt.Errorf("dpsgd: layer %d weight has %d values, want %d x %d", i, len(l.W), l.In, l.Out)
		case len(l.B) != l.Out:
			return fmt.Errorf("dpsgd: layer %d bias has %d values, want %d", i, len(l.B), l.Out)
		case i > 0 && l.In != n[i-1].Out:
			return fmt.Errorf("dpsgd: layer %d takes %d inputs, layer %d gives %d", i, l.In, i-1, n[i-1].Out)
		}
	}
	if last := n[len(n)-1]; last.Out != 1 {
		return fmt.Errorf("dpsgd: the last layer has %d outputs, want one logit", last.Out)
	}
	return nil
}

// Params is the number of parameters (the length of a gradient).
func (n Net) Params() int {
	p := 0
	for _, l := range n {
		p += l.In*l.Out + l.Out
	}
	return p
}

func (n Net) widest() int {
	w := n[0].In
	for _, l := range n {
		w = max(w, l.Out)
	}
	return w
}

// Groups indexes the rows of a dataset by unit: unit u owns Rows(u).
type Groups struct {
	start []int // len units+1
	rows  []int
	most  int
}

// NewGroups groups rows by ids[r], the unit of row r in 0..units-1. Every
// unit must own at least one row.
func NewGroups(ids []int32, units int) (*Groups, error) {
	if units < 1 || units > len(ids) {
		return nil, fmt.Errorf("dpsgd: %d units for %d rows (want 1..rows)", units, len(ids))
	}
	g := &Groups{start: make([]int, units+1), rows: make([]int, len(ids))}
	for r, id := range ids {
		if id < 0 || int(id) >= units {
			return nil, fmt.Errorf("dpsgd: row %d: unit %d outside 0..%d", r, id, units-1)
		}
		g.start[id+1]++
	}
	for u := 0; u < units; u++ {
		if g.start[u+1] == 0 {
			return nil, fmt.Errorf("dpsgd: unit %d has no rows (ids must be dense, 0..units-1)", u)
		}
		g.most = max(g.most, g.start[u+1])
		g.start[u+1] += g.start[u]
	}
	next := make([]int, units)
	copy(next, g.start[:units])
	for r, id := range ids {
		g.rows[next[id]] = r
		next[id]++
	}
	return g, nil
}

// Units is the number of units.
func (g *Groups) Units() int { return len(g.start) - 1 }

// Rows returns unit u's rows (owned by g).
func (g *Groups) Rows(u int) []int { return g.rows[g.start[u]:g.start[u+1]] }

// Len is the number of rows.
func (g *Groups) Len() int { return len(g.rows) }

// MaxRows is the most rows of one unit.
func (g *Groups) MaxRows() int { return g.most }

// Sample draws a Poisson sample of units: each of units is kept
// independently with probability q, from src. It appends the kept units
// to dst[:0] in increasing order.
func Sample(src *dp.Source, units int, q float64, dst []int) []int {
	dst = dst[:0]
	for u := 0; u < units; u++ {
		if src.Float64() < q {
			dst = append(dst, u)
		}
	}
	return dst
}

// Workspace is ClipSum's scratch, sized for a network and a unit of at
// most MaxRows rows; reuse it across steps.
type Workspace struct {
	acts [][]float32 // per layer input activations (acts[0] = x rows), then the logit
	grad []float32   // dLoss/d(layer output), [rows, width]
	prev []float32
	unit []float32 // the unit's gradient, Params long
	dims []int     // the layer sizes it was made for
}

func dims(net Net) []int {
	d := make([]int, 0, len(net)+1)
	for _, l := range net {
		d = append(d, l.In)
	}
	return append(d, net[len(net)-1].Out)
}

// WorkspaceBytes is the memory a Workspace for net and units of up to
// maxRows rows holds (what a host counts against a guest's quota).
func WorkspaceBytes(net Net, maxRows int) int64 {
	n := int64(net.Params())
	for _, l := range net {
		n += int64(maxRows) * int64(l.In)
	}
	n += int64(maxRows) + 2*int64(maxRows)*int64(net.widest())
	return 4 * n
}

func newWorkspace(net Net, rows int) *Workspace {
	w := &Workspace{unit: make([]float32, net.Params()), dims: dims(net)}
	for _, l := range net {
		w.acts = append(w.acts, make([]float32, rows*l.In))
	}
	w.acts = append(w.acts, make([]float32, rows))
	w.grad = make([]float32, rows*net.widest())
	w.prev = make([]float32, rows*net.widest())
	return w
}

// Stats describes one ClipSum.
type Stats struct {
	Units   int // units summed
	Rows    int // their rows
	Clipped int // units whose gradient norm exceeded the clip
	// NonFinite counts units whose gradient was not finite; they add
	// nothing.
	NonFinite int
}

// ClipSum adds to sum (net.Params() values, layout W0, b0, W1, b1, ...)
// the gradient of every unit in units, each clipped to L2 norm clip: for
// a unit u, g_u = sum over its rows r of the gradient of
// BCE(logit(x_r), y_r), and sum += g_u * min(1, clip/|g_u|). x holds the
// rows' features (net[0].In per row), y their labels in [0, 1]. ws may be
// nil (one is made); a Workspace made for fewer rows is replaced.
func ClipSum(net Net, x, y []float32, g *Groups, units []int, clip float64, sum []float32, ws **Workspace) (Stats, error) {
	var st Stats
	if err := net.Validate(); err != nil {
		return st, err
	}
	f := net[0].In
	switch {
	case !(clip > 0) || math.IsInf(clip, 0):
		return st, fmt.Errorf("dpsgd: clip %v must be positive and finite", clip)
	case len(x) != g.Len()*f:
		return st, fmt.Errorf("dpsgd: x has %d values, want %d rows x %d features", len(x), g.Len(), f)
	case len(y) != g.Len():
		return st, fmt.Errorf("dpsgd: y has %d values for %d rows", len(y), g.Len())
	case len(sum) != net.Params():
		return st, fmt.Errorf("dpsgd: sum has %d values for %d parameters", len(sum), net.Params())
	}
	if ws == nil {
		ws = new(*Workspace)
	}
	if *ws == nil || !slices.Equal((*ws).dims, dims(net)) || len((*ws).acts[len(net)]) < g.MaxRows() {
		*ws = newWorkspace(net, g.MaxRows())
	}
	w := *ws
	for _, u := range units {
		if u < 0 || u >= g.Units() {
			return st, fmt.Errorf("dpsgd: unit %d outside 0..%d", u, g.Units()-1)
		}
		rows := g.Rows(u)
		unitGrad(net, x, y, rows, w)
		norm := dp.L2Norm(w.unit)
		st.Units++
		st.Rows += len(rows)
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			st.NonFinite++
			continue
		}
		s := float32(1)
		if norm > clip {
			st.Clipped++
			s = float32(clip / norm)
		}
		for i, v := range w.unit {
			sum[i] += s * v
		}
	}
	return st, nil
}

// unitGrad leaves in w.unit the summed gradient of the rows.
func unitGrad(net Net, x, y []float32, rows []int, w *Workspace) {
	m, f := len(rows), net[0].In
	a0 := w.acts[0][:m*f]
	for i, r := range rows {
		copy(a0[i*f:(i+1)*f], x[r*f:(r+1)*f])
	}
	// Forward: acts[l+1] = act(acts[l]·W_l + b_l), ReLU but after the last.
	for l, ly := range net {
		in, out := w.acts[l][:m*ly.In], w.acts[l+1][:m*ly.Out]
		for i := 0; i < m; i++ {
			o := out[i*ly.Out : (i+1)*ly.Out]
			copy(o, ly.B)
			for k, v := range in[i*ly.In : (i+1)*ly.In] {
				if v == 0 {
					continue
				}
				wk := ly.W[k*ly.Out : (k+1)*ly.Out]
				for j := range o {
					o[j] += v * wk[j]
				}
			}
			if l+1 < len(net) {
				for j, v := range o {
					if v < 0 {
						o[j] = 0
					}
				}
			}
		}
	}
	// dBCE/dlogit = sigmoid(logit) - y.
	g := w.grad[:m]
	for i, z := range w.acts[len(net)][:m] {
		g[i] = float32(1/(1+math.Exp(-float64(z)))) - y[rows[i]]
	}
	clear(w.unit)
	off := len(w.unit)
	for l := len(net) - 1; l >= 0; l-- {
		ly := net[l]
		off -= ly.In*ly.Out + ly.Out
		gw, gb := w.unit[off:off+ly.In*ly.Out], w.unit[off+ly.In*ly.Out:off+ly.In*ly.Out+ly.Out]
		in := w.acts[l][:m*ly.In]
		for i := 0; i < m; i++ {
			gi := g[i*ly.Out : (i+1)*ly.Out]
			for j, v := range gi {
				gb[j] += v
			}
			for k, a := range in[i*ly.In : (i+1)*ly.In] {
				if a == 0 {
					continue
				}
				row := gw[k*ly.Out : (k+1)*ly.Out]
				for j, v := range gi {
					row[j] += a * v
				}
			}
		}
		if l == 0 {
			break
		}
		// dLoss/d(acts[l]) = g·Wᵀ, through the ReLU that made acts[l].
		p := w.prev[:m*ly.In]
		for i := 0; i < m; i++ {
			gi := g[i*ly.Out : (i+1)*ly.Out]
			for k := 0; k < ly.In; k++ {
				if in[i*ly.In+k] <= 0 { // ReLU output 0: no gradient
					p[i*ly.In+k] = 0
					continue
				}
				wk := ly.W[k*ly.Out : (k+1)*ly.Out]
				var s float32
				for j, v := range gi {
					s += v * wk[j]
				}
				p[i*ly.In+k] = s
			}
		}
		w.grad, w.prev = w.prev, w.grad
		g = w.grad[:m*ly.In]
	}
}
