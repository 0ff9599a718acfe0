package runtime

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// reservedMemory is a linear memory that reserves its maximum once, with
// no access, and commits pages as the guest grows it: growth never copies,
// and the process holds no more than the pages the guest has grown into.
// (wazero's default grows a Go slice by append: each growth copies the
// memory, and the old copies stay resident until a collection, which took
// a memory capped at 1 GiB to 3.8 GB of RSS.) Free returns the pages to
// the system at once, deferred to the end of the call while the instance
// is running one: a runaway abandoned by host-calls preemption may still
// touch its memory when the engine closes.
type reservedMemory struct {
	gate *callGate

	mu        sync.Mutex
	mapping   []byte // the whole reservation, as unix.Mmap returned it
	committed int    // bytes readable and writable from the start
}

// newMemoryAllocator returns the allocator of one instance's memory.
func newMemoryAllocator(g *callGate) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capacity, maxBytes uint64) experimental.LinearMemory {
		size := max(maxBytes, capacity, uint64(unix.Getpagesize()))
		b, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
		if err != nil {
			return &sliceMemory{max: maxBytes}
		}
		return &reservedMemory{gate: g, mapping: b}
	})
}

// Reallocate implements experimental.LinearMemory.
func (m *reservedMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mapping == nil || size > uint64(len(m.mapping)) {
		return nil
	}
	if n := int(size); n > m.committed {
		page := unix.Getpagesize()
		end := min((n+page-1)/page*page, len(m.mapping))
		if err := unix.Mprotect(m.mapping[m.committed:end], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = end
	}
	return m.mapping[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *reservedMemory) Free() {
	m.gate.afterCall(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.mapping != nil {
			unix.Munmap(m.mapping)
			m.mapping, m.committed = nil, 0
		}
	})
}

// sliceMemory is the fallback when the reservation cannot be mapped: a Go
// slice grown by copying, as wazero does by default.
type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		b := make([]byte, size)
		copy(b, m.buf)
		m.buf = b
	}
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }
