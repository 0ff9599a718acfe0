package hostfuncs

import (
	"errors"
	"fmt"
)

// Host memory that a guest can size is counted against its instance's
// tensor quota (InstanceConfig.MaxTensorBytes) before it is allocated, by
// one of three means:
//
//   - tensors: alloc charges their bytes for as long as they live;
//   - caches a backend derives from a tensor (the int8 kernel layout of
//     matmul_i8's weights): chargePack, until the tensor is released;
//   - scratch of one host call (copies of a tensor's elements, HE
//     encryption and decryption buffers): hold/unhold around the call, or
//     fitScratch for a single buffer that dies with the call.
//
// Allocations whose size the guest does not choose (bounded by a constant
// or by the host's configuration) are not counted; docs/ABI.md lists both.

var errQuota = errors.New("tensor quota exceeded")

// hold counts n bytes of scratch for the rest of the host call; the caller
// must unhold(n) when the call returns. It fails with EQUOTA when the
// tensors, caches and scratch already counted leave less than n.
func (in *Instance) hold(op, what string, n int64) (uint64, bool) {
	if err := in.fitScratch(n); err != nil {
		return in.fail(EQUOTA, "%s: %s of %d bytes: %v", op, what, n, err), false
	}
	in.held += n
	return 0, true
}

// unhold returns scratch counted by hold.
func (in *Instance) unhold(n int64) { in.held -= n }

// fitScratch checks that n more bytes of host scratch fit in the quota. A
// buffer checked with it must not outlive the host call, and only one may
// be live at a time beyond what hold counts.
func (in *Instance) fitScratch(n int64) error {
	if n < 0 || in.bytes+in.held+n > in.cfg.MaxTensorBytes {
		return fmt.Errorf("%w: %d bytes of host scratch, %d of %d bytes in use", errQuota, n, in.bytes+in.held, in.cfg.MaxTensorBytes)
	}
	return nil
}
