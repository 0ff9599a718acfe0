package serve

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/internal/tlsfiles"
	"github.com/fennec-edge/fennec/runtime"
)

// Binding sources.
const (
	SourceHTTP = "http" // POST /v1/modules/{module}/{entry}
	SourceNATS = "nats" // a NATS subject: request-reply, or subscribe and publish
	SourceMQTT = "mqtt" // an MQTT 3.1.1 topic filter on nats-server's MQTT listener
)

// Payload formats of NATS and MQTT messages (HTTP uses Content-Type).
const (
	FormatCBOR = "cbor"
	FormatJSON = "json"
)

// Defaults of a DeviceConfig's zero fields.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	// DefaultModuleIdleTimeout is how long a [[module]]'s warm instances
	// wait for a call before they are closed (ModuleConfig.IdleTimeout).
	DefaultModuleIdleTimeout = 30 * time.Second
	DefaultConcurrency       = 1
	DefaultQueue             = 8
	DefaultQueueTimeout      = time.Second
	// DefaultStandingQueue is how long a binding's queue may stay non-empty
	// before it counts as standing (BindingConfig.StandingQueue).
	DefaultStandingQueue = 100 * time.Millisecond
	// MaxQueue bounds a binding's queue: a queue is for smoothing bursts,
	// not for holding a backlog.
	MaxQueue       = 4096
	MaxConcurrency = 256
)

// DeviceConfig is a device's serving configuration, written in TOML
// (ParseDeviceConfig). The zero value serves nothing and takes defaults.
type DeviceConfig struct {
	// Device names the device in publish subjects ({device}); default the
	// host name.
	Device string     `toml:"device"`
	HTTP   HTTPConfig `toml:"http"`
	NATS   NATSConfig `toml:"nats"`
	MQTT   MQTTConfig `toml:"mqtt"`
	// TLS encrypts the HTTP, NATS and MQTT listeners.
	TLS TLSConfig `toml:"tls"`
	// Modules are plain wasm files to load (fennec run style); bindings may
	// also name a module the device's deployer runs.
	Modules  []ModuleConfig  `toml:"module"`
	Bindings []BindingConfig `toml:"binding"`

	source string
}

// HTTPConfig is the HTTP listener (bindings, /metrics, /healthz, /readyz).
type HTTPConfig struct {
	// Listen is host:port; "" serves no HTTP (an agent's --http may set it).
	Listen            string           `toml:"listen"`
	MaxBodyBytes      int64            `toml:"max_body_bytes"`
	ReadHeaderTimeout runtime.Duration `toml:"read_header_timeout"`
	ReadTimeout       runtime.Duration `toml:"read_timeout"`
	WriteTimeout      runtime.Duration `toml:"write_timeout"`
	IdleTimeout       runtime.Duration `toml:"idle_timeout"`
}

// NATSConfig is the device's own nats-server, which nats and mqtt
// bindings subscribe on (StartLocalNATS).
type NATSConfig struct {
	// Listen is host:port for local NATS clients; "" (the default) accepts
	// in-process connections only.
	Listen string `toml:"listen"`
	// Dir holds the server's JetStream store (MQTT needs it); default a
	// "nats" directory beside the device configuration file.
	Dir string `toml:"dir"`
}

// MQTTConfig is the MQTT 3.1.1 listener of the device's own nats-server.
type MQTTConfig struct {
	// Listen is host:port for MQTT clients; "" starts no MQTT listener.
	Listen string `toml:"listen"`
	// DurableMessages keeps nats-server's MQTT message stream (QoS 1
	// messages held for MQTT subscribers' persistent sessions) on file, so
	// they survive an agent restart, at the cost of a disk sync before each
	// QoS 1 PUBACK. The default (false) keeps it in memory (MemoryMQTTMessages).
	DurableMessages bool `toml:"durable_messages"`
}

// TLSConfig is the [tls] table: one certificate for the device's HTTP
// listener, its nats-server's client listener and its MQTT listener. The
// files are PEM, relative paths from the configuration file's directory,
// read again at the next handshake after they change (a renewed
// certificate needs no restart). The zero value is plaintext, which a
// listener on an address other than loopback refuses unless
// AllowPlaintext: readings and scores are patient data.
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// ClientCA requires every client (sensor, caller, MQTT client) to
	// present a certificate signed by it: mutual TLS.
	ClientCA string `toml:"client_ca"`
	// AllowPlaintext lets a listener reachable from the network run
	// without TLS.
	AllowPlaintext bool `toml:"allow_plaintext"`
}

// Enabled reports whether the listeners use TLS.
func (t TLSConfig) Enabled() bool { return t.Cert != "" }

// ModuleConfig is a module loaded from a wasm file and its manifest.
type ModuleConfig struct {
	Name     string `toml:"name"`
	Wasm     string `toml:"wasm"`
	Manifest string `toml:"manifest"` // default: beside the wasm file
	// IdleTimeout: after this long without a call, the module's warm
	// instances are closed (their linear memory and instance state given
	// back) and the next call starts one again, a few milliseconds for a Go
	// guest. Zero means DefaultModuleIdleTimeout; KeepWarm keeps them.
	IdleTimeout runtime.Duration `toml:"idle_timeout"`
	KeepWarm    bool             `toml:"keep_warm"`
}

// BindingConfig binds a module's entrypoint to a source.
type BindingConfig struct {
	Name   string `toml:"name"`
	Module string `toml:"module"`
	Entry  string `toml:"entry"`
	Source string `toml:"source"` // http, nats or mqtt
	// Subject (nats) or Topic (mqtt) to subscribe to; wildcards allowed
	// (NATS * and >, MQTT + and #).
	Subject string `toml:"subject"`
	Topic   string `toml:"topic"`
	// QueueGroup shares a subject's messages among the instances in the
	// group (nats and mqtt).
	QueueGroup string `toml:"queue_group"`
	// Publish is the subject results go to, a template: {device} is the
	// device's name, {1}, {2}, ... the tokens of the subject a message
	// came on. A message with a reply subject is also answered.
	Publish string `toml:"publish"`
	// Format of NATS and MQTT payloads: cbor (default) or json.
	Format string `toml:"format"`
	// Concurrency calls run at once (default 1); Queue more may wait
	// (default 8) for at most QueueTimeout (default 1s). Beyond, requests
	// are shed.
	Concurrency  int              `toml:"concurrency"`
	Queue        int              `toml:"queue"`
	QueueTimeout runtime.Duration `toml:"queue_timeout"`
	// StandingQueue: once the queue has not been empty for this long
	// (http default 100ms), the binding is overloaded rather than bursting,
	// and only Concurrency requests may wait (one call's time each); the
	// others are shed at once (reason "overload") until the queue empties.
	// The full Queue absorbs bursts; it does not hold a standing backlog
	// that every accepted call would wait behind. nats and mqtt bindings
	// have no default (zero: no bound), since a shed message without a
	// reply subject is a lost reading. While the queue stands (on nats and
	// mqtt with zero, once it has not emptied for 100ms) each call yields
	// the core once before it starts, so that requests waiting unread
	// are read and shed rather than left behind the calls.
	StandingQueue runtime.Duration `toml:"standing_queue"`
	// Then are further calls, in order, each fed the previous call's
	// output: a pipeline such as vitals-preprocess then risk-infer. The
	// result is the last call's output. Concurrency and Queue bound the
	// whole pipeline.
	Then []StepConfig `toml:"then"`
	// Carry names a field of the module's output that the next message on
	// the same subject gets back in its input (nats and mqtt bindings),
	// such as vitals-preprocess's "state": each bed's readings are then
	// normalised against that bed's history rather than alone. State is
	// kept for at most MaxCarryKeys subjects, MaxCarryBytes each, in memory
	// (a restart starts afresh). With Concurrency above 1, two messages of
	// one subject may run at once and the later to finish wins.
	Carry string `toml:"carry"`

	subject string // the NATS subject subscribed to (an MQTT topic mapped)
}

// StepConfig is a further call of a binding's pipeline. Its input is the
// previous call's output, which must be a map, with the fields of Inject
// set: key = file, the file's content as the field's value (CBOR, or JSON
// for a .json file), such as the model that risk-infer takes in "model".
// A file is read at start and again when it changes (checked at most once
// a second), so a device that writes a new model atomically serves it on
// its next request; a file that becomes unreadable or invalid keeps its
// last good value, with a warning.
type StepConfig struct {
	Module string            `toml:"module"`
	Entry  string            `toml:"entry"`
	Inject map[string]string `toml:"inject"`
}

// Pipeline bounds.
const (
	MaxSteps       = 8
	MaxInjectBytes = 64 << 20
)

// Modules are the modules the binding calls, in order (Module, then
// those of Then).
func (b *BindingConfig) Modules() []string {
	names := []string{b.Module}
	for _, st := range b.Then {
		names = append(names, st.Module)
	}
	return names
}

// NATSSubject is the subject a nats or mqtt binding subscribes to (for
// mqtt, its topic filter as nats-server maps it); "" for http.
func (b *BindingConfig) NATSSubject() string { return b.subject }

var (
	bindingRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tmplRE    = regexp.MustCompile(`\{([^}]*)\}`)
)

// ReadDeviceConfig reads and validates a device configuration file.
func ReadDeviceConfig(path string) (*DeviceConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s: larger than 1 MiB", path)
	}
	return ParseDeviceConfig(data, path)
}

// ParseDeviceConfig decodes and validates a device configuration; source
// names it in errors, which are *config.FileError values naming the line
// and field. Zero fields take their defaults.
func ParseDeviceConfig(data []byte, source string) (*DeviceConfig, error) {
	var c DeviceConfig
	md, err := config.DecodeTOML(data, source, &c)
	if err != nil {
		return nil, err
	}
	c.source = source
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0]
		table := ""
		if len(k) > 1 {
			table = strings.Join(k[:len(k)-1], ".")
		}
		return nil, fileErr(data, source, table, -1, k[len(k)-1], k.String(), "unknown field")
	}
	if err := c.validate(data); err != nil {
		return nil, err
	}
	return &c, nil
}

func fileErr(src []byte, source, table string, idx int, key, field, format string, args ...any) error {
	return &config.FileError{Source: source, Line: locate(src, table, idx, key), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validate checks c and fills in defaults. src (may be nil) locates errors.
func (c *DeviceConfig) validate(src []byte) error {
	source := c.source
	if source == "" {
		source = "device config"
	}
	bad := func(table string, idx int, key, format string, args ...any) error {
		field := key
		if table != "" {
			field = table + "." + key
			if idx >= 0 {
				field = fmt.Sprintf("%s[%d].%s", table, idx, key)
			}
		}
		return fileErr(src, source, table, idx, key, field, format, args...)
	}
	if c.Device == "" {
		h, _ := os.Hostname()
		c.Device = sanitizeToken(h)
		if c.Device == "" {
			c.Device = "device"
		}
	} else if !bindingRE.MatchString(c.Device) {
		return bad("", -1, "device", "%q must be 1-64 characters of A-Z a-z 0-9 . _ - (it becomes a subject token)", c.Device)
	}
	h := &c.HTTP
	if h.Listen != "" {
		if _, _, err := net.SplitHostPort(h.Listen); err != nil {
			return bad("http", -1, "listen", "%q is not host:port", h.Listen)
		}
	}
	if err := config.Default("max_body_bytes", &h.MaxBodyBytes, DefaultMaxBodyBytes); err != nil {
		return bad("http", -1, "max_body_bytes", "must not be negative")
	}
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"read_header_timeout", &h.ReadHeaderTimeout.Duration, DefaultReadHeaderTimeout},
		{"read_timeout", &h.ReadTimeout.Duration, DefaultReadTimeout},
		{"write_timeout", &h.WriteTimeout.Duration, DefaultWriteTimeout},
		{"idle_timeout", &h.IdleTimeout.Duration, DefaultIdleTimeout},
	} {
		if config.Default(d.key, d.v, d.def) != nil {
			return bad("http", -1, d.key, "must not be negative")
		}
	}
	if c.NATS.Listen != "" {
		if _, _, err := net.SplitHostPort(c.NATS.Listen); err != nil {
			return bad("nats", -1, "listen", "%q is not host:port", c.NATS.Listen)
		}
	}
	if c.MQTT.Listen != "" {
		if _, _, err := net.SplitHostPort(c.MQTT.Listen); err != nil {
			return bad("mqtt", -1, "listen", "%q is not host:port", c.MQTT.Listen)
		}
	}
	t := &c.TLS
	switch {
	case (t.Cert == "") != (t.Key == ""):
		return bad("tls", -1, "cert", "cert and key go together (a certificate and its private key, PEM)")
	case t.ClientCA != "" && t.Cert == "":
		return bad("tls", -1, "client_ca", "mutual TLS needs the listeners' own cert and key")
	}
	if !t.Enabled() && !t.AllowPlaintext {
		for _, l := range []struct{ table, addr string }{{"http", c.HTTP.Listen}, {"nats", c.NATS.Listen}, {"mqtt", c.MQTT.Listen}} {
			if l.addr != "" && !natsembed.Loopback(l.addr) {
				return bad(l.table, -1, "listen", "%s is reachable from the network: without [tls] cert and key, readings and scores would cross it in the clear; set [tls] cert and key, or tls.allow_plaintext = true", l.addr)
			}
		}
	}
	mods := map[string]bool{}
	for i, m := range c.Modules {
		switch {
		case !runtime.ValidModuleName(m.Name):
			return bad("module", i, "name", "%q must be a module name (1-64 of a-z 0-9 . _ -)", m.Name)
		case mods[m.Name]:
			return bad("module", i, "name", "%q is listed twice", m.Name)
		case m.Wasm == "":
			return bad("module", i, "wasm", "is required (the module's .wasm file)")
		case m.KeepWarm && m.IdleTimeout.Duration != 0:
			return bad("module", i, "idle_timeout", "and keep_warm exclude each other (keep_warm keeps the instances however long the module idles)")
		}
		if !m.KeepWarm && config.Default("idle_timeout", &c.Modules[i].IdleTimeout.Duration, DefaultModuleIdleTimeout) != nil {
			return bad("module", i, "idle_timeout", "must not be negative")
		}
		mods[m.Name] = true
	}
	names := map[string]bool{}
	routes := map[string]int{}
	for i := range c.Bindings {
		b := &c.Bindings[i]
		switch {
		case !runtime.ValidModuleName(b.Module):
			return bad("binding", i, "module", "%q must be a module name (1-64 of a-z 0-9 . _ -)", b.Module)
		case !runtime.ValidExportName(b.Entry):
			return bad("binding", i, "entry", "%q is not an entrypoint name", b.Entry)
		}
		if b.Name == "" {
			b.Name = fmt.Sprintf("%s-%s-%d", b.Module, b.Entry, i)
		}
		switch {
		case !bindingRE.MatchString(b.Name):
			return bad("binding", i, "name", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -", b.Name)
		case names[b.Name]:
			return bad("binding", i, "name", "%q is used by another binding", b.Name)
		}
		names[b.Name] = true
		switch b.Source {
		case SourceHTTP:
			if b.Subject != "" || b.Topic != "" || b.Publish != "" || b.QueueGroup != "" {
				return bad("binding", i, "source", "an http binding takes no subject, topic, publish or queue_group")
			}
			key := b.Module + "/" + b.Entry
			if j, dup := routes[key]; dup {
				return bad("binding", i, "entry", "POST /v1/modules/%s is already bound by binding[%d]", key, j)
			}
			routes[key] = i
		case SourceNATS:
			if b.Topic != "" {
				return bad("binding", i, "topic", "a nats binding takes a subject, not a topic")
			}
			if err := checkSubject(b.Subject, true); err != nil {
				return bad("binding", i, "subject", "%v", err)
			}
			b.subject = b.Subject
		case SourceMQTT:
			if b.Subject != "" {
				return bad("binding", i, "subject", "an mqtt binding takes a topic, not a subject")
			}
			subj, err := MQTTFilterToSubject(b.Topic)
			if err != nil {
				return bad("binding", i, "topic", "%v", err)
			}
			b.subject = subj
		case "":
			return bad("binding", i, "source", "is required: %q, %q or %q", SourceHTTP, SourceNATS, SourceMQTT)
		default:
			return bad("binding", i, "source", "%q is not %q, %q or %q", b.Source, SourceHTTP, SourceNATS, SourceMQTT)
		}
		if b.QueueGroup != "" && !bindingRE.MatchString(b.QueueGroup) {
			return bad("binding", i, "queue_group", "%q must be 1-64 characters of A-Z a-z 0-9 . _ -", b.QueueGroup)
		}
		if b.Publish != "" {
			if err := checkTemplate(b.Publish, b.subject); err != nil {
				return bad("binding", i, "publish", "%v", err)
			}
		}
		switch b.Format {
		case "":
			b.Format = FormatCBOR
		case FormatCBOR, FormatJSON:
		default:
			return bad("binding", i, "format", "%q is not %q or %q", b.Format, FormatCBOR, FormatJSON)
		}
		if config.Default("concurrency", &b.Concurrency, DefaultConcurrency) != nil || b.Concurrency > MaxConcurrency {
			return bad("binding", i, "concurrency", "%d is outside 1..%d (0 means %d)", b.Concurrency, MaxConcurrency, DefaultConcurrency)
		}
		if b.Queue < 0 || b.Queue > MaxQueue {
			return bad("binding", i, "queue", "%d is outside 0..%d", b.Queue, MaxQueue)
		}
		if b.Queue == 0 {
			b.Queue = DefaultQueue
		}
		if config.Default("queue_timeout", &b.QueueTimeout.Duration, DefaultQueueTimeout) != nil {
			return bad("binding", i, "queue_timeout", "must not be negative")
		}
		// Only HTTP callers get a default: they are told to retry
		// (Retry-After), while a shed nats or mqtt message without a reply
		// subject is a lost reading, and a burst of readings is what their
		// queue is for. Zero on nats and mqtt: no bound.
		def := time.Duration(0)
		if b.Source == SourceHTTP {
			def = DefaultStandingQueue
		}
		if config.Default("standing_queue", &b.StandingQueue.Duration, def) != nil {
			return bad("binding", i, "standing_queue", "must not be negative")
		}
		steps := 0 // steps of the bindings before this one
		for _, p := range c.Bindings[:i] {
			steps += len(p.Then)
		}
		if b.Carry != "" {
			switch {
			case !runtime.ValidExportName(b.Carry):
				return bad("binding", i, "carry", "%q is not a field name (1-64 of A-Z a-z 0-9 _, not starting with a digit)", b.Carry)
			case b.Source == SourceHTTP:
				return bad("binding", i, "carry", "an http binding has no subject to keep state for; carry needs a nats or mqtt binding")
			}
		}
		if len(b.Then) > MaxSteps {
			return bad("binding", i, "then", "%d steps; at most %d", len(b.Then), MaxSteps)
		}
		for j, st := range b.Then {
			step := func(key, format string, args ...any) error {
				// The step's [[binding.then]] header is the steps-th of the
				// file (locate counts headers); its key, or the line of
				// its inline inject table.
				k, _, _ := strings.Cut(key, ".")
				return fileErr(src, source, "binding.then", steps+j, k, fmt.Sprintf("binding[%d].then[%d].%s", i, j, key), format, args...)
			}
			switch {
			case !runtime.ValidModuleName(st.Module):
				return step("module", "%q must be a module name (1-64 of a-z 0-9 . _ -)", st.Module)
			case !runtime.ValidExportName(st.Entry):
				return step("entry", "%q is not an entrypoint name", st.Entry)
			}
			for k, path := range st.Inject {
				switch {
				case !runtime.ValidExportName(k):
					return step("inject", "%q is not a field name (1-64 of A-Z a-z 0-9 _, not starting with a digit)", k)
				case path == "":
					return step("inject."+k, "needs the path of the file whose content it injects")
				}
			}
		}
	}
	return nil
}

// checkSubject checks a NATS subject (wildcards when wc).
func checkSubject(s string, wc bool) error {
	if s == "" {
		return fmt.Errorf("is required")
	}
	if len(s) > 256 {
		return fmt.Errorf("longer than 256 bytes")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%q has an empty token", s)
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("%q contains white space", s)
		case (t == "*" || t == ">") && !wc:
			return fmt.Errorf("%q: no wildcards here", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("%q: '>' must be the last token", s)
		case strings.ContainsAny(t, "*>") && len(t) > 1:
			return fmt.Errorf("%q: a wildcard must be a whole token", s)
		}
	}
	return nil
}

// checkTemplate checks a publish template against the subject it answers.
func checkTemplate(tmpl, subject string) error {
	ntok := len(strings.Split(subject, "."))
	var err error
	probe := tmplRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		k := m[1 : len(m)-1]
		if k == "device" {
			return "d"
		}
		var n int
		if _, e := fmt.Sscanf(k, "%d", &n); e != nil || fmt.Sprint(n) != k || n < 1 {
			err = fmt.Errorf("%q: unknown placeholder %s (use {device} or {1}, {2}, ... for the subject's tokens)", tmpl, m)
		} else if n > ntok || strings.HasSuffix(subject, ">") && n >= ntok {
			err = fmt.Errorf("%q: %s is past the subject %q's %d tokens", tmpl, m, subject, ntok)
		}
		return "t"
	})
	if err != nil {
		return err
	}
	if strings.ContainsAny(probe, "{}") {
		return fmt.Errorf("%q: unbalanced braces", tmpl)
	}
	if err := checkSubject(probe, false); err != nil {
		return err
	}
	return nil
}

// expand fills a publish template for a message on subject.
func expand(tmpl, device, subject string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	toks := strings.Split(subject, ".")
	return tmplRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		k := m[1 : len(m)-1]
		if k == "device" {
			return device
		}
		var n int
		fmt.Sscanf(k, "%d", &n)
		if n >= 1 && n <= len(toks) {
			return toks[n-1]
		}
		return "_"
	})
}

// MQTTFilterToSubject converts an MQTT 3.1.1 topic filter to the NATS
// subject nats-server's MQTT listener delivers its messages on: levels
// separated by '/' become tokens separated by '.', '+' becomes '*' and '#'
// becomes '>'. nats-server also maps empty levels and '.' inside a level
// (to "/." and "//"); a binding refuses those, whose subjects no NATS
// client could bind readably.
func MQTTFilterToSubject(topic string) (string, error) {
	if topic == "" {
		return "", fmt.Errorf("is required")
	}
	if len(topic) > 256 {
		return "", fmt.Errorf("longer than 256 bytes")
	}
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		switch {
		case l == "":
			return "", fmt.Errorf("%q has an empty level (a leading, trailing or double '/')", topic)
		case strings.Contains(l, "."):
			return "", fmt.Errorf("%q: '.' in a level maps to \"//\" in NATS; use '/' between levels", topic)
		case strings.ContainsAny(l, " \t\r\n\x7f"):
			return "", fmt.Errorf("%q contains white space", topic)
		case l == "#" && i != len(levels)-1:
			return "", fmt.Errorf("%q: '#' must be the last level", topic)
		case strings.ContainsAny(l, "+#") && len(l) > 1:
			return "", fmt.Errorf("%q: a wildcard must be a whole level", topic)
		case strings.ContainsAny(l, "*>"):
			return "", fmt.Errorf("%q: '*' and '>' are NATS wildcards; MQTT uses '+' and '#'", topic)
		}
		switch l {
		case "+":
			levels[i] = "*"
		case "#":
			levels[i] = ">"
		}
	}
	return strings.Join(levels, "."), nil
}

func sanitizeToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// locate finds the 1-based line of key in the idx-th [[table]] (or
// [table] when idx < 0; top level when table is ""), or that table's
// header line, or 0.
func locate(src []byte, table string, idx int, key string) int {
	cur, n, header := "", -1, 0
	for i, line := range strings.Split(string(src), "\n") {
		l := strings.TrimSpace(line)
		if j := strings.IndexByte(l, '#'); j == 0 {
			continue
		}
		if strings.HasPrefix(l, "[") {
			name := strings.TrimSpace(strings.Trim(strings.SplitN(l, "#", 2)[0], "[] "))
			cur = name
			if name == table {
				n++
				if n == idx || idx < 0 && header == 0 {
					header = i + 1
				}
			}
			continue
		}
		if cur != table || idx >= 0 && n != idx {
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return i + 1
		}
	}
	return header
}

// ServerTLS loads the [tls] files as the listeners' configuration (nil
// without [tls]); they reload when they change.
func (c *DeviceConfig) ServerTLS() (*tls.Config, error) {
	if !c.TLS.Enabled() {
		return nil, nil
	}
	f, err := tlsfiles.Load(tlsfiles.Config{Cert: c.path(c.TLS.Cert), Key: c.path(c.TLS.Key), ClientCA: c.path(c.TLS.ClientCA)})
	if err != nil {
		return nil, fmt.Errorf("%s: [tls]: %w", c.sourceName(), err)
	}
	return f.Server()
}

// path resolves a relative path of the configuration from its file's
// directory.
func (c *DeviceConfig) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.source == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.source), p)
}

func (c *DeviceConfig) sourceName() string {
	if c.source == "" {
		return "device config"
	}
	return c.source
}
