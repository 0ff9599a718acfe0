package sdk

import (
	"errors"
	"strconv"
	"unsafe"
)

// Code is a negative ABI error code (docs/ABI.md, "Error codes").
type Code int32

// ABI v1 error codes.
const (
	EINVAL    Code = -1
	EMEM      Code = -2
	EHANDLE   Code = -3
	ESHAPE    Code = -4
	EDTYPE    Code = -5
	EQUOTA    Code = -6
	EDENIED   Code = -7
	ENOMEM    Code = -8
	EINTERNAL Code = -9
	ESTATE    Code = -10
	EBUDGET   Code = -11
	ETOOBIG   Code = -12
)

// codeNotWasm is what the non-wasm stubs return; it is not an ABI code.
const codeNotWasm = -1000

var codeNames = map[Code]string{
	EINVAL: "EINVAL", EMEM: "EMEM", EHANDLE: "EHANDLE", ESHAPE: "ESHAPE",
	EDTYPE: "EDTYPE", EQUOTA: "EQUOTA", EDENIED: "EDENIED", ENOMEM: "ENOMEM",
	EINTERNAL: "EINTERNAL", ESTATE: "ESTATE", EBUDGET: "EBUDGET", ETOOBIG: "ETOOBIG",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Error is a failed host call: the operation, the ABI code, and the host's
// last_error message.
type Error struct {
	Op   string // the SDK operation, e.g. "tensor.matmul"
	Code Code
	Msg  string // the host's message from fennec.last_error (may be empty)
}

func (e *Error) Error() string {
	s := "fennec: " + e.Op + ": " + e.Code.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, sdk.ErrQuota) matches any quota failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Op == "" && t.Msg == ""
}

// Sentinels for errors.Is; they carry only a Code.
var (
	ErrInvalid  = &Error{Code: EINVAL}
	ErrMem      = &Error{Code: EMEM}
	ErrHandle   = &Error{Code: EHANDLE}
	ErrShape    = &Error{Code: ESHAPE}
	ErrDType    = &Error{Code: EDTYPE}
	ErrQuota    = &Error{Code: EQUOTA}
	ErrDenied   = &Error{Code: EDENIED}
	ErrNoMem    = &Error{Code: ENOMEM}
	ErrInternal = &Error{Code: EINTERNAL}
	ErrState    = &Error{Code: ESTATE}
	ErrBudget   = &Error{Code: EBUDGET}
	ErrTooBig   = &Error{Code: ETOOBIG}
)

// ErrNotWasm is returned by every host call when the package is built for
// anything but GOOS=wasip1 (there is no host to call).
var ErrNotWasm = errors.New("fennec: not running as a wasm guest (build with GOOS=wasip1 GOARCH=wasm)")

// check turns a raw ABI result into (value, error).
func check(op string, r int32) (int32, error) {
	if r >= 0 {
		return r, nil
	}
	if r == codeNotWasm {
		return 0, ErrNotWasm
	}
	return 0, &Error{Op: op, Code: Code(r), Msg: LastError()}
}

// LastError returns the host's message for the last failing call on this
// instance ("" if none).
func LastError() string {
	n := hostLastError(nil, 0)
	if n <= 0 {
		return ""
	}
	if n > 64<<10 {
		n = 64 << 10
	}
	buf := make([]byte, n)
	m := hostLastError(unsafe.Pointer(unsafe.SliceData(buf)), n)
	if m < n {
		n = max(m, 0)
	}
	return string(buf[:n])
}

// ABIVersion returns the host's ABI major version (1), or ErrNotWasm.
func ABIVersion() (int, error) {
	r, err := check("abi_version", hostABIVersion())
	return int(r), err
}
