package guests

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"

	"github.com/fennec-edge/fennec/runtime"
)

// The prebuilt guests: NAME.wasm.gz and NAME.toml for each guest, and
// index.json recording what each was built from. Written by
// `go generate ./internal/guests` (./gen); never edit by hand.
//
//go:embed prebuilt
var prebuiltFS embed.FS

// IndexFile is the name of the index inside the prebuilt directory.
const IndexFile = "index.json"

// MaxWasmSize bounds a prebuilt module's decompressed size.
const MaxWasmSize = 64 << 20

// Index records the prebuilt guests.
type Index struct {
	Guests []Entry `json:"guests"`
}

// Entry is one prebuilt guest.
type Entry struct {
	Name string `json:"name"`
	// SHA256 is the hex digest of the .wasm (decompressed) bytes.
	SHA256 string `json:"sha256"`
	// Size is the .wasm size in bytes.
	Size int `json:"size"`
	// Source is the guest's source digest (guestbuild.GoSourceDigest or
	// guestbuild.CSourceDigest) when it was built.
	Source string `json:"source"`
	// Toolchain is the compiler that built it (`go env GOVERSION`, or the
	// first line of `clang --version`).
	Toolchain string `json:"toolchain"`
}

// Find returns the entry of the named guest.
func (ix Index) Find(name string) (Entry, bool) {
	for _, e := range ix.Guests {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

var (
	indexOnce sync.Once
	index     Index
	indexErr  error
)

// PrebuiltIndex returns the index of the guests embedded in this binary.
func PrebuiltIndex() (Index, error) {
	indexOnce.Do(func() { index, indexErr = readIndex(prebuiltFS, "prebuilt") })
	return index, indexErr
}

// Prebuilt returns the copy of the named guest embedded in this binary,
// checked against the digest and size its index records.
func Prebuilt(name string) (Guest, error) {
	if _, ok := Sources[name]; !ok {
		return Guest{}, fmt.Errorf("unknown guest %q", name)
	}
	ix, err := PrebuiltIndex()
	if err != nil {
		return Guest{}, err
	}
	return readPrebuilt(prebuiltFS, "prebuilt", ix, name)
}

func readIndex(fsys fs.FS, dir string) (Index, error) {
	b, err := fs.ReadFile(fsys, path.Join(dir, IndexFile))
	if err != nil {
		return Index{}, fmt.Errorf("prebuilt guests: %w", err)
	}
	var ix Index
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ix); err != nil {
		return Index{}, fmt.Errorf("prebuilt guests: %s: %w", path.Join(dir, IndexFile), err)
	}
	seen := map[string]bool{}
	for i, e := range ix.Guests {
		switch {
		case e.Name == "" || seen[e.Name]:
			return Index{}, fmt.Errorf("prebuilt guests: %s: guests[%d].name %q is empty or repeated", IndexFile, i, e.Name)
		case len(e.SHA256) != 64:
			return Index{}, fmt.Errorf("prebuilt guests: %s: guests[%d] (%s).sha256 is not a hex sha256", IndexFile, i, e.Name)
		case e.Size <= 0 || e.Size > MaxWasmSize:
			return Index{}, fmt.Errorf("prebuilt guests: %s: guests[%d] (%s).size %d is not in 1..%d", IndexFile, i, e.Name, e.Size, MaxWasmSize)
		}
		seen[e.Name] = true
	}
	return ix, nil
}

func readPrebuilt(fsys fs.FS, dir string, ix Index, name string) (Guest, error) {
	e, ok := ix.Find(name)
	if !ok {
		return Guest{}, fmt.Errorf("%w: guest %s is not among the prebuilt guests of this binary", ErrNoSource, name)
	}
	gzName := path.Join(dir, name+".wasm.gz")
	f, err := fsys.Open(gzName)
	if err != nil {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %w", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %s: %w", name, gzName, err)
	}
	// Read at most one byte more than recorded, so a longer stream is caught
	// without inflating it all.
	wasm, err := io.ReadAll(io.LimitReader(zr, int64(e.Size)+1))
	if err != nil {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %s: %w", name, gzName, err)
	}
	if len(wasm) > e.Size {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %s inflates to more than the %d bytes its index records", name, gzName, e.Size)
	}
	if len(wasm) != e.Size {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %s inflates to %d bytes, its index records %d", name, gzName, len(wasm), e.Size)
	}
	if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != e.SHA256 {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %s has sha256 %x, index says %s", name, gzName, sum, e.SHA256)
	}
	tomlName := path.Join(dir, name+".toml")
	toml, err := fs.ReadFile(fsys, tomlName)
	if err != nil {
		return Guest{}, fmt.Errorf("prebuilt guest %s: %w", name, err)
	}
	man, err := runtime.ParseManifest(toml, "prebuilt/"+name+".toml")
	if err != nil {
		return Guest{}, err
	}
	return Guest{Name: name, Wasm: wasm, Manifest: man, ManifestTOML: toml, Origin: FromPrebuilt}, nil
}
