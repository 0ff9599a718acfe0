package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/config"
)

// Manifest describes a module: who it is, what it exports, what it needs. It
// is written in TOML beside the module (fennec.toml) and validated by
// ParseManifest. A zero limit means the engine's default.
type Manifest struct {
	Name        string `toml:"name"`
	Version     string `toml:"version"` // semantic version, e.g. "1.4.0"
	ABI         int    `toml:"abi"`     // host ABI major version; 0 means 1
	Description string `toml:"description"`
	// Entrypoints are exported functions (in_len i32) -> i32 that callers
	// may invoke; "health" is conventionally the health check.
	Entrypoints []string `toml:"entrypoints"`
	// Capabilities are the host-function groups and WASI rights the module
	// requests: "tensor", "privacy", ..., "wasi:env", "wasi:data".
	Capabilities []string `toml:"capabilities"`
	// Env is the environment the module sees; it needs "wasi:env".
	Env    map[string]string `toml:"env"`
	Limits Limits            `toml:"limits"`
	// Command marks a WASI command module (it exports _start, as
	// `clang --target=wasm32-wasi` and `GOOS=wasip1 go build` make by
	// default): it has no entrypoints, and Module.Run runs it once per
	// run with arguments and preopened directories, under the same limits
	// as a call.
	Command bool `toml:"command"`
	// NN says how the module uses models (capabilities "wasi:nn", "nn").
	NN NNManifest `toml:"nn"`
	// Input is what the entrypoints take: InputCBOR ("cbor", the default:
	// a CBOR item, which `fennec run` makes from CSV, JSON or CBOR files)
	// or InputBytes ("bytes": the caller's bytes as they are, a WAV file or
	// an image, which `fennec run --input FILE` passes unconverted).
	Input string `toml:"input"`
}

// Input kinds of a manifest (Manifest.Input).
const (
	InputCBOR  = "cbor"
	InputBytes = "bytes"
)

// NNManifest is the [nn] table of a manifest.
type NNManifest struct {
	// ABI is the wasi-nn enum set the module was built against:
	// "wasmtime" (default: the wasi-nn Rust crate, wasmtime's witx) or
	// "wasmedge" (WasmEdge's plugin and wasmedge-wasi-nn crate).
	ABI string `toml:"abi"`
	// Models are the operator's models (by name) the module may load.
	Models []string `toml:"models"`
	// SHA256 pins granted models by digest (`[nn.sha256]` NAME = "hex"):
	// the host refuses to load a pinned model whose file's bytes hash to
	// anything else. `fennec module pack --model` writes these pins.
	SHA256 map[string]string `toml:"sha256"`
}

// Limits are a module's resource limits. The engine caps each at its own
// maximum (Config.Limits).
type Limits struct {
	MemoryPages   uint32   `toml:"memory_pages"`   // 64 KiB pages of linear memory
	CallTimeout   Duration `toml:"call_timeout"`   // per-call deadline
	TensorBytes   int64    `toml:"tensor_bytes"`   // live tensor bytes per instance
	TensorHandles int      `toml:"tensor_handles"` // live tensor handles per instance
	Instances     int      `toml:"instances"`      // most instances alive at once (pool size)
	// Preemption is how a runaway call is stopped: "strict" (default)
	// compiles the module with wazero's termination checks, which stop any
	// loop at its deadline; "host-calls" compiles without them, so guest
	// loops run at full speed and the deadline is enforced at the module's
	// host calls only. "host-calls" must be allowed by the operator
	// (Config.AllowHostCallPreemption) and suits trusted compute modules.
	Preemption string `toml:"preemption"`
}

// Preemption modes.
const (
	PreemptStrict    = "strict"
	PreemptHostCalls = "host-calls"
)

// WASI capabilities beyond the host-function groups.
const (
	CapWASIEnv  = "wasi:env"  // the manifest's [env] table is visible
	CapWASIData = "wasi:data" // the operator's data directory, read-only at /data
	// CapWASIDirs lets a command module see the directories the operator
	// preopens for a run (RunOptions.Dirs, `fennec run --dir`).
	CapWASIDirs = "wasi:dirs"
)

// Duration is a time.Duration written as a string ("2s", "150ms") in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"2s\" or \"500ms\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ManifestError is a manifest problem at a source position.
type ManifestError struct {
	Source string // file name, or what the manifest came from
	Line   int    // 1-based; 0 when unknown
	Field  string // dotted field name, e.g. "limits.memory_pages"
	Msg    string
}

func (e *ManifestError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrManifest is matched by every *ManifestError with errors.Is.
var ErrManifest = errors.New("invalid manifest")

func (e *ManifestError) Is(target error) bool { return target == ErrManifest }

// ReadManifest reads and validates a manifest file.
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	return ParseManifest(b, path)
}

var (
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	identRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// modelNameRE is hostfuncs' rule for model names (--nn-preload NAME).
	modelNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidModuleName reports whether name is a valid module name: 1-64
// characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit.
// Everything that names a module (manifests, device configurations) checks
// it here.
func ValidModuleName(name string) bool { return nameRE.MatchString(name) }

// ValidExportName reports whether name is a valid entrypoint (export) name:
// 1-64 characters of A-Z, a-z, 0-9 and '_', not starting with a digit.
func ValidExportName(name string) bool { return identRE.MatchString(name) }

// KnownCapabilities lists every capability a manifest may request.
func KnownCapabilities(extra ...hostfuncs.Group) []string {
	caps := []string{CapWASIEnv, CapWASIData, CapWASIDirs}
	for _, g := range append(hostfuncs.Builtin(), extra...) {
		if g.Capability != "" && !slices.Contains(caps, g.Capability) {
			caps = append(caps, g.Capability)
		}
	}
	slices.Sort(caps)
	return caps
}

// ParseManifest decodes and validates a TOML manifest. source names it in
// errors (a file path, usually). Errors are *ManifestError values naming the
// line and field.
func ParseManifest(data []byte, source string) (Manifest, error) {
	var m Manifest
	md, err := decodeTOML(data, source, &m)
	if err != nil {
		return Manifest{}, err
	}
	src := string(data)
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		if !(len(k) == 2 && k[0] == "env") {
			return Manifest{}, &ManifestError{Source: source, Line: lineOf(src, k), Field: k.String(), Msg: "unknown field"}
		}
	}
	bad := func(field, format string, args ...any) error {
		return &ManifestError{Source: source, Line: lineOf(src, strings.Split(field, ".")), Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case m.Name == "":
		return Manifest{}, bad("name", "is required")
	case !nameRE.MatchString(m.Name):
		return Manifest{}, bad("name", "%q must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", m.Name)
	case m.Version == "":
		return Manifest{}, bad("version", "is required (a semantic version such as \"1.0.0\")")
	case !semverRE.MatchString(m.Version):
		return Manifest{}, bad("version", "%q is not a semantic version (MAJOR.MINOR.PATCH)", m.Version)
	case m.ABI != 0 && m.ABI != hostfuncs.ABIVersion:
		return Manifest{}, bad("abi", "ABI version %d is not supported by this host (it implements %d)", m.ABI, hostfuncs.ABIVersion)
	case len(m.Entrypoints) == 0 && !m.Command:
		return Manifest{}, bad("entrypoints", "at least one entrypoint is required (or command = true for a WASI command module)")
	case len(m.Entrypoints) > 0 && m.Command:
		return Manifest{}, bad("entrypoints", "a command module (command = true) runs _start and has no entrypoints")
	}
	for i, e := range m.Entrypoints {
		if !identRE.MatchString(e) {
			return Manifest{}, bad("entrypoints", "entry %d, %q, is not a valid export name", i, e)
		}
		if slices.Index(m.Entrypoints, e) != i {
			return Manifest{}, bad("entrypoints", "%q is listed twice", e)
		}
		if strings.HasPrefix(e, "_") {
			return Manifest{}, bad("entrypoints", "%q: names starting with '_' are reserved for the toolchain", e)
		}
	}
	known := KnownCapabilities()
	for _, c := range m.Capabilities {
		if !slices.Contains(known, c) && !isExtensionCap(c) {
			return Manifest{}, bad("capabilities", "unknown capability %q (known: %s)", c, strings.Join(known, ", "))
		}
	}
	if len(m.Env) > 0 && !slices.Contains(m.Capabilities, CapWASIEnv) {
		return Manifest{}, bad("env", "setting an environment needs the %q capability", CapWASIEnv)
	}
	switch m.NN.ABI {
	case "", hostfuncs.NNABIWasmtime, hostfuncs.NNABIWasmEdge:
	default:
		return Manifest{}, bad("nn.abi", "%q is not %q or %q", m.NN.ABI, hostfuncs.NNABIWasmtime, hostfuncs.NNABIWasmEdge)
	}
	for i, name := range m.NN.Models {
		if !modelNameRE.MatchString(name) {
			return Manifest{}, bad("nn.models", "entry %d, %q, is not a model name (1-64 characters of a-z, A-Z, 0-9, '.', '_', '-')", i, name)
		}
	}
	pins := make([]string, 0, len(m.NN.SHA256))
	for name := range m.NN.SHA256 {
		pins = append(pins, name)
	}
	slices.Sort(pins)
	for _, name := range pins {
		field := "nn.sha256." + name
		if !slices.Contains(m.NN.Models, name) {
			return Manifest{}, bad(field, "pins model %q, which [nn] models does not grant (granted: %q)", name, m.NN.Models)
		}
		h := strings.ToLower(m.NN.SHA256[name])
		if !sha256HexRE.MatchString(h) {
			return Manifest{}, bad(field, "%q is not a SHA-256 digest (64 hex digits)", m.NN.SHA256[name])
		}
		m.NN.SHA256[name] = h
	}
	if (m.NN.ABI != "" || len(m.NN.Models) > 0) && !slices.Contains(m.Capabilities, hostfuncs.CapWASINN) && !slices.Contains(m.Capabilities, hostfuncs.CapNN) {
		return Manifest{}, bad("nn", "the [nn] table needs the %q or %q capability", hostfuncs.CapWASINN, hostfuncs.CapNN)
	}
	switch m.Input {
	case "", InputCBOR, InputBytes:
	default:
		return Manifest{}, bad("input", "%q is not %q or %q", m.Input, InputCBOR, InputBytes)
	}
	if m.Input == InputBytes && m.Command {
		return Manifest{}, bad("input", "a command module (command = true) reads its standard input, not an entrypoint input")
	}
	l := m.Limits
	switch {
	case l.MemoryPages > 65536:
		return Manifest{}, bad("limits.memory_pages", "%d exceeds 65536 pages (4 GiB)", l.MemoryPages)
	case l.CallTimeout.Duration < 0:
		return Manifest{}, bad("limits.call_timeout", "must not be negative")
	case l.TensorBytes < 0:
		return Manifest{}, bad("limits.tensor_bytes", "must not be negative")
	case l.TensorHandles < 0 || l.TensorHandles > 65535:
		return Manifest{}, bad("limits.tensor_handles", "%d is outside 0..65535", l.TensorHandles)
	case l.Instances < 0:
		return Manifest{}, bad("limits.instances", "must not be negative")
	case l.Preemption != "" && l.Preemption != PreemptStrict && l.Preemption != PreemptHostCalls:
		return Manifest{}, bad("limits.preemption", "%q is not %q or %q", l.Preemption, PreemptStrict, PreemptHostCalls)
	}
	if m.ABI == 0 {
		m.ABI = hostfuncs.ABIVersion
	}
	return m, nil
}

// decodeTOML decodes data into v, turning TOML errors into a
// *ManifestError at the line and key they name (config.DecodeTOML).
func decodeTOML(data []byte, source string, v any) (toml.MetaData, error) {
	md, err := config.DecodeTOML(data, source, v)
	var fe *config.FileError
	if errors.As(err, &fe) {
		return md, &ManifestError{Source: fe.Source, Line: fe.Line, Field: fe.Field, Msg: fe.Msg}
	}
	return md, err
}

// extensionCaps are capabilities of groups registered by packages above
// hostfuncs (wired by cmd); manifests may name them even when the engine
// that parses the manifest has not registered them yet.
var extensionCaps = []string{"privacy", "federation"}

func isExtensionCap(c string) bool { return slices.Contains(extensionCaps, c) }

// lineOf finds the 1-based line where the dotted key is set in src, or 0.
func lineOf(src string, key []string) int {
	if len(key) == 0 {
		return 0
	}
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			cur = strings.Trim(line, "[] ")
			if i := strings.IndexByte(cur, '#'); i >= 0 {
				cur = strings.TrimSpace(cur[:i])
			}
			if cur == strings.Join(key, ".") {
				return n
			}
			continue
		}
		k, _, found := strings.Cut(line, "=")
		if !found {
			continue
		}
		k = strings.TrimSpace(k)
		if uq, err := strconv.Unquote(k); err == nil {
			k = uq
		}
		if cur == table && k == last {
			return n
		}
		if cur == "" && k == strings.Join(key, ".") {
			return n
		}
	}
	return 0
}
