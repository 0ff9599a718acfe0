//go:build !linux

package runtime

import "github.com/tetratelabs/wazero/experimental"

// newMemoryAllocator returns nil (wazero's own allocator, which grows a Go
// slice) where the reserve-and-commit allocator of memory_linux.go is not
// built.
func newMemoryAllocator(*callGate) experimental.MemoryAllocator { return nil }
