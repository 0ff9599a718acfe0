// Package par runs the chunks of a loop on the calling goroutine and on
// helper goroutines that claim chunks from a shared counter as they start
// (dynamic scheduling, the way onnxruntime's thread pool hands out shards).
//
// A fixed split (one part per thread, each waited for) is as slow as its
// slowest part: on a shared machine the helper often starts late or loses its
// core for a while, and the caller, done with its own part, then waits for
// the whole of the helper's. Here the caller keeps claiming chunks until none
// is left, so a late helper costs one chunk at most, and a helper that never
// got a core costs nothing but its start.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ChunksPerThread is how many chunks a loop is cut into per thread: more
// evens out parts that run at unequal speed, fewer keep each chunk large
// enough to run its kernel at full speed.
const ChunksPerThread = 4

// Parallel reports whether For(threads, n, grain, f) would use more than
// the calling goroutine; callers that get false call their work directly,
// so that no closure is allocated on the common path.
func Parallel(threads, n, grain int) bool {
	return threads > 1 && n/max(1, grain) >= 2
}

// For calls f over [0, n), cut into contiguous chunks, and returns when all
// are done. It uses the calling goroutine and up to threads-1 helpers, and
// only when [0, n) holds at least two grains (grain is the least work worth
// a goroutine's start); chunks are then at least grain/ChunksPerThread
// items, at most ChunksPerThread per thread. f must be safe to call
// concurrently on disjoint ranges.
func For(threads, n, grain int, f func(lo, hi int)) {
	ForChunks(threads, n, grain, ChunksPerThread*threads, f)
}

// ForChunks is For with at most maxChunks chunks, for kernels whose
// chunks each repeat some setup (a product split by rows packs all of B
// in each chunk): maxChunks == threads still lets the caller take a late
// helper's chunk.
func ForChunks(threads, n, grain, maxChunks int, f func(lo, hi int)) {
	if !Parallel(threads, n, grain) {
		f(0, n)
		return
	}
	chunks := max(2, min(maxChunks, n/max(1, grain/ChunksPerThread)))
	helpers := min(threads, n/max(1, grain)) - 1
	splits.Add(1)
	j := jobs.Get().(*job)
	j.f, j.n, j.chunks = f, n, int64(chunks)
	j.next.Store(0)
	j.wg.Add(helpers)
	offered := 0
	for range helpers {
		// A helper still spinning after its last job takes this one at
		// once; otherwise a new goroutine starts (it then spins too).
		if spinners.Load() > 0 && offer.CompareAndSwap(nil, j) {
			offered++
			continue
		}
		go helper(j)
	}
	j.run()
	// An offer no spinner took (it stopped spinning meanwhile) is taken
	// back: its chunks are done, so only its Done is owed.
	for ; offered > 0 && offer.CompareAndSwap(j, nil); offered-- {
		j.wg.Done()
	}
	j.wg.Wait()
	j.f = nil
	jobs.Put(j)
}

// SpinFor is how long a helper waits, spinning, for the next loop after it
// ran out of chunks, before its goroutine ends. On the VMs fennec was
// measured on, a goroutine started on an idle vCPU took 100-150 us to run
// (8 chunks of 25 us took 184 us on two threads against 204 us on one), so
// a fresh helper missed every loop shorter than that; a model run's loops
// follow each other within microseconds, so a helper that spins between
// them is there for the next (onnxruntime's thread pool spins the same way
// before it blocks). Spinning costs at most SpinFor of one core per loop.
const SpinFor = 200 * time.Microsecond

var (
	// offer holds a job for a spinning helper to take.
	offer atomic.Pointer[job]
	// spinners counts the helpers spinning for an offer.
	spinners atomic.Int32
	// maxSpinners bounds them: one fewer than the Ps.
	maxSpinners = int32(max(1, runtime.GOMAXPROCS(0)-1))
)

// helper runs j's chunks, then spins for the next offered job (running it
// and spinning again) until SpinFor passes without one.
func helper(j *job) {
	for j != nil {
		j.help()
		j = nil
		if spinners.Add(1) > maxSpinners {
			spinners.Add(-1)
			return
		}
		deadline := time.Now().Add(SpinFor)
		for i := 0; ; i++ {
			if o := offer.Load(); o != nil && offer.CompareAndSwap(o, nil) {
				j = o
				break
			}
			if i%64 == 63 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
		spinners.Add(-1)
	}
}

// splits counts the For calls that split, for profiles (Splits).
var splits atomic.Int64

// Splits returns how many For calls so far used helpers: a profile reads it
// before and after a step to tell whether the step ran split.
func Splits() int64 { return splits.Load() }

// job is one For call's shared state.
type job struct {
	f      func(lo, hi int)
	n      int
	chunks int64
	next   atomic.Int64 // the next chunk to claim
	wg     sync.WaitGroup
}

var jobs = sync.Pool{New: func() any { return new(job) }}

func (j *job) help() {
	defer j.wg.Done()
	j.run()
}

// run claims and runs chunks until none is left.
func (j *job) run() {
	n, k := int64(j.n), j.chunks
	for {
		c := j.next.Add(1) - 1
		if c >= k {
			return
		}
		j.f(int(n*c/k), int(n*(c+1)/k))
	}
}
