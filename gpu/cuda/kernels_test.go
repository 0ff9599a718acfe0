package cuda

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(([^)]*)\)`)

// parseKernels returns each extern "C" kernel of src with its parameter
// kinds, and a problem for each parameter type no launch slot can carry.
func parseKernels(src string) (map[string][]pkind, []string) {
	out := map[string][]pkind{}
	var problems []string
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		var kinds []pkind
		for _, p := range strings.Split(m[2], ",") {
			f := strings.Fields(strings.ReplaceAll(p, "*", " * "))
			if len(f) < 2 {
				problems = append(problems, fmt.Sprintf("kernel %s: cannot parse parameter %q", m[1], p))
				continue
			}
			typ := strings.Join(f[:len(f)-1], " ")
			switch {
			case strings.HasSuffix(typ, "*"):
				kinds = append(kinds, pPtr)
			case typ == "i64":
				kinds = append(kinds, pI64)
			case typ == "float":
				kinds = append(kinds, pF32)
			case typ == "double":
				kinds = append(kinds, pF64)
			default:
				problems = append(problems, fmt.Sprintf("kernel %s: parameter %q has type %q, which is not 8-byte slot safe (use i64, float, double or a pointer)", m[1], p, typ))
			}
		}
		if _, dup := out[m[1]]; dup {
			problems = append(problems, "kernel "+m[1]+" declared twice")
		}
		out[m[1]] = kinds
	}
	return out, problems
}

func TestKernelSpecsMatchSource(t *testing.T) {
	if !strings.Contains(kernelSource, "extern \"C\" __global__") {
		t.Fatal("kernels.cu is not embedded")
	}
	src, problems := parseKernels(kernelSource)
	for _, p := range problems {
		t.Error(p)
	}
	if len(src) != len(kernelSpecs) {
		t.Errorf("kernels.cu declares %d kernels, kernelSpecs lists %d", len(src), len(kernelSpecs))
	}
	for _, s := range kernelSpecs {
		got, ok := src[s.name]
		if !ok {
			t.Errorf("kernelSpecs lists %s, which kernels.cu does not declare", s.name)
			continue
		}
		if len(got) != len(s.params) {
			t.Errorf("%s: source has %d parameters, spec %d", s.name, len(got), len(s.params))
			continue
		}
		for i := range got {
			if got[i] != s.params[i] {
				t.Errorf("%s parameter %d: source kind %d, spec kind %d", s.name, i, got[i], s.params[i])
			}
		}
	}
}

func TestParseKernelsRejectsNarrowTypes(t *testing.T) {
	// An int parameter would be read as 4 of the 8 bytes cu's launcher
	// copies per parameter; the check must flag it.
	if _, p := parseKernels(`extern "C" __global__ void k(int n, float *x)`); len(p) != 1 {
		t.Errorf("int parameter: problems %q, want one", p)
	}
	k, p := parseKernels(`extern "C" __global__ void k(i64 n, const float *x, float a, double d)`)
	if len(p) != 0 || len(k["k"]) != 4 || k["k"][1] != pPtr || k["k"][3] != pF64 {
		t.Errorf("well-formed kernel parsed as %v, problems %q", k, p)
	}
}

func TestPackArgs(t *testing.T) {
	slots, err := packArgs("axpy", []arg{ptrArg(0x1000), ptrArg(0x2000), i64Arg(7), f32Arg(1.5)})
	if err != nil {
		t.Fatal(err)
	}
	if slots[0] != 0x1000 || slots[2] != 7 || slots[3] != 0x3fc00000 {
		t.Errorf("slots = %#x", slots)
	}
	if s, _ := packArgs("loss_mse", []arg{nilArg(), nilArg(), nilArg(), nilArg(), i64Arg(-1), f64Arg(0.5)}); s[4] != ^uint64(0) || s[5] != 0x3fe0000000000000 {
		t.Errorf("i64 -1 / f64 0.5 slots = %#x", s)
	}
	for _, tc := range []struct {
		name string
		args []arg
	}{
		{"nope", nil},
		{"axpy", []arg{ptrArg(1), ptrArg(2), i64Arg(3)}},
		{"axpy", []arg{ptrArg(1), ptrArg(2), f32Arg(3), f32Arg(1)}},
	} {
		if _, err := packArgs(tc.name, tc.args); err == nil {
			t.Errorf("packArgs(%s, %d args) accepted a bad launch", tc.name, len(tc.args))
		}
	}
}
