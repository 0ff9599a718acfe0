package guests

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fennec-edge/fennec/internal/guestbuild"
)

// TestPrebuiltAll checks every guest is embedded, inflates to the recorded
// digest, carries a valid manifest and is a Wasm module. It needs no
// toolchain.
func TestPrebuiltAll(t *testing.T) {
	ix, err := PrebuiltIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Guests) != len(Names())-len(notYetPrebuilt) {
		t.Fatalf("index lists %d guests, want %d (%v, less %v)", len(ix.Guests), len(Names())-len(notYetPrebuilt), Names(), notYetPrebuilt)
	}
	total := 0
	for _, name := range Names() {
		if !HasPrebuilt(name) {
			if _, ok := ix.Find(name); ok {
				t.Fatalf("%s has a prebuilt copy now: take it out of notYetPrebuilt", name)
			}
			if _, err := Prebuilt(name); !errors.Is(err, ErrNoSource) {
				t.Fatalf("%s: Prebuilt gives %v, want ErrNoSource", name, err)
			}
			continue
		}
		g, err := Prebuilt(name)
		if err != nil {
			t.Fatal(err)
		}
		if g.Origin != FromPrebuilt || g.Name != name || g.Manifest.Name == "" {
			t.Fatalf("%s: %+v", name, g.Manifest)
		}
		if !bytes.HasPrefix(g.Wasm, []byte("\x00asm")) {
			t.Fatalf("%s: not a Wasm module", name)
		}
		fi, err := prebuiltFS.Open("prebuilt/" + name + ".wasm.gz")
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fi.Stat()
		fi.Close()
		total += int(st.Size())
	}
	t.Logf("embedded prebuilt guests: %d KiB compressed", total>>10)
	if _, err := Prebuilt("nope"); err == nil {
		t.Fatal("unknown guest: no error")
	}
}

// TestPrebuiltUpToDate checks the committed prebuilt guests against the
// sources: the source digests must match (any toolchain), and where the
// toolchain is the one that built them, a rebuild from source must give the
// same sha256 (the builds are reproducible). Run `go generate
// ./internal/guests` to refresh them.
func TestPrebuiltUpToDate(t *testing.T) {
	ctx := context.Background()
	root, err := Root()
	if err != nil {
		t.Skipf("no source tree: %v", err)
	}
	ix, err := PrebuiltIndex()
	if err != nil {
		t.Fatal(err)
	}
	const fix = "run `go generate ./internal/guests` and commit internal/guests/prebuilt"
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			if !HasPrebuilt(name) {
				t.Skipf("%s has no prebuilt copy yet (notYetPrebuilt)", name)
			}
			e, _ := ix.Find(name)
			src := filepath.Join(root, Sources[name])
			isC := strings.HasSuffix(src, ".c")
			var digest, toolchain string
			if isC {
				digest, err = guestbuild.CSourceDigest(src)
				if err == nil {
					toolchain, err = guestbuild.ClangVersion(ctx)
				}
			} else {
				digest, err = guestbuild.GoSourceDigest(ctx, src)
				if err == nil {
					toolchain, err = guestbuild.GoVersion(ctx)
				}
			}
			if errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guestbuild.ErrNoClang) {
				if isC && digest != "" && digest != e.Source {
					t.Fatalf("the sources of %s changed since its prebuilt copy was built; %s", name, fix)
				}
				t.Skipf("cannot rebuild %s here: %v", name, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if digest != e.Source {
				t.Fatalf("the sources of %s changed since its prebuilt copy was built (source digest %s, prebuilt %s); %s", name, digest[:16], e.Source[:16], fix)
			}
			dir := src
			if isC {
				dir = filepath.Dir(src)
			}
			man, err := os.ReadFile(filepath.Join(dir, "fennec.toml"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Prebuilt(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(man, p.ManifestTOML) {
				t.Fatalf("the fennec.toml of %s differs from its prebuilt copy; %s", name, fix)
			}
			if toolchain != e.Toolchain {
				t.Skipf("source digest matches; not rebuilding: the prebuilt copy was built by %q, this machine has %q", e.Toolchain, toolchain)
			}
			g, err := Build(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(g.Wasm); hex.EncodeToString(sum[:]) != e.SHA256 {
				t.Fatalf("rebuilding %s from the same sources with %s gave sha256 %x, the prebuilt copy has %s: the build is not reproducible", name, toolchain, sum, e.SHA256)
			}
		})
	}
}

// TestGetFallsBackToPrebuilt runs from a directory outside any source tree,
// as an installed binary does.
func TestGetFallsBackToPrebuilt(t *testing.T) {
	t.Setenv("FENNEC_SRC", "")
	t.Chdir(t.TempDir())
	g, err := Get(context.Background(), "risk-train")
	if err != nil {
		t.Fatal(err)
	}
	if g.Origin != FromPrebuilt || !strings.Contains(g.Why, "no fennec source tree") {
		t.Fatalf("origin %q, why %q", g.Origin, g.Why)
	}
	if _, err := Build(context.Background(), "risk-train"); !errors.Is(err, ErrNoSource) {
		t.Fatalf("Build outside a tree: %v, want ErrNoSource", err)
	}
	t.Setenv("FENNEC_SRC", t.TempDir())
	if _, err := Root(); !errors.Is(err, ErrNoSource) || !strings.Contains(err.Error(), "FENNEC_SRC") {
		t.Fatalf("FENNEC_SRC at an empty dir: %v", err)
	}
}

// TestPrebuiltHostile feeds the prebuilt reader corrupted indexes and files:
// each is refused with an error naming the file or field.
func TestPrebuiltHostile(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(wasm)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	const toml = "name = \"x\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n"
	good := fmt.Sprintf(`{"guests":[{"name":"x","sha256":"%x","size":%d,"source":"s","toolchain":"t"}]}`, sum, len(wasm))
	cases := []struct {
		name  string
		index string
		files map[string][]byte
		want  string
	}{
		{"ok", good, map[string][]byte{"x.wasm.gz": gz(wasm), "x.toml": []byte(toml)}, ""},
		{"index not json", `{"guests":[`, nil, "index.json"},
		{"unknown field", `{"guests":[],"extra":1}`, nil, "extra"},
		{"repeated name", fmt.Sprintf(`{"guests":[{"name":"x","sha256":"%x","size":8},{"name":"x","sha256":"%x","size":8}]}`, sum, sum), nil, "repeated"},
		{"bad digest", `{"guests":[{"name":"x","sha256":"abc","size":8}]}`, nil, "sha256"},
		{"huge size", fmt.Sprintf(`{"guests":[{"name":"x","sha256":"%x","size":%d}]}`, sum, int64(MaxWasmSize)+1), nil, "size"},
		{"missing file", good, map[string][]byte{"x.toml": []byte(toml)}, "x.wasm.gz"},
		{"not gzip", good, map[string][]byte{"x.wasm.gz": wasm, "x.toml": []byte(toml)}, "x.wasm.gz"},
		{"truncated gzip", good, map[string][]byte{"x.wasm.gz": gz(wasm)[:12], "x.toml": []byte(toml)}, "x.wasm.gz"},
		{"longer than recorded", good, map[string][]byte{"x.wasm.gz": gz(bytes.Repeat(wasm, 1000)), "x.toml": []byte(toml)}, "more than the 8 bytes"},
		{"shorter than recorded", good, map[string][]byte{"x.wasm.gz": gz(wasm[:4]), "x.toml": []byte(toml)}, "4 bytes"},
		{"wrong digest", good, map[string][]byte{"x.wasm.gz": gz([]byte("\x00asm\x01\x00\x00\x01")), "x.toml": []byte(toml)}, "sha256"},
		{"bad manifest", good, map[string][]byte{"x.wasm.gz": gz(wasm), "x.toml": []byte("name = 3\n")}, "x.toml"},
		{"not listed", `{"guests":[]}`, nil, "not among the prebuilt guests"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"p/index.json": {Data: []byte(c.index)}}
			for n, b := range c.files {
				fsys["p/"+n] = &fstest.MapFile{Data: b}
			}
			ix, err := readIndex(fsys, "p")
			if err == nil {
				var g Guest
				g, err = readPrebuilt(fsys, "p", ix, "x")
				if err == nil && !bytes.Equal(g.Wasm, wasm) {
					t.Fatal("wrong bytes")
				}
			}
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
}

// FuzzPrebuilt feeds arbitrary index and module bytes to the prebuilt
// reader: it must return an error or a guest whose bytes match the index,
// never panic or inflate past the recorded size.
func FuzzPrebuilt(f *testing.F) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(wasm)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(wasm)
	zw.Close()
	f.Add([]byte(fmt.Sprintf(`{"guests":[{"name":"x","sha256":"%x","size":8}]}`, sum)), buf.Bytes())
	f.Add([]byte(`{"guests":[{"name":"x","sha256":"`+strings.Repeat("0", 64)+`","size":67108864}]}`), buf.Bytes())
	f.Add([]byte(`{}`), []byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, index, gz []byte) {
		fsys := fstest.MapFS{
			"p/index.json": {Data: index},
			"p/x.wasm.gz":  {Data: gz},
			"p/x.toml":     {Data: []byte("name = \"x\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n")},
		}
		ix, err := readIndex(fsys, "p")
		if err != nil {
			return
		}
		g, err := readPrebuilt(fsys, "p", ix, "x")
		if err != nil {
			return
		}
		e, _ := ix.Find("x")
		if s := sha256.Sum256(g.Wasm); len(g.Wasm) != e.Size || hex.EncodeToString(s[:]) != e.SHA256 {
			t.Fatalf("accepted %d bytes not matching the index", len(g.Wasm))
		}
	})
}
