package sdk

import (
	"errors"
	"fmt"
	"runtime/debug"
	"unsafe"

	"github.com/fennec-edge/fennec/sdk/cbor"
)

// call is the state of the entrypoint call in progress.
var call struct {
	active bool
	inLen  int32
	input  []byte // cached after the first Input/InputBytes
	output bool   // Output was called
}

// Handler is an entrypoint body: raw CBOR input in, raw CBOR output out.
type Handler func(in []byte) ([]byte, error)

var handlers = map[string]Handler{}

// Handle registers fn as the body of entrypoint name, for Dispatch. Call it
// from init. The matching export is two lines in package main:
//
//	//go:wasmexport process
//	func process(n int32) int32 { return sdk.Dispatch("process", n) }
func Handle(name string, fn Handler) {
	if fn == nil {
		panic("sdk.Handle: nil handler for " + name)
	}
	if _, dup := handlers[name]; dup {
		panic("sdk.Handle: entrypoint " + name + " registered twice")
	}
	handlers[name] = fn
}

// Dispatch runs the handler registered for name with Serve semantics.
func Dispatch(name string, inLen int32) int32 {
	fn, ok := handlers[name]
	if !ok {
		Fail("no handler registered for entrypoint " + name)
		return 1
	}
	return Serve(inLen, fn)
}

// Serve runs one entrypoint call: it reads the input (inLen bytes), calls
// fn, sets fn's output with fennec.output, and returns the ABI status (0 on
// success). An error from fn, or a panic, becomes a fennec.fail message and
// a non-zero status; the panic's stack is logged at error level.
func Serve(inLen int32, fn Handler) (status int32) {
	begin(inLen)
	defer end()
	defer func() {
		if r := recover(); r != nil {
			Log(LevelError, fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			Fail(fmt.Sprintf("panic: %v", r))
			status = 2
		}
	}()
	in, err := InputBytes()
	if err != nil {
		Fail(err.Error())
		return 1
	}
	out, err := fn(in)
	if err != nil {
		Fail(err.Error())
		return 1
	}
	if out != nil || !call.output {
		if err := OutputBytes(out); err != nil {
			Fail(err.Error())
			return 1
		}
	}
	return 0
}

// ServeCBOR is Serve with typed, CBOR-decoded input and CBOR-encoded output.
//
//	//go:wasmexport predict
//	func predict(n int32) int32 { return sdk.ServeCBOR(n, run) }
//	func run(in Request) (Response, error) { ... }
func ServeCBOR[In, Out any](inLen int32, fn func(In) (Out, error)) int32 {
	return Serve(inLen, func(b []byte) ([]byte, error) {
		var in In
		if err := Unmarshal(b, &in); err != nil {
			return nil, fmt.Errorf("decode input: %w", err)
		}
		out, err := fn(in)
		if err != nil {
			return nil, err
		}
		return Marshal(&out) // a pointer, so that pointer-receiver EncodeCBOR methods apply
	})
}

func begin(inLen int32) {
	call.active, call.inLen, call.input, call.output = true, inLen, nil, false
}

func end() { call.active, call.input = false, nil }

// errNoCall is returned by Input outside an entrypoint call made through
// Serve, Dispatch or ServeCBOR (the SDK then does not know the input length).
var errNoCall = errors.New("fennec: Input outside an entrypoint call (use sdk.Serve/Dispatch)")

// InputBytes returns the raw CBOR input of the current call.
func InputBytes() ([]byte, error) {
	if !call.active {
		return nil, errNoCall
	}
	if call.input != nil {
		return call.input, nil
	}
	if call.inLen < 0 {
		return nil, &Error{Op: "input", Code: EMEM, Msg: "negative input length"}
	}
	buf := make([]byte, call.inLen)
	r, err := check("input", hostInput(unsafe.Pointer(unsafe.SliceData(buf)), call.inLen))
	if err != nil {
		return nil, err
	}
	if r != call.inLen {
		return nil, &Error{Op: "input", Code: EINTERNAL, Msg: fmt.Sprintf("host reported %d bytes, entrypoint argument %d", r, call.inLen)}
	}
	call.input = buf
	return buf, nil
}

// Input decodes the current call's CBOR input into v (a pointer).
func Input(v any) error {
	b, err := InputBytes()
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// OutputBytes sets the current call's output to a copy of b.
func OutputBytes(b []byte) error {
	if _, err := check("output", hostOutput(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)))); err != nil {
		return err
	}
	call.output = true
	return nil
}

// Output encodes v as CBOR and sets it as the current call's output.
func Output(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	return OutputBytes(b)
}

// Fail records msg as the failure message of the current call. The
// entrypoint should then return non-zero (Serve does this for you).
func Fail(msg string) {
	b := []byte(msg)
	hostFail(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)))
}

// Level is a log level with slog's numbering.
type Level int32

// Log levels as the host's slog understands them.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// Log sends msg to the host's logger under the module's name.
func Log(level Level, msg string) {
	b := []byte(msg)
	hostLog(int32(level), unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)))
}

// Logf formats and logs.
func Logf(level Level, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }

// Marshal encodes v as deterministic CBOR (package sdk/cbor). Types that
// implement cbor.Marshaler, as the SDK's shared structures do, encode
// without reflection; other values go through reflection over `cbor:"..."`
// struct tags.
func Marshal(v any) ([]byte, error) { return cbor.Marshal(v) }

// Unmarshal decodes CBOR data into v (a pointer), with cbor.Unmarshaler's
// fast path where v implements it. Generic maps decode to map[string]any.
func Unmarshal(data []byte, v any) error { return cbor.Unmarshal(data, v) }
