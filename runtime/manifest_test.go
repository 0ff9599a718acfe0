package runtime_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/runtime"
)

func TestParseManifest(t *testing.T) {
	m, err := runtime.ParseManifest([]byte(`
name = "vitals-preprocess"
version = "1.2.0-rc.1+build.5"
description = "cleans vitals"
entrypoints = ["process", "health"]
capabilities = ["tensor", "wasi:env"]

[env]
WINDOW = "5"

[limits]
memory_pages = 512
call_timeout = "2s"
tensor_bytes = 1048576
tensor_handles = 64
instances = 2
preemption = "strict"
`), "fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Limits.CallTimeout.Duration != 2*time.Second || m.Limits.MemoryPages != 512 || m.ABI != 1 || m.Env["WINDOW"] != "5" || m.Input != "" {
		t.Fatalf("decoded %+v", m)
	}
	m, err = runtime.ParseManifest([]byte("name = \"vad\"\nversion = \"1.0.0\"\nentrypoints = [\"segments\"]\ninput = \"bytes\"\n"), "fennec.toml")
	if err != nil || m.Input != runtime.InputBytes {
		t.Fatalf("input = \"bytes\": %+v, %v", m, err)
	}
}

func TestManifestErrors(t *testing.T) {
	base := "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n"
	cases := []struct {
		name, src string
		line      int
		field     string
		msg       string
	}{
		{"syntax", "name = \"m\nversion = 1", 1, "", ""},
		{"missing name", "version = \"1.0.0\"\nentrypoints = [\"run\"]\n", 0, "name", "is required"},
		{"bad name", "name = \"Bad Name\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n", 1, "name", "must be"},
		{"bad version", "name = \"m\"\nversion = \"1.0\"\nentrypoints = [\"run\"]\n", 2, "version", "not a semantic version"},
		{"no entrypoints", "name = \"m\"\nversion = \"1.0.0\"\n", 0, "entrypoints", "at least one"},
		{"bad entrypoint", "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run me\"]\n", 3, "entrypoints", "not a valid export name"},
		{"reserved entrypoint", "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"_start\"]\n", 3, "entrypoints", "reserved"},
		{"duplicate entrypoint", "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"a\", \"a\"]\n", 3, "entrypoints", "twice"},
		{"unknown capability", base + "capabilities = [\"network\"]\n", 4, "capabilities", "unknown capability \"network\""},
		{"unknown field", base + "colour = \"red\"\n", 4, "colour", "unknown field"},
		{"unknown limit", base + "[limits]\nmemory = 5\n", 5, "limits.memory", "unknown field"},
		{"wrong type", base + "[limits]\nmemory_pages = \"lots\"\n", 5, "limits.memory_pages", "incompatible types"},
		{"bad duration", base + "[limits]\ncall_timeout = \"soon\"\n", 5, "", "not a duration"},
		{"too many pages", base + "[limits]\nmemory_pages = 70000\n", 5, "limits.memory_pages", "exceeds 65536"},
		{"bad preemption", base + "[limits]\npreemption = \"never\"\n", 5, "limits.preemption", "is not"},
		{"abi", base + "abi = 2\n", 4, "abi", "not supported"},
		{"env without capability", base + "[env]\nX = \"1\"\n", 4, "env", "wasi:env"},
		{"command with entrypoints", base + "command = true\n", 3, "entrypoints", "has no entrypoints"},
		{"bad nn abi", base + "capabilities = [\"wasi:nn\"]\n[nn]\nabi = \"tflite\"\n", 6, "nn.abi", "is not"},
		{"bad model name", base + "capabilities = [\"wasi:nn\"]\n[nn]\nmodels = [\"a b\"]\n", 6, "nn.models", "not a model name"},
		{"nn without capability", base + "[nn]\nmodels = [\"vad\"]\n", 4, "nn", "capability"},
		{"bad input", base + "input = \"wav\"\n", 4, "input", "is not \"cbor\" or \"bytes\""},
		{"pin of an ungranted model", base + "capabilities = [\"nn\"]\n[nn]\nmodels = [\"vad\"]\n[nn.sha256]\nocr = \"" + strings.Repeat("ab", 32) + "\"\n", 8, "nn.sha256.ocr", "does not grant"},
		{"malformed pin", base + "capabilities = [\"nn\"]\n[nn]\nmodels = [\"vad\"]\n[nn.sha256]\nvad = \"abc\"\n", 8, "nn.sha256.vad", "not a SHA-256 digest"},
		{"pin not hex", base + "capabilities = [\"nn\"]\n[nn]\nmodels = [\"vad\"]\n[nn.sha256]\nvad = \"" + strings.Repeat("zz", 32) + "\"\n", 8, "nn.sha256.vad", "not a SHA-256 digest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runtime.ParseManifest([]byte(c.src), "mod/fennec.toml")
			var me *runtime.ManifestError
			if !errors.As(err, &me) || !errors.Is(err, runtime.ErrManifest) {
				t.Fatalf("got %v, want a *ManifestError", err)
			}
			if me.Line != c.line || (c.field != "" && me.Field != c.field) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %q (line %d, field %q), want line %d, field %q, saying %q", err, me.Line, me.Field, c.line, c.field, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "mod/fennec.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// TestManifestModelPins: [nn.sha256] pins granted models; hex is taken in
// either case and kept lower-case.
func TestManifestModelPins(t *testing.T) {
	src := "name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\ncapabilities = [\"nn\"]\n[nn]\nmodels = [\"vad\", \"ocr\"]\n[nn.sha256]\nvad = \"" + strings.Repeat("AB", 32) + "\"\n"
	m, err := runtime.ParseManifest([]byte(src), "fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.NN.SHA256["vad"]; got != strings.Repeat("ab", 32) || len(m.NN.SHA256) != 1 {
		t.Fatalf("pins %v", m.NN.SHA256)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("name = \"m\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n[limits]\nmemory_pages = 3\n"))
	f.Add([]byte("[[x]]\n[a.b.c]\nd = 1979-05-27T07:32:00Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := runtime.ParseManifest(data, "fuzz.toml")
		if err == nil && (m.Name == "" || (len(m.Entrypoints) == 0) != m.Command) {
			t.Fatalf("accepted an incomplete manifest: %+v", m)
		}
	})
}

func TestValidNames(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, c := range []struct {
		name         string
		module, expo bool
	}{
		{"risk-infer", true, false},
		{"vitals.preprocess_2", true, false},
		{long, true, true},
		{long + "a", false, false},
		{"", false, false},
		{"-risk", false, false},
		{"Risk", false, true},
		{"score", true, true},
		{"_start", false, true},
		{"9lives", true, false},
		{"a b", false, false},
	} {
		if got := runtime.ValidModuleName(c.name); got != c.module {
			t.Errorf("ValidModuleName(%q) = %v, want %v", c.name, got, c.module)
		}
		if got := runtime.ValidExportName(c.name); got != c.expo {
			t.Errorf("ValidExportName(%q) = %v, want %v", c.name, got, c.expo)
		}
	}
}
