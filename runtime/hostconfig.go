package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrHostConfig is matched by every *HostConfigError with errors.Is.
var ErrHostConfig = errors.New("invalid host configuration")

// HostConfigError is a host configuration problem at a source position.
type HostConfigError struct{ ManifestError }

func (e *HostConfigError) Is(target error) bool { return target == ErrHostConfig }

// hostConfigFile is the operator's host configuration (fennec
// --host-config FILE): the ceilings of what manifests may ask for and the
// defaults of what they leave out. A field left out takes the value of
// DefaultHostLimits.
//
//	[limits]
//	max_memory_pages = 4096      # 64 KiB pages of linear memory per instance
//	max_call_timeout = "60s"
//	max_tensor_bytes = 268435456 # live tensor bytes per instance
//	max_tensor_handles = 8192
//	max_instances = 4            # instances of one module alive at once
//	max_output_bytes = 67108864  # what one call may return
//	default_memory_pages = 1024
//	default_call_timeout = "5s"
//	default_tensor_bytes = 67108864
//	default_tensor_handles = 1024
//	default_instances = 2
type hostConfigFile struct {
	Limits struct {
		MaxMemoryPages       int64    `toml:"max_memory_pages"`
		MaxCallTimeout       Duration `toml:"max_call_timeout"`
		MaxTensorBytes       int64    `toml:"max_tensor_bytes"`
		MaxTensorHandles     int64    `toml:"max_tensor_handles"`
		MaxInstances         int64    `toml:"max_instances"`
		MaxOutputBytes       int64    `toml:"max_output_bytes"`
		DefaultMemoryPages   int64    `toml:"default_memory_pages"`
		DefaultCallTimeout   Duration `toml:"default_call_timeout"`
		DefaultTensorBytes   int64    `toml:"default_tensor_bytes"`
		DefaultTensorHandles int64    `toml:"default_tensor_handles"`
		DefaultInstances     int64    `toml:"default_instances"`
	} `toml:"limits"`
}

// ReadHostConfig reads and validates a host configuration file.
func ReadHostConfig(path string) (HostLimits, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return HostLimits{}, err
	}
	return ParseHostConfig(b, path)
}

// ParseHostConfig decodes and validates a host configuration in TOML;
// source names it in errors. Errors are *HostConfigError values naming the
// line and field. Fields left out are zero in the result (Config.Limits
// takes DefaultHostLimits for them).
func ParseHostConfig(data []byte, source string) (HostLimits, error) {
	var f hostConfigFile
	src := string(data)
	bad := func(field, format string, args ...any) error {
		return &HostConfigError{ManifestError{Source: source, Line: lineOf(src, strings.Split(field, ".")), Field: field, Msg: fmt.Sprintf(format, args...)}}
	}
	md, err := decodeTOML(data, source, &f)
	if err != nil {
		var me *ManifestError
		if errors.As(err, &me) {
			return HostLimits{}, &HostConfigError{*me}
		}
		return HostLimits{}, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return HostLimits{}, bad(und[0].String(), "unknown field")
	}
	l := f.Limits
	ints := []struct {
		name   string
		v, max int64
	}{
		{"max_memory_pages", l.MaxMemoryPages, 65536},
		{"max_tensor_bytes", l.MaxTensorBytes, 1 << 40},
		{"max_tensor_handles", l.MaxTensorHandles, 65535},
		{"max_instances", l.MaxInstances, 1 << 16},
		{"max_output_bytes", l.MaxOutputBytes, 1 << 31},
		{"default_memory_pages", l.DefaultMemoryPages, 65536},
		{"default_tensor_bytes", l.DefaultTensorBytes, 1 << 40},
		{"default_tensor_handles", l.DefaultTensorHandles, 65535},
		{"default_instances", l.DefaultInstances, 1 << 16},
	}
	for _, c := range ints {
		if c.v < 0 || c.v > c.max {
			return HostLimits{}, bad("limits."+c.name, "%d is outside 0..%d (0 or left out means the built-in default)", c.v, c.max)
		}
	}
	for _, c := range []struct {
		name string
		v    time.Duration
	}{{"max_call_timeout", l.MaxCallTimeout.Duration}, {"default_call_timeout", l.DefaultCallTimeout.Duration}} {
		if c.v < 0 {
			return HostLimits{}, bad("limits."+c.name, "must not be negative")
		}
	}
	h := HostLimits{
		MaxMemoryPages: uint32(l.MaxMemoryPages), MaxCallTimeout: l.MaxCallTimeout.Duration,
		MaxTensorBytes: l.MaxTensorBytes, MaxTensorHandles: int(l.MaxTensorHandles),
		MaxInstances: int(l.MaxInstances), MaxOutputBytes: int(l.MaxOutputBytes),
		DefaultMemoryPages: uint32(l.DefaultMemoryPages), DefaultCallTimeout: l.DefaultCallTimeout.Duration,
		DefaultTensorBytes: l.DefaultTensorBytes, DefaultTensorHandles: int(l.DefaultTensorHandles),
		DefaultInstances: int(l.DefaultInstances),
	}
	if field, msg := h.check(); field != "" {
		return HostLimits{}, bad("limits."+field, "%s", msg)
	}
	return h, nil
}

// check reports a default above its ceiling (after defaults are applied)
// by its host configuration field name.
func (l HostLimits) check() (field, msg string) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxCallTimeout", int64(l.MaxCallTimeout)}, {"MaxTensorBytes", l.MaxTensorBytes},
		{"MaxTensorHandles", int64(l.MaxTensorHandles)}, {"MaxInstances", int64(l.MaxInstances)},
		{"MaxOutputBytes", int64(l.MaxOutputBytes)}, {"DefaultCallTimeout", int64(l.DefaultCallTimeout)},
		{"DefaultTensorBytes", l.DefaultTensorBytes}, {"DefaultTensorHandles", int64(l.DefaultTensorHandles)},
		{"DefaultInstances", int64(l.DefaultInstances)},
	} {
		if f.v < 0 {
			return f.name, fmt.Sprintf("must not be negative (0 means the default), got %d", f.v)
		}
	}
	w := l.withDefaults()
	pairs := []struct {
		def, max   string
		dv, mv     int64
		set        bool
		fmtDefault func(int64) string
	}{
		{"default_memory_pages", "max_memory_pages", int64(w.DefaultMemoryPages), int64(w.MaxMemoryPages), l.DefaultMemoryPages != 0, nil},
		{"default_call_timeout", "max_call_timeout", int64(w.DefaultCallTimeout), int64(w.MaxCallTimeout), l.DefaultCallTimeout != 0,
			func(v int64) string { return time.Duration(v).String() }},
		{"default_tensor_bytes", "max_tensor_bytes", w.DefaultTensorBytes, w.MaxTensorBytes, l.DefaultTensorBytes != 0, nil},
		{"default_tensor_handles", "max_tensor_handles", int64(w.DefaultTensorHandles), int64(w.MaxTensorHandles), l.DefaultTensorHandles != 0, nil},
		{"default_instances", "max_instances", int64(w.DefaultInstances), int64(w.MaxInstances), l.DefaultInstances != 0, nil},
	}
	for _, p := range pairs {
		if p.set && p.dv > p.mv {
			f := p.fmtDefault
			if f == nil {
				f = func(v int64) string { return fmt.Sprint(v) }
			}
			return p.def, fmt.Sprintf("%s is above %s = %s", f(p.dv), p.max, f(p.mv))
		}
	}
	return "", ""
}
