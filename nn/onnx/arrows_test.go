package onnx

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportArrows: the engine sits beside gpu, beneath hostfuncs; nothing
// under nn/ may import the Wasm side, the runtime, federation or commands.
func TestImportArrows(t *testing.T) {
	forbidden := []string{"hostfuncs", "runtime", "federation", "cmd", "deploy", "sdk", "modules", "privacy"}
	files := 0
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == "github.com/fennec-edge/fennec/"+bad || strings.HasPrefix(p, "github.com/fennec-edge/fennec/"+bad+"/") {
					t.Errorf("%s imports %s", path, p)
				}
			}
		}
		return nil
	})
	if err != nil || files < 10 {
		t.Fatalf("walked %d files: %v", files, err)
	}
}
