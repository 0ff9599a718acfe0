package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Dir is a host directory preopened for a command module, as wasmtime's
// and WasmEdge's `--dir HOST:GUEST`.
type Dir struct {
	Host     string // directory on the host
	Guest    string // where the guest sees it ("." or an absolute path)
	ReadOnly bool
}

// ParseDir parses HOST[:GUEST] (GUEST defaults to HOST), with an optional
// ":ro" suffix for a read-only mount.
func ParseDir(spec string) (Dir, error) {
	d := Dir{}
	if s, ok := strings.CutSuffix(spec, ":ro"); ok {
		spec, d.ReadOnly = s, true
	}
	host, guest, found := strings.Cut(spec, ":")
	if !found {
		guest = host
	}
	if host == "" || guest == "" {
		return Dir{}, fmt.Errorf("--dir %q: want HOST[:GUEST][:ro]", spec)
	}
	fi, err := os.Stat(host)
	if err != nil {
		return Dir{}, fmt.Errorf("--dir %q: %w", spec, err)
	}
	if !fi.IsDir() {
		return Dir{}, fmt.Errorf("--dir %q: %s is not a directory", spec, host)
	}
	d.Host, d.Guest = host, guest
	return d, nil
}

// RunOptions are the operator's settings for one run of a command module.
type RunOptions struct {
	// Args are the arguments after the program name (argv[1:]); argv[0] is
	// the module's name.
	Args []string
	// Dirs are preopened for the run; they need the "wasi:dirs"
	// capability.
	Dirs []Dir
	// Stdin is the guest's standard input (none when nil). Stdout and
	// Stderr receive its output; nil sends each line to the log under the
	// module's name, as for reactors.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Run runs a command module (manifest command = true) once: a fresh
// instance, its _start with opts' arguments and directories, under the
// module's limits (memory, tensor quota, and limits.call_timeout for the
// whole run) and one of its instance slots. It returns the guest's exit
// code: 0 when _start returns, the code it passed to proc_exit otherwise.
// A trap or the deadline is a *CallError, as for a call.
func (m *Module) Run(ctx context.Context, opts RunOptions) (exitCode uint32, err error) {
	const entry = "_start"
	if !m.man.Command {
		return 0, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrNoEntrypoint, Msg: "not a command module (manifest command = true); use Call"}
	}
	if len(opts.Dirs) > 0 && !m.granted(CapWASIDirs) {
		return 0, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrGuest, Msg: fmt.Sprintf("preopened directories need the %q capability in the manifest", CapWASIDirs)}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrClosed}
	}
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, &CallError{Module: m.man.Name, Entry: entry, Kind: ErrDeadline, Msg: "no instance slot became free: " + ctx.Err().Error()}
	}
	defer func() { <-m.slots }()
	m.stats.calls.Add(1)
	code, err := m.runCommand(ctx, opts)
	if err != nil {
		m.stats.failures.Add(1)
	}
	return code, err
}

func (m *Module) runCommand(ctx context.Context, opts RunOptions) (uint32, error) {
	const entry = "_start"
	host, err := m.newHost()
	if err != nil {
		return 0, err
	}
	defer host.Close()
	stderrLog := newLineLogger(host, slog.LevelWarn, "stderr")
	var stdout, stderr io.Writer = newLineLogger(host, slog.LevelInfo, "stdout"), stderrLog
	if opts.Stdout != nil {
		stdout = opts.Stdout
	}
	if opts.Stderr != nil {
		stderrLog.quiet = true // it only keeps the tail for a trap's message
		stderr = io.MultiWriter(opts.Stderr, stderrLog)
	}
	var fs wazero.FSConfig
	if len(opts.Dirs) > 0 {
		fs = wazero.NewFSConfig()
		for _, d := range opts.Dirs {
			guest := d.Guest
			if guest != "." && !path.IsAbs(guest) {
				guest = "/" + guest
			}
			if d.ReadOnly {
				fs = fs.WithReadOnlyDirMount(d.Host, guest)
			} else {
				fs = fs.WithDirMount(d.Host, guest)
			}
		}
	}
	gate := &callGate{}
	cfg := m.moduleConfig(gate, fs).
		WithArgs(append([]string{m.man.Name}, opts.Args...)...).
		WithStartFunctions(). // _start is called below, under the deadline
		WithStdout(stdout).
		WithStderr(stderr)
	if opts.Stdin != nil {
		cfg = cfg.WithStdin(opts.Stdin)
	}
	start := time.Now()
	deadline := start.Add(m.lim.timeout)
	cctx, cancel := context.WithDeadline(context.WithValue(host.Attach(ctx), gateKey{}, gate), deadline)
	defer cancel()
	cctx = experimental.WithMemoryAllocator(cctx, newMemoryAllocator(gate))
	gate.enter(cctx)
	defer gate.leave()
	mod, err := m.rt.InstantiateModule(cctx, m.compiled, cfg)
	if err != nil {
		return 0, fmt.Errorf("module %s: instantiate: %w: %s", m.man.Name, ErrTrap, describe(err))
	}
	defer mod.Close(context.Background())
	m.stats.instantiations.Add(1)
	host.Begin(nil, hostfuncs.CallInfo{Deadline: deadline})
	stop := context.AfterFunc(ctx, host.Expire)
	_, err = mod.ExportedFunction(entry).Call(cctx)
	stop()
	host.End()
	if err == nil {
		return 0, nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() != sys.ExitCodeDeadlineExceeded && exit.ExitCode() != sys.ExitCodeContextCanceled {
		return exit.ExitCode(), nil // proc_exit
	}
	return 0, m.callErr(ctx, entry, err, stderrLog.tail(), time.Since(start))
}

// IsCommand reports whether the module at path runs as a WASI command: its
// manifest (manifest, or the one FindManifest finds beside it) says
// command = true, or it has no manifest and exports _start and not
// _initialize.
func IsCommand(path, manifest string) (bool, error) {
	if manifest == "" {
		found, err := FindManifest(path)
		if err != nil {
			wasm, rerr := os.ReadFile(path)
			if rerr != nil {
				return false, rerr
			}
			return isWASICommand(wasm), nil
		}
		manifest = found
	}
	man, err := ReadManifest(manifest)
	if err != nil {
		return false, err
	}
	return man.Command, nil
}

// isWASICommand reports whether wasm exports _start and not _initialize.
func isWASICommand(wasm []byte) bool {
	eng, err := New(context.Background(), Config{NoDiskCache: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return false
	}
	defer eng.Close(context.Background())
	info, err := eng.Inspect(context.Background(), wasm)
	return err == nil && info.Command
}

// CommandManifest is the manifest of a command module at path run without
// one (as wasmtime and WasmEdge run any command): named after its file
// (lower case, every character a name may not hold a '-', at most 64,
// prefixed with "m" when it would not start with a letter or digit), the
// host's default limits, the capabilities wasi:nn and nn with models when
// any are preloaded, and wasi:dirs when directories are preopened.
func CommandManifest(path string, models []string, dirs bool) Manifest {
	name := strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, name)
	if name == "" || name[0] == '.' || name[0] == '_' || name[0] == '-' {
		name = "m" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	man := Manifest{Name: name, Version: "0.0.0", ABI: hostfuncs.ABIVersion, Command: true}
	if len(models) > 0 {
		man.Capabilities = append(man.Capabilities, hostfuncs.CapWASINN, hostfuncs.CapNN)
		man.NN.Models = append(man.NN.Models, models...)
	}
	if dirs {
		man.Capabilities = append(man.Capabilities, CapWASIDirs)
	}
	return man
}
