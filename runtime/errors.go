package runtime

import (
	"errors"
	"fmt"
)

// Errors that Call, Compile and Load return, matched with errors.Is.
var (
	// ErrInvalidModule: the bytes are not a valid WebAssembly module, or it
	// does not have the shape of a fennec module (no memory export, a
	// command instead of a reactor, an entrypoint with the wrong type).
	ErrInvalidModule = errors.New("invalid module")
	// ErrCapability: the module imports host functions of a group its
	// manifest does not request, or requests a capability the operator does
	// not allow.
	ErrCapability = errors.New("capability not granted")
	// ErrTrap: the guest trapped (a panic, unreachable, an out-of-bounds
	// access, a stack overflow, memory exhausted).
	ErrTrap = errors.New("guest trapped")
	// ErrDeadline: the call ran past its deadline and was stopped.
	ErrDeadline = errors.New("call deadline exceeded")
	// ErrGuest: the entrypoint returned a non-zero status.
	ErrGuest = errors.New("entrypoint failed")
	// ErrNoEntrypoint: the manifest does not list the entrypoint called.
	ErrNoEntrypoint = errors.New("no such entrypoint")
	// ErrLimit: the manifest asks for more than the host's ceiling
	// (Config.Limits, or the operator's host configuration).
	ErrLimit = errors.New("limit above the host's ceiling")
	// ErrClosed: the module or engine is closed.
	ErrClosed = errors.New("closed")
)

// CallError describes a failed call.
type CallError struct {
	Module string // module name
	Entry  string // entrypoint
	Kind   error  // one of ErrTrap, ErrDeadline, ErrGuest, ...
	Status int32  // the entrypoint's return value, for ErrGuest
	Msg    string // the guest's message or the trap's description
}

func (e *CallError) Error() string {
	s := fmt.Sprintf("module %s: %s: %v", e.Module, e.Entry, e.Kind)
	if e.Kind == ErrGuest {
		s += fmt.Sprintf(" (status %d)", e.Status)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

func (e *CallError) Unwrap() error { return e.Kind }
