package hostfuncs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/tetratelabs/wazero/api"
)

// TestABIDocMatchesCode checks that docs/ABI.md documents every host
// function of every built-in group exactly once per signature table, with
// the parameter and result types the host registers.
func TestABIDocMatchesCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(\\w+)` \\| `\\(([^)]*)\\) -> \\(?([a-z0-9, ]*)\\)?` \\|")
	documented := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		if _, dup := documented[m[1]]; dup {
			t.Errorf("docs/ABI.md documents %s twice", m[1])
		}
		documented[m[1]] = []string{m[2], m[3]}
	}
	typeName := map[api.ValueType]string{api.ValueTypeI32: "i32", api.ValueTypeI64: "i64", api.ValueTypeF32: "f32", api.ValueTypeF64: "f64"}
	for _, g := range hostfuncs.Builtin() {
		for _, f := range g.Funcs {
			d, ok := documented[f.Name]
			if !ok {
				t.Errorf("%s.%s is not documented in docs/ABI.md", g.Module, f.Name)
				continue
			}
			params := expandParams(d[0])
			if len(params) != len(f.Params) {
				t.Errorf("%s.%s: docs list %d parameters (%s), the host takes %d", g.Module, f.Name, len(params), d[0], len(f.Params))
				continue
			}
			for i, p := range f.Params {
				if params[i] != typeName[p] {
					t.Errorf("%s.%s: parameter %d is %s in the docs, %s in the host", g.Module, f.Name, i, params[i], typeName[p])
				}
			}
			var results []string
			for _, r := range f.Results {
				results = append(results, typeName[r])
			}
			if got := strings.Join(results, ", "); got != strings.TrimSpace(d[1]) {
				t.Errorf("%s.%s: result %q in the docs, %q in the host", g.Module, f.Name, d[1], got)
			}
			delete(documented, f.Name)
		}
	}
	for name := range documented {
		t.Errorf("docs/ABI.md documents %s, which no built-in group provides", name)
	}
}

// expandParams turns Go-style "(a, b i32, c f32)" into one type per name.
func expandParams(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	items := strings.Split(s, ",")
	types := make([]string, len(items))
	pending := 0
	for i, it := range items {
		f := strings.Fields(it)
		if len(f) == 2 {
			for j := pending; j <= i; j++ {
				types[j] = f[1]
			}
			pending = i + 1
		}
	}
	return types
}
