// Package bench is the registry behind `fennec bench`: benchmarks that an
// operator runs on their own device. Each area registers its cases from a
// file of internal/benchsuite, so that the library packages stay free of
// benchmark code and the command only lists, selects and prints them. A case reports Results; a result with a reference carries
// the ratio to that reference, measured side by side in the same run.
package bench

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// Result is one measured figure.
type Result struct {
	Group string  `json:"group"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "ns/op", "GFLOP/s", "GB/s", "ms", ...
	// Ref names the reference measured in the same run, if any, with its
	// value in the same unit and Ratio = Value/RefValue (or RefValue/Value for
	// time units, so that a ratio above 1 always means "better than the
	// reference").
	Ref      string  `json:"ref,omitempty"`
	RefValue float64 `json:"ref_value,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"` // the target the issue set, for the table
	Note     string  `json:"note,omitempty"`
	Allocs   float64 `json:"allocs_per_op,omitempty"`
}

// Options tune a run.
type Options struct {
	// Quick shortens every case (fewer sizes, shorter timing) for smoke tests.
	Quick bool
	// MinTime is how long each timing sample runs; zero means 200ms (20ms
	// when Quick).
	MinTime time.Duration
}

// SampleTime returns the per-sample duration for o.
func (o Options) SampleTime() time.Duration {
	if o.MinTime > 0 {
		return o.MinTime
	}
	if o.Quick {
		return 20 * time.Millisecond
	}
	return 200 * time.Millisecond
}

// Case is one registered benchmark.
type Case struct {
	Group string // "abi", "gemm", "elementwise", "int8", "fed", "privacy", ...
	Name  string
	Doc   string
	Run   func(ctx context.Context, o Options) ([]Result, error)
}

var (
	mu    sync.Mutex
	cases []Case
)

// Register adds a case; it is meant to be called from init.
func Register(c Case) {
	mu.Lock()
	defer mu.Unlock()
	cases = append(cases, c)
}

// Cases returns the registered cases in the given groups (all when none),
// ordered by group then name.
func Cases(groups ...string) []Case {
	mu.Lock()
	defer mu.Unlock()
	var out []Case
	for _, c := range cases {
		if len(groups) == 0 || slices.Contains(groups, c.Group) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Groups lists the registered group names.
func Groups() []string {
	mu.Lock()
	defer mu.Unlock()
	var g []string
	for _, c := range cases {
		if !slices.Contains(g, c.Group) {
			g = append(g, c.Group)
		}
	}
	sort.Strings(g)
	return g
}

// Time measures f, which performs n operations, and returns the median
// nanoseconds per operation over samples runs of about o.SampleTime() each.
// The iteration count is calibrated first, as testing.B does.
func Time(o Options, samples int, f func(n int)) float64 {
	if samples < 1 {
		samples = 1
	}
	target := o.SampleTime()
	n := 1
	for {
		start := time.Now()
		f(n)
		d := time.Since(start)
		if d >= target/4 || n >= 1<<30 {
			// scale to the target duration
			if d > 0 {
				n = int(float64(n) * float64(target) / float64(d))
			}
			n = max(n, 1)
			break
		}
		n *= 4
	}
	res := make([]float64, samples)
	for i := range res {
		start := time.Now()
		f(n)
		res[i] = float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	return Median(res)
}

// Median returns the median of xs (which it sorts).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}

// Percentile returns the q-quantile (0 <= q <= 1) of xs, the element at
// rank floor(q*n) of a sorted copy (the largest for q = 1); 0 for none.
func Percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[max(0, min(len(s)-1, int(q*float64(len(s)))))]
}
