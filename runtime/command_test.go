package runtime_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/fennec-edge/fennec/runtime"
)

// TestCommandModules: _start runs once per Run under the module's limits;
// proc_exit's code comes back; a runaway _start stops at the deadline; a
// command is not callable and a reactor is not runnable.
func TestCommandModules(t *testing.T) {
	eng, _ := newEngine(t, runtime.Config{})
	ctx := context.Background()
	procExit := wasmtest.Import{Module: "wasi_snapshot_preview1", Name: "proc_exit", Sig: wasmtest.Sig{Params: []byte{wasmtest.I32}}}
	cmd := func(body []byte, imports ...wasmtest.Import) []byte {
		return wasmtest.Module{MemoryPages: 1, Imports: imports, Funcs: []wasmtest.Func{{Sig: wasmtest.Sig{}, Body: body, Export: "_start"}}}.Encode()
	}
	man := manifest(t, "name = \"c\"\nversion = \"1.0.0\"\ncommand = true\ncapabilities = [\"wasi:dirs\"]\n[limits]\ncall_timeout = \"200ms\"\n")
	cases := []struct {
		name string
		wasm []byte
		code uint32
		kind error
	}{
		{"returns", cmd(nil), 0, nil},
		{"proc_exit 7", cmd(wasmtest.Cat(wasmtest.I32Const(7), wasmtest.Call(0)), procExit), 7, nil},
		{"runaway", cmd([]byte{wasmtest.OpLoop, wasmtest.OpBlockVoid, wasmtest.OpBr, 0, wasmtest.OpEnd}), 0, runtime.ErrDeadline},
		{"trap", cmd([]byte{wasmtest.OpUnreachable}), 0, runtime.ErrTrap},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mod, err := eng.Compile(ctx, c.wasm, man)
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			for i := 0; i < 2; i++ { // each run is a fresh instance
				code, err := mod.Run(ctx, runtime.RunOptions{Args: []string{"a"}})
				if code != c.code || !errors.Is(err, c.kind) && (c.kind != nil || err != nil) {
					t.Fatalf("run %d: code %d, err %v; want %d, %v", i, code, err, c.code, c.kind)
				}
			}
			if _, err := mod.Call(ctx, "run", nil); !errors.Is(err, runtime.ErrNoEntrypoint) {
				t.Fatalf("Call on a command: %v", err)
			}
		})
	}
	// Directories need wasi:dirs.
	noDirs := manifest(t, "name = \"c\"\nversion = \"1.0.0\"\ncommand = true\n")
	mod, err := eng.Compile(ctx, cmd(nil), noDirs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := runtime.ParseDir(t.TempDir() + ":/data:ro")
	if err != nil || !d.ReadOnly || d.Guest != "/data" {
		t.Fatalf("ParseDir: %+v %v", d, err)
	}
	if _, err := mod.Run(ctx, runtime.RunOptions{Dirs: []runtime.Dir{d}}); err == nil || !strings.Contains(err.Error(), "wasi:dirs") {
		t.Fatalf("dirs without wasi:dirs: %v", err)
	}
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, nil, 0o644)
	if _, err := runtime.ParseDir(f); err == nil {
		t.Fatal("ParseDir accepted a file")
	}
	// command = true for a module without _start, and a reactor's Run.
	if _, err := eng.Compile(ctx, wasmtest.Module{MemoryPages: 1}.Encode(), noDirs); !errors.Is(err, runtime.ErrInvalidModule) || !strings.Contains(err.Error(), "does not export _start") {
		t.Fatalf("command without _start: %v", err)
	}
	reactor, err := eng.Compile(ctx, wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{{Sig: wasmtest.Sig{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Body: wasmtest.I32Const(0), Export: "run"}}}.Encode(),
		manifest(t, "name = \"r\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Run(ctx, runtime.RunOptions{}); !errors.Is(err, runtime.ErrNoEntrypoint) {
		t.Fatalf("Run on a reactor: %v", err)
	}
}

// TestCommandManifest: a command module run without a manifest is named
// after its file, and every file name gives a name a manifest may hold.
func TestCommandManifest(t *testing.T) {
	for file, want := range map[string]string{
		"dir/Hello World.wasm":            "hello-world",
		"_start.wasm":                     "m_start",
		".wasm":                           "m",
		"élan.wasm":                       "m-lan",
		strings.Repeat("a", 80) + ".wasm": strings.Repeat("a", 64),
	} {
		m := runtime.CommandManifest(file, nil, false)
		if m.Name != want || !m.Command || len(m.Capabilities) != 0 {
			t.Errorf("%q: %+v, want the command %q with no capabilities", file, m, want)
		}
		if _, err := runtime.ParseManifest([]byte("name = \""+m.Name+"\"\nversion = \"0.0.0\"\ncommand = true\n"), file); err != nil {
			t.Errorf("%q: its name %q is not one a manifest may hold: %v", file, m.Name, err)
		}
	}
	m := runtime.CommandManifest("m.wasm", []string{"tiny"}, true)
	if !slices.Equal(m.Capabilities, []string{"wasi:nn", "nn", runtime.CapWASIDirs}) || !slices.Equal(m.NN.Models, []string{"tiny"}) {
		t.Errorf("with a preloaded model and directories: %+v", m)
	}
}
