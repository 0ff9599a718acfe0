package par

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestForCoversEachIndexOnce checks that the chunks tile [0, n) exactly, for
// serial and split loops, and that a split loop is cut at most
// ChunksPerThread*threads ways into chunks of at least grain/ChunksPerThread.
func TestForCoversEachIndexOnce(t *testing.T) {
	for _, c := range []struct{ threads, n, grain int }{
		{1, 100, 1}, {2, 1, 1}, {2, 0, 1}, {2, 3, 2}, {2, 4, 2}, {2, 1000, 7}, {3, 1001, 10}, {8, 17, 1}, {2, 1 << 16, 1 << 12}, {4, 10, 0},
	} {
		hits := make([]atomic.Int32, c.n)
		var calls, small atomic.Int32
		For(c.threads, c.n, c.grain, func(lo, hi int) {
			calls.Add(1)
			if hi-lo < c.grain/ChunksPerThread {
				small.Add(1)
			}
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Fatalf("%+v: index %d run %d times", c, i, h)
			}
		}
		if Parallel(c.threads, c.n, c.grain) {
			if n := int(calls.Load()); n > ChunksPerThread*c.threads || n < 2 {
				t.Errorf("%+v: %d chunks", c, n)
			}
			if small.Load() > 0 {
				t.Errorf("%+v: %d chunks under grain/%d", c, small.Load(), ChunksPerThread)
			}
		} else if calls.Load() != 1 {
			t.Errorf("%+v: serial loop called f %d times", c, calls.Load())
		}
	}
}

// TestForNested runs For inside For's chunks (a kernel split inside a split
// node), which must not deadlock: helpers never wait for each other.
func TestForNested(t *testing.T) {
	var sum atomic.Int64
	For(2, 8, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			For(2, 100, 10, func(lo, hi int) { sum.Add(int64(hi - lo)) })
		}
	})
	if sum.Load() != 800 {
		t.Fatalf("sum %d, want 800", sum.Load())
	}
}

// TestSpinningHelpers runs loops back to back (a spinning helper takes
// each offer), with gaps longer than SpinFor (the helpers stop and new
// ones start), from several goroutines at once (offers raced for and taken
// back): every index runs once and no For is left waiting.
func TestSpinningHelpers(t *testing.T) {
	done := make(chan struct{})
	for g := range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			for it := range 300 {
				n := 64 + it%7
				hits := make([]atomic.Int32, n)
				For(2+g%2, n, 8, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				})
				for i := range hits {
					if h := hits[i].Load(); h != 1 {
						t.Errorf("goroutine %d loop %d: index %d run %d times", g, it, i, h)
						return
					}
				}
				if it%100 == 99 {
					time.Sleep(2 * SpinFor)
				}
			}
		}()
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("a For did not return")
		}
	}
}

// burn does about n nanoseconds of arithmetic on x.
func burn(x *float64, n int) {
	v := *x
	for i := 0; i < n/2; i++ {
		v = v*1.0000001 + 1e-9
	}
	*x = v
}

// BenchmarkSequence times what a model run looks like to internal/par: 20
// split loops of about 40 us of work each (at one thread), with 10 us of
// serial work between them, at one thread and two; each sequence starts
// past SpinFor after the last, with no helper spinning (a run of a model
// after a pause).
func BenchmarkSequence(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("t%d", threads), func(b *testing.B) {
			var sink [64]float64
			f := func(lo, hi int) { burn(&sink[lo], (hi-lo)*1000) }
			for b.Loop() {
				for range 20 {
					burn(&sink[0], 10000)
					For(threads, 40, 2, f)
				}
				b.StopTimer()
				time.Sleep(2 * SpinFor)
				b.StartTimer()
			}
		})
	}
}
