package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

func TestParseHostConfig(t *testing.T) {
	src := "# an edge box\n[limits]\nmax_memory_pages = 2048\nmax_call_timeout = \"20s\"\ndefault_instances = 1\n"
	l, err := runtime.ParseHostConfig([]byte(src), "host.toml")
	if err != nil {
		t.Fatal(err)
	}
	if l.MaxMemoryPages != 2048 || l.MaxCallTimeout != 20*time.Second || l.DefaultInstances != 1 || l.MaxTensorBytes != 0 {
		t.Fatalf("%+v", l)
	}
	cases := []struct {
		name, src string
		line      int
		field     string
		msg       string
	}{
		{"unknown field", "[limits]\nmax_memory = 5\n", 2, "limits.max_memory", "unknown field"},
		{"unknown table", "[limitz]\nx = 1\n", 1, "limitz", "unknown field"},
		{"wrong type", "[limits]\nmax_instances = \"many\"\n", 2, "limits.max_instances", "incompatible types"},
		{"bad duration", "[limits]\nmax_call_timeout = \"soon\"\n", 2, "", "not a duration"},
		{"negative", "[limits]\nmax_tensor_bytes = -1\n", 2, "limits.max_tensor_bytes", "outside"},
		{"too many pages", "[limits]\nmax_memory_pages = 70000\n", 2, "limits.max_memory_pages", "outside 0..65536"},
		{"default above cap", "[limits]\nmax_memory_pages = 512\n\ndefault_memory_pages = 1024\n", 4, "limits.default_memory_pages", "above max_memory_pages = 512"},
		{"default above built-in cap", "[limits]\ndefault_call_timeout = \"2m\"\n", 2, "limits.default_call_timeout", "above max_call_timeout = 1m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runtime.ParseHostConfig([]byte(c.src), "host.toml")
			var he *runtime.HostConfigError
			if !errors.As(err, &he) || !errors.Is(err, runtime.ErrHostConfig) || errors.Is(err, runtime.ErrManifest) {
				t.Fatalf("got %v, want a *HostConfigError", err)
			}
			if he.Line != c.line || (c.field != "" && he.Field != c.field) || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "host.toml") {
				t.Fatalf("got %q (line %d, field %q), want line %d, field %q, saying %q", err, he.Line, he.Field, c.line, c.field, c.msg)
			}
		})
	}
}

// TestManifestAboveCeiling: a manifest asking for more than the host's
// ceiling fails to compile, naming the field and the ceiling (it used to be
// cut down to the ceiling silently).
func TestManifestAboveCeiling(t *testing.T) {
	wasm := wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{{Sig: entry, Body: wasmtest.I32Const(0), Export: "run"}}}.Encode()
	base := "name = \"greedy\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n[limits]\n"
	ctx := context.Background()
	eng, _ := newEngine(t, runtime.Config{Limits: runtime.HostLimits{MaxMemoryPages: 512, MaxInstances: 2}})
	for _, c := range []struct{ limit, want string }{
		{"memory_pages = 1024", `limits.memory_pages = 1024 (64 MiB) is above this host's ceiling of 512 (32 MiB) (max_memory_pages`},
		{"instances = 3", "limits.instances = 3 is above this host's ceiling of 2 (max_instances"},
		{"tensor_bytes = 4294967296", "limits.tensor_bytes = 4294967296 is above this host's ceiling of 268435456"},
		{"call_timeout = \"5m\"", "limits.call_timeout = 5m0s is above this host's ceiling of 1m0s"},
	} {
		_, err := eng.Compile(ctx, wasm, manifest(t, base+c.limit+"\n"))
		if !errors.Is(err, runtime.ErrLimit) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "module greedy") {
			t.Errorf("%s: %v, want %q", c.limit, err, c.want)
		}
	}
	// At the ceiling is fine, and an unset default follows a lowered cap.
	mod, err := eng.Compile(ctx, wasm, manifest(t, base+"memory_pages = 512\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.Call(ctx, "run", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.New(ctx, runtime.Config{Limits: runtime.HostLimits{MaxInstances: 2, DefaultInstances: 3}}); err == nil || !strings.Contains(err.Error(), "default_instances") {
		t.Fatalf("a default above its cap: %v", err)
	}
}
