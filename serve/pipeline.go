package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// step is one further call of a binding's pipeline.
type step struct {
	StepConfig
	mod    Module
	inject []*injectFile // sorted by key
}

// injectFile is a file whose content a step sets as a field of its input.
type injectFile struct {
	key, path string
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	val     cbor.RawMessage
	modTime time.Time
	size    int64
	checked time.Time
}

// reloadEvery bounds how often an inject file is checked for a change.
const reloadEvery = time.Second

// loadInject reads path for key; the first read must succeed.
func loadInject(key, path string, log *slog.Logger) (*injectFile, error) {
	f := &injectFile{key: key, path: path, log: log, now: time.Now}
	fi, val, err := readInject(path)
	if err != nil {
		return nil, err
	}
	f.val, f.modTime, f.size, f.checked = val, fi.ModTime(), fi.Size(), f.now()
	return f, nil
}

// value is the file's current content, re-read when the file changed.
func (f *injectFile) value() cbor.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.checked) < reloadEvery {
		return f.val
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil {
		f.log.Warn("inject file unreadable; keeping its last content", "field", f.key, "file", f.path, "err", err)
		return f.val
	}
	if fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return f.val
	}
	fi, val, err := readInject(f.path)
	if err != nil {
		f.log.Warn("inject file changed but is not valid; keeping its last content", "field", f.key, "file", f.path, "err", err)
		// Not read again until it changes once more.
		if fi != nil {
			f.modTime, f.size = fi.ModTime(), fi.Size()
		}
		return f.val
	}
	f.val, f.modTime, f.size = val, fi.ModTime(), fi.Size()
	f.log.Info("inject file reloaded", "field", f.key, "file", f.path, "bytes", len(val))
	return f.val
}

// readInject reads an inject file: CBOR, or JSON when it ends in .json,
// as one CBOR item.
func readInject(path string) (os.FileInfo, cbor.RawMessage, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return fi, nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, MaxInjectBytes+1))
	if err != nil {
		return fi, nil, err
	}
	if len(b) > MaxInjectBytes {
		return fi, nil, fmt.Errorf("%s: larger than %d bytes", path, MaxInjectBytes)
	}
	format := FormatCBOR
	if strings.EqualFold(filepath.Ext(path), ".json") {
		format = FormatJSON
	}
	val, err := DecodeRequest(format, b)
	if err != nil {
		return fi, nil, fmt.Errorf("%s: %w", path, err)
	}
	return fi, val, nil
}

// errNotMap: a pipeline step's input (the previous call's output) is not
// a map, so there is nowhere to put the injected fields.
var errNotMap = errors.New("the previous call's output is not a CBOR map")

// stepInput turns the previous call's output into st's input: out as is
// without injected fields; otherwise the map out with each field set.
func stepInput(st *step, out []byte) ([]byte, error) {
	if len(st.inject) == 0 {
		return out, nil
	}
	var m map[string]cbor.RawMessage
	if err := decMode.Unmarshal(out, &m); err != nil || m == nil {
		return nil, errNotMap
	}
	for _, f := range st.inject {
		m[f.key] = f.value()
	}
	return encMode.Marshal(m)
}

// newSteps resolves a binding's further calls: their modules and inject
// files (relative paths from dir).
func newSteps(bc BindingConfig, i int, mods map[string]Module, dir string, log *slog.Logger, where string) ([]*step, error) {
	var steps []*step
	for j, sc := range bc.Then {
		mod, ok := mods[sc.Module]
		if !ok {
			return nil, fmt.Errorf("%s: binding[%d].then[%d] (%s): module %q is not loaded (not in [[module]] nor run by the deployer)", where, i, j, bc.Name, sc.Module)
		}
		st := &step{StepConfig: sc, mod: mod}
		keys := make([]string, 0, len(sc.Inject))
		for k := range sc.Inject {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			path := sc.Inject[k]
			if !filepath.IsAbs(path) && dir != "" {
				path = filepath.Join(dir, path)
			}
			f, err := loadInject(k, path, log)
			if err != nil {
				return nil, fmt.Errorf("%s: binding[%d].then[%d].inject.%s: %w", where, i, j, k, err)
			}
			st.inject = append(st.inject, f)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// Carry bounds.
const (
	// MaxCarryKeys bounds the subjects a binding keeps state for; beyond,
	// the oldest is forgotten (its next message starts afresh).
	MaxCarryKeys = 4096
	// MaxCarryBytes bounds one subject's carried state; a larger one is
	// not kept (logged), so its next message starts afresh.
	MaxCarryBytes = 1 << 20
)

// carrier keeps, per subject, the field of a binding's first call's
// output that the next message on the same subject takes back (Carry).
type carrier struct {
	field string
	log   *slog.Logger

	mu    sync.Mutex
	state map[string]cbor.RawMessage
	order []string // keys, oldest first (FIFO eviction)
}

func newCarrier(field string, log *slog.Logger) *carrier {
	if field == "" {
		return nil
	}
	return &carrier{field: field, log: log, state: map[string]cbor.RawMessage{}}
}

// input sets the state kept for key in the message in (a map).
func (c *carrier) input(key string, in []byte) ([]byte, error) {
	c.mu.Lock()
	st, ok := c.state[key]
	c.mu.Unlock()
	if !ok {
		return in, nil
	}
	var m map[string]cbor.RawMessage
	if err := decMode.Unmarshal(in, &m); err != nil || m == nil {
		return nil, fmt.Errorf("carry %s: the message is not a map", c.field)
	}
	m[c.field] = st
	return encMode.Marshal(m)
}

// output keeps the field of the first call's output for key (or forgets
// key when the output has none).
func (c *carrier) output(key string, out []byte) {
	var m map[string]cbor.RawMessage
	if err := decMode.Unmarshal(out, &m); err != nil {
		return
	}
	st, ok := m[c.field]
	if ok && len(st) > MaxCarryBytes {
		c.log.Warn("carried state too large; not kept", "field", c.field, "subject", key, "bytes", len(st), "max", MaxCarryBytes)
		ok = false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		if _, had := c.state[key]; had {
			delete(c.state, key)
			c.order = slices.DeleteFunc(c.order, func(k string) bool { return k == key })
		}
		return
	}
	if _, had := c.state[key]; !had {
		if len(c.order) >= MaxCarryKeys {
			delete(c.state, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, key)
	}
	c.state[key] = slices.Clone(st)
}

// keys is how many subjects have state.
func (c *carrier) keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.state)
}
