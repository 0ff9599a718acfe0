package runtime

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// ModuleInfo describes a module binary without running it.
type ModuleInfo struct {
	Size         int        `json:"size_bytes"`
	Imports      []FuncInfo `json:"imports"`
	Exports      []FuncInfo `json:"exports"`
	Capabilities []string   `json:"capabilities"` // what its imports need
	Unknown      []string   `json:"unknown_imports,omitempty"`
	Reactor      bool       `json:"reactor"` // exports _initialize
	Command      bool       `json:"command"` // exports _start only
	MemoryMin    uint32     `json:"memory_min_pages"`
	MemoryMax    uint32     `json:"memory_max_pages,omitempty"` // 0: no maximum declared
	WASI         bool       `json:"wasi"`
}

// FuncInfo is an imported or exported function.
type FuncInfo struct {
	Module    string `json:"module,omitempty"`
	Name      string `json:"name"`
	Signature string `json:"signature"`
}

// Inspect decodes a module and reports its imports, exports and the
// capabilities it would need.
func (e *Engine) Inspect(ctx context.Context, wasm []byte) (ModuleInfo, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return ModuleInfo{}, fmt.Errorf("%w: not a WebAssembly binary (%d bytes, no \\0asm header)", ErrInvalidModule, len(wasm))
	}
	e.mu.Lock()
	r, err := e.runtime(ctx, rtKey{pages: e.limits.MaxMemoryPages, strict: true})
	e.mu.Unlock()
	if err != nil {
		return ModuleInfo{}, err
	}
	c, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	defer c.Close(ctx)
	info := ModuleInfo{Size: len(wasm)}
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		info.Imports = append(info.Imports, FuncInfo{Module: mod, Name: name, Signature: sig(f.ParamTypes(), f.ResultTypes())})
		if mod == wasi_snapshot_preview1.ModuleName {
			info.WASI = true
			continue
		}
		known := false
		for _, g := range e.groups {
			if g.Module == mod && g.Lookup(name) != nil {
				known = true
				if g.Capability != "" && !slices.Contains(info.Capabilities, g.Capability) {
					info.Capabilities = append(info.Capabilities, g.Capability)
				}
			}
		}
		if !known {
			info.Unknown = append(info.Unknown, mod+"."+name)
		}
	}
	for name, f := range c.ExportedFunctions() {
		info.Exports = append(info.Exports, FuncInfo{Name: name, Signature: sig(f.ParamTypes(), f.ResultTypes())})
	}
	sort.Slice(info.Exports, func(i, j int) bool { return info.Exports[i].Name < info.Exports[j].Name })
	sort.Strings(info.Capabilities)
	ex := c.ExportedFunctions()
	_, info.Reactor = ex["_initialize"]
	_, hasStart := ex["_start"]
	info.Command = hasStart && !info.Reactor
	if m, ok := c.ExportedMemories()["memory"]; ok {
		info.MemoryMin = m.Min()
		if max, ok := m.Max(); ok {
			info.MemoryMax = max
		}
	}
	return info, nil
}

// Groups returns the host-function groups this engine provides.
func (e *Engine) Groups() []hostfuncs.Group { return slices.Clone(e.groups) }
