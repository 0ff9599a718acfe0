package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/records"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/fennec-edge/fennec/privacy/budget"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/spf13/cobra"
)

func init() { register(newRunCmd) }

// engineFlags are the runtime settings shared by commands that run modules.
type engineFlags struct {
	nnPreload []string // --nn-preload NAME:onnx:cpu:PATH (fennec run)
	ledger    string
	cacheDir  string
	noCache   bool
	dataDir   string
	logLevel  string
	logFormat string
}

func (f *engineFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.cacheDir, "cache-dir", "", "compilation cache directory (default: the user cache dir)")
	c.Flags().BoolVar(&f.noCache, "no-cache", false, "do not keep compiled modules on disk")
	c.Flags().StringVar(&f.dataDir, "data-dir", "", "directory mounted read-only at /data for modules granted wasi:data")
	c.Flags().StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	c.Flags().StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	c.Flags().StringVar(&f.ledger, "privacy-ledger", "", "privacy budget ledger file (see fennec privacy budget); DP releases of modules are charged to it")
}

func (f *engineFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, &exitError{exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &exitError{exitUsage, fmt.Errorf("--log-format %q: want text or json", f.logFormat)}
}

// hostConfig is the --host-config file (a flag of the root command): the
// operator's ceilings and defaults for what manifests ask (runtime.ReadHostConfig).
var hostConfig string

// newEngine returns an engine with cfg on the tensor backend this binary
// selects (CUDA when built with it and a device is present, else the CPU),
// logging the choice, and with the limits of --host-config.
func newEngine(ctx context.Context, log *slog.Logger, cfg runtime.Config) (*runtime.Engine, error) {
	if hostConfig != "" {
		lim, err := runtime.ReadHostConfig(hostConfig)
		if err != nil {
			return nil, &exitError{exitBadInput, fmt.Errorf("--host-config: %w", err)}
		}
		cfg.Limits = lim
	}
	backend, reason := selectBackend(log)
	log.Debug("tensor backend", "backend", backend.Name(), "reason", reason)
	cfg.Backend = backend
	return runtime.New(ctx, cfg)
}

// engine returns an engine and a function that releases what it opened.
func (f *engineFlags) engine(ctx context.Context, log *slog.Logger) (*runtime.Engine, func(), error) {
	var (
		services *hostfuncs.Services
		closeFn  = func() {}
	)
	if f.ledger != "" {
		l, err := budget.Open(f.ledger)
		if err != nil {
			return nil, nil, &exitError{exitBadInput, err}
		}
		services = &hostfuncs.Services{Privacy: &hostfuncs.PrivacyServices{Ledger: l}}
		closeFn = func() { l.Close() }
	}
	if len(f.nnPreload) > 0 {
		backend, _ := selectBackend(log)
		set := hostfuncs.NewModelSet(backend, onnx.Options{})
		for _, spec := range f.nnPreload {
			p, err := hostfuncs.ParsePreload(spec)
			if err == nil {
				err = set.Add(p)
			}
			if err != nil {
				set.Close()
				closeFn()
				return nil, nil, &exitError{exitBadInput, err}
			}
		}
		if services == nil {
			services = &hostfuncs.Services{}
		}
		services.NN = &hostfuncs.NNServices{Models: set}
		prev := closeFn
		closeFn = func() { set.Close(); prev() }
	}
	eng, err := newEngine(ctx, log, runtime.Config{
		CacheDir:    f.cacheDir,
		NoDiskCache: f.noCache,
		DataDir:     f.dataDir,
		Logger:      log,
		Services:    services,
	})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return eng, func() { eng.Close(context.Background()); closeFn() }, nil
}

func newRunCmd() *cobra.Command {
	var (
		ef       engineFlags
		manifest string
		input    string
		format   string
		entry    string
		output   string
		dataset  string
		maxJSON  int64
		dirs     []string
	)
	c := &cobra.Command{
		Use:   "run MODULE.wasm --input FILE|- | run COMMAND.wasm [--dir HOST:GUEST] [--nn-preload NAME:onnx:cpu:PATH] [-- ARGS]",
		Short: "Run records through a module's entrypoint and print its result, or run a WASI command module",
		Long: `Run loads MODULE.wasm with its manifest (--manifest, or NAME.toml / fennec.toml
beside it), reads the input (CSV with a header line, CBOR, or JSON; '-' is standard
input), calls the entrypoint once and prints the output as JSON (or raw CBOR).
A module whose manifest says input = "bytes" (a WAV file, an image) gets the
file's bytes as they are, whatever its extension.

CSV rows become {"records": [{column: value}, ...]}: numbers as floats, empty cells
left out. JSON is rendered for outputs of at most --max-json bytes (1 MiB); a
larger output is an error that names the limit, and --output cbor writes it.

A WASI command module (it exports _start; its manifest says command = true) runs
once as wasmedge or wasmtime would run it: arguments after --, directories
preopened with --dir HOST:GUEST, models named with --nn-preload (WasmEdge's
NAME:ENCODING:TARGET:PATH) for wasi-nn's load_by_name, its standard streams
connected to fennec's; fennec exits with the guest's exit code. Without a
manifest beside it, a command module gets a default one: its file name, the
host's default limits, "wasi:nn" and "nn" with every preloaded model when
--nn-preload is given, "wasi:dirs" when --dir is.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if dash := c.ArgsLenAtDash(); dash > 1 || (dash < 0 && len(args) > 1) {
				return &exitError{exitUsage, errors.New("arguments for a command module go after --")}
			}
			kind, err := moduleKind(args[0], manifest)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			if kind.command {
				return runCommand(c, &ef, args[0], manifest, dirs, args[1:])
			}
			if len(args) > 1 {
				return &exitError{exitUsage, errors.New("arguments after -- are for command modules; this module is a reactor")}
			}
			if input == "" {
				return &exitError{exitUsage, errors.New("--input FILE is required ('-' reads standard input)")}
			}
			switch format {
			case "", "csv", "cbor", "json":
			default:
				return &exitError{exitUsage, fmt.Errorf("--format %q: want csv, cbor or json", format)}
			}
			log, err := ef.logger(c.ErrOrStderr())
			if err != nil {
				return err
			}
			var in []byte
			if kind.input == runtime.InputBytes {
				in, err = readRawInput(c.InOrStdin(), input, format)
			} else {
				in, err = readInput(c.InOrStdin(), input, format)
			}
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt)
			defer stop()
			eng, release, err := ef.engine(ctx, log)
			if err != nil {
				return err
			}
			defer release()
			mod, err := eng.LoadFile(ctx, args[0], manifest)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			if entry == "" {
				entry = mod.Manifest().Entrypoints[0]
			}
			out, err := mod.CallWith(ctx, entry, in, runtime.CallOptions{Dataset: dataset})
			if err != nil {
				return &exitError{exitFailure, err}
			}
			return writeOutput(c.OutOrStdout(), mod.Name(), out, output, maxJSON)
		},
	}
	ef.add(c)
	c.Flags().StringVar(&manifest, "manifest", "", "manifest file (default: NAME.toml or fennec.toml beside the module)")
	c.Flags().StringVarP(&input, "input", "i", "", "input file: .csv, .cbor or .json, or any file for a module whose manifest says input = \"bytes\"; '-' for standard input")
	c.Flags().StringVar(&format, "format", "", "input format: csv, cbor or json (default: from the file extension; CBOR for stdin)")
	c.Flags().StringVarP(&entry, "entry", "e", "", "entrypoint to call (default: the manifest's first)")
	c.Flags().StringVarP(&output, "output", "o", "json", "output format: json or cbor")
	c.Flags().StringVar(&dataset, "dataset", "", "dataset name whose privacy budget this call's releases are charged to")
	c.Flags().Int64Var(&maxJSON, "max-json", defaultMaxJSON, "largest module output (bytes of CBOR) that --output json renders; larger outputs need --output cbor")
	c.Flags().StringArrayVar(&dirs, "dir", nil, "command modules: preopen a host directory, HOST[:GUEST][:ro] (repeatable; needs wasi:dirs)")
	c.Flags().StringArrayVar(&ef.nnPreload, "nn-preload", nil, "a model guests load by name, NAME:onnx:cpu:PATH (WasmEdge's convention; repeatable)")
	return c
}

// runKind is how `fennec run` treats a module: as a WASI command, or as a
// reactor whose entrypoints take CBOR or raw bytes (Manifest.Input).
type runKind struct {
	command bool
	input   string
}

// moduleKind reads the kind of the module at path (runtime.IsCommand) and,
// for a reactor, its input kind from its manifest.
func moduleKind(path, manifest string) (runKind, error) {
	isCmd, err := runtime.IsCommand(path, manifest)
	if err != nil || isCmd {
		return runKind{command: isCmd}, err
	}
	if manifest == "" {
		found, err := runtime.FindManifest(path)
		if err != nil {
			return runKind{}, nil // no manifest: a reactor taking CBOR
		}
		manifest = found
	}
	man, err := runtime.ReadManifest(manifest)
	if err != nil {
		return runKind{}, err
	}
	return runKind{input: man.Input}, nil
}

// runCommand runs a WASI command module once and exits with its code.
func runCommand(c *cobra.Command, ef *engineFlags, path, manifest string, dirSpecs, args []string) error {
	log, err := ef.logger(c.ErrOrStderr())
	if err != nil {
		return err
	}
	var dirs []runtime.Dir
	for _, s := range dirSpecs {
		d, err := runtime.ParseDir(s)
		if err != nil {
			return &exitError{exitUsage, err}
		}
		dirs = append(dirs, d)
	}
	ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt)
	defer stop()
	eng, release, err := ef.engine(ctx, log)
	if err != nil {
		return err
	}
	defer release()
	wasm, err := os.ReadFile(path)
	if err != nil {
		return &exitError{exitBadInput, err}
	}
	var man runtime.Manifest
	if manifest == "" {
		manifest, _ = runtime.FindManifest(path)
	}
	if manifest != "" {
		if man, err = runtime.ReadManifest(manifest); err != nil {
			return &exitError{exitBadInput, err}
		}
	} else {
		var models []string
		for _, p := range ef.nnPreload {
			if pl, err := hostfuncs.ParsePreload(p); err == nil {
				models = append(models, pl.Name)
			}
		}
		man = runtime.CommandManifest(path, models, len(dirs) > 0)
	}
	mod, err := eng.Compile(ctx, wasm, man)
	if err != nil {
		return &exitError{exitBadInput, fmt.Errorf("%s: %w", path, err)}
	}
	code, err := mod.Run(ctx, runtime.RunOptions{Args: args, Dirs: dirs, Stdin: c.InOrStdin(), Stdout: c.OutOrStdout(), Stderr: c.ErrOrStderr()})
	if err != nil {
		return &exitError{exitFailure, err}
	}
	if code != 0 {
		return &exitError{int(min(code, 125)), fmt.Errorf("module %s exited with code %d", mod.Name(), code)}
	}
	return nil
}

// defaultMaxJSON is the largest output `fennec run` renders as JSON. A CBOR
// item of one byte (a small integer) becomes a decoded value of about 40
// bytes and up to 7 bytes of indented JSON, so rendering is bounded by about
// 40 and 7 times this; --output cbor writes any output as it came.
const defaultMaxJSON = 1 << 20

// writeOutput writes a module's output as raw CBOR or as indented JSON. The
// JSON is rendered only for outputs of at most maxJSON bytes, so that a
// module cannot make the command use more than about 50 times maxJSON.
func writeOutput(w io.Writer, module string, out []byte, format string, maxJSON int64) error {
	switch format {
	case "cbor":
		_, err := w.Write(out)
		return err
	case "json":
		if maxJSON < 0 {
			return &exitError{exitUsage, fmt.Errorf("--max-json %d: must not be negative", maxJSON)}
		}
		if int64(len(out)) > maxJSON {
			return &exitError{exitFailure, fmt.Errorf("module %s: output of %d bytes is larger than the %d bytes --output json renders (--max-json); use --output cbor", module, len(out), maxJSON)}
		}
		bw := bufio.NewWriter(w)
		if err := records.WriteJSON(bw, out); err != nil {
			if errors.Is(err, records.ErrRender) {
				return &exitError{exitFailure, fmt.Errorf("module %s: %w", module, err)}
			}
			return err
		}
		return bw.Flush()
	}
	return &exitError{exitUsage, fmt.Errorf("--output %q: want json or cbor", format)}
}

// maxInput is the largest input `fennec run` reads (1 GiB); a larger one is
// an error, never cut short (a CSV cut at a line end would parse).
var maxInput int64 = 1 << 30

// readRawInput reads the input of a module whose manifest says
// input = "bytes": the file as it is, whatever its extension.
func readRawInput(stdin io.Reader, path, format string) ([]byte, error) {
	if format != "" && format != runtime.InputBytes {
		return nil, fmt.Errorf("--format %q: this module takes raw bytes (its manifest says input = %q); leave --format out", format, runtime.InputBytes)
	}
	name, r := path, stdin
	if path == "-" {
		name = "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > maxInput {
		return nil, fmt.Errorf("%s: larger than the %d bytes fennec run reads", name, maxInput)
	}
	return b, nil
}

// readInput reads and converts the input file to CBOR.
func readInput(stdin io.Reader, path, format string) ([]byte, error) {
	name := path
	var r io.Reader
	if path == "-" {
		name, r = "<stdin>", stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".json":
			format = "json"
		default:
			format = "cbor"
		}
	}
	r = &boundedReader{r: r, left: maxInput, name: name}
	switch format {
	case "csv":
		b, _, err := records.FromCSV(r, name)
		return b, err
	case "json", "cbor":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if format == "json" {
			return records.FromJSON(b, name)
		}
		return b, records.CheckCBOR(b, name)
	}
	return nil, fmt.Errorf("--format %q: want csv, cbor or json", format)
}

// boundedReader reads at most left bytes of r and fails, naming the input
// and the limit, when r has more.
type boundedReader struct {
	r    io.Reader
	left int64
	name string
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a longer input from one of exactly the limit.
		var one [1]byte
		if n, _ := io.ReadFull(b.r, one[:]); n > 0 {
			return 0, fmt.Errorf("%s: larger than the %d bytes fennec run reads", b.name, maxInput)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
