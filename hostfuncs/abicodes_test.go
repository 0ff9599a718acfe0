package hostfuncs_test

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/sdk"
)

// goCodes returns the negative constants of type Code declared in the
// non-test Go files of dir, by name.
func goCodes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no Go files (%v)", dir, err)
	}
	out := map[string]int64{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
					continue
				}
				if len(vs.Values) != len(vs.Names) {
					t.Fatalf("%s: Code constants %v have no explicit values; give each its literal value", fset.Position(vs.Pos()), vs.Names)
				}
				for i, name := range vs.Names {
					tv, err := types.Eval(fset, nil, vs.Values[i].Pos(), types.ExprString(vs.Values[i]))
					if err != nil || tv.Value == nil || tv.Value.Kind() != constant.Int {
						t.Fatalf("%s: %s is not a literal integer constant: %v", fset.Position(vs.Pos()), name.Name, err)
					}
					v, _ := constant.Int64Val(tv.Value)
					if v < 0 {
						out[name.Name] = v
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no negative Code constants found", dir)
	}
	return out
}

// TestABIErrorCodesAgree checks that the error codes of ABI v1 are the same
// set, with the same values, in the host (hostfuncs), the Go SDK (sdk), the
// C header (sdk/c/fennec.h) and docs/ABI.md, and that both Go packages name
// each code.
func TestABIErrorCodesAgree(t *testing.T) {
	sources := map[string]map[string]int64{
		"hostfuncs": goCodes(t, "."),
		"sdk":       goCodes(t, "../sdk"),
	}

	hdr, err := os.ReadFile("../sdk/c/fennec.h")
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]int64{}
	// Enumerators and #defines of FENNEC_E<NAME> with negative values (a
	// code given a positive value shows as missing; FENNEC_EXP is an op).
	re := regexp.MustCompile(`(?m)(?:^\s*#define\s+FENNEC_(E[A-Z]+)\s+\(?(-\d+)\)?|\bFENNEC_(E[A-Z]+)\s*=\s*(-\d+))`)
	for _, m := range re.FindAllStringSubmatch(string(hdr), -1) {
		name, val := m[1], m[2]
		if name == "" {
			name, val = m[3], m[4]
		}
		v, _ := strconv.ParseInt(val, 10, 64)
		if old, dup := c[name]; dup && old != v {
			t.Errorf("fennec.h defines FENNEC_%s twice (%d, %d)", name, old, v)
		}
		c[name] = v
	}
	sources["sdk/c/fennec.h"] = c

	doc, err := os.ReadFile("../docs/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]int64{}
	for _, m := range regexp.MustCompile("(?m)^\\| (-\\d+) \\| `(E[A-Z]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		d[m[2]] = v
	}
	sources["docs/ABI.md"] = d

	all := map[string]bool{}
	for _, codes := range sources {
		for name := range codes {
			all[name] = true
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	order := []string{"hostfuncs", "sdk", "sdk/c/fennec.h", "docs/ABI.md"}
	for _, name := range names {
		want, ok := sources["hostfuncs"][name]
		if !ok {
			t.Errorf("%s is defined in %v but not in hostfuncs", name, where(sources, order, name))
			continue
		}
		for _, src := range order[1:] {
			got, ok := sources[src][name]
			switch {
			case !ok:
				t.Errorf("%s (%d) is missing from %s", name, want, src)
			case got != want:
				t.Errorf("%s is %d in hostfuncs but %d in %s", name, want, got, src)
			}
		}
		if s := hostfuncs.Code(want).String(); s != name {
			t.Errorf("hostfuncs.Code(%d).String() = %q, want %q", want, s, name)
		}
		if s := sdk.Code(want).String(); s != name {
			t.Errorf("sdk.Code(%d).String() = %q, want %q", want, s, name)
		}
	}
}

func where(sources map[string]map[string]int64, order []string, name string) []string {
	var out []string
	for _, s := range order {
		if _, ok := sources[s][name]; ok {
			out = append(out, s)
		}
	}
	return out
}
