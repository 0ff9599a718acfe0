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
	"sync"
	"sync/atomic"
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
	for range helpers {
		go j.help()
	}
	j.run()
	j.wg.Wait()
	j.f = nil
	jobs.Put(j)
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
