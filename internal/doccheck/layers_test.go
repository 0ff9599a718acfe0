package doccheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers are the host packages from the top of docs/ARCHITECTURE.md's
// diagram down: a package imports only packages of lower layers (and
// internal/ helpers), never one of its own layer or above. nn sits between
// hostfuncs and gpu (nn/onnx runs its products on a gpu.Backend).
var layers = [][]string{
	{"cmd", "bench"},
	{"dashboard"},
	{"federation", "serve"},
	{"deploy"},
	{"runtime"},
	{"hostfuncs"},
	{"nn"},
	{"gpu", "privacy"},
}

const module = "github.com/fennec-edge/fennec/"

// layerOf is the layer of a repository path (its first element), -1 for
// internal/ helpers, guests and anything else the rule does not cover.
func layerOf(path string) int {
	top, _, _ := strings.Cut(path, "/")
	for i, l := range layers {
		for _, p := range l {
			if p == top {
				return i
			}
		}
	}
	return -1
}

// TestImportLayers: the imports of every non-test Go file of the host
// packages point down the layers, and the guest side (sdk, modules)
// imports no host package; the diagram of docs/ARCHITECTURE.md draws the
// layers in that order, so the map and the imports cannot drift apart.
func TestImportLayers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if n := d.Name(); rel != "." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "shared" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		from := layerOf(rel)
		guest := strings.HasPrefix(rel, "sdk/") || strings.HasPrefix(rel, "modules/")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			if guest {
				if !strings.HasPrefix(dep, "sdk") && !strings.HasPrefix(dep, "modules/") {
					t.Errorf("%s: the guest side imports host package %s", rel, dep)
				}
				continue
			}
			to := layerOf(dep)
			sameTop := strings.SplitN(rel, "/", 2)[0] == strings.SplitN(dep, "/", 2)[0]
			if from >= 0 && to >= 0 && to <= from && !sameTop {
				t.Errorf("%s imports %s: layer %v is not below layer %v (docs/ARCHITECTURE.md)", rel, dep, layers[to], layers[from])
			}
		}
		return nil
	})
	if err != nil || files < 100 {
		t.Fatalf("walked %d files: %v", files, err)
	}

	// The diagram: the first code block of docs/ARCHITECTURE.md names the
	// layers' packages top to bottom.
	b, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(string(b), "```", 3)
	if len(parts) < 3 {
		t.Fatal("docs/ARCHITECTURE.md has no diagram")
	}
	line := map[string]int{}
	for i, l := range strings.Split(parts[1], "\n") {
		// A layer's name leads its line; peers drawn side by side follow
		// it as bare words ("gpu         privacy"), before any description
		// in parentheses.
		for j, w := range strings.Fields(l) {
			if strings.HasPrefix(w, "(") {
				break // the description
			}
			w = strings.TrimSuffix(w, "/fennec")
			if layerOf(w) < 0 || strings.Contains(w, "/") {
				if j == 0 {
					break
				}
				continue
			}
			if _, seen := line[w]; !seen {
				line[w] = i
			}
		}
	}
	for _, name := range []string{"cmd", "dashboard", "federation", "serve", "deploy", "runtime", "hostfuncs", "gpu", "privacy"} {
		if _, ok := line[name]; !ok {
			t.Errorf("docs/ARCHITECTURE.md's diagram does not draw %s", name)
		}
	}
	for a, la := range line {
		for b, lb := range line {
			if layerOf(a) < layerOf(b) && la >= lb {
				t.Errorf("docs/ARCHITECTURE.md's diagram draws %s (line %d) above %s (line %d), but %s is the lower layer", b, lb, a, la, b)
			}
		}
	}
}
