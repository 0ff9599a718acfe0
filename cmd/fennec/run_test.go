package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
)

// preprocessModule writes the vitals-preprocess module and its manifest into
// dir, skipping the test when it cannot be built here.
func preprocessModule(t *testing.T, dir string) string {
	t.Helper()
	wasm, _, err := guests.Load(context.Background(), "vitals-preprocess")
	if errors.Is(err, guestbuild.ErrNoGo) || errors.Is(err, guests.ErrNoSource) {
		t.Skipf("cannot build guest modules here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	root, _ := guests.Root()
	toml, err := os.ReadFile(filepath.Join(root, "modules/vitals-preprocess/fennec.toml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "pre.wasm")
	os.WriteFile(p, wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "pre.toml"), toml, 0o644)
	return p
}

func TestRunAndInspect(t *testing.T) {
	dir := t.TempDir()
	mod := preprocessModule(t, dir)
	out, code := runFennec(t, dir, "vitals", "--patients", "2", "--hours", "4", "--out", "v.csv")
	if code != exitOK {
		t.Fatalf("vitals: %d %s", code, out)
	}
	out, code = runFennec(t, dir, "run", mod, "--input", "v.csv", "--no-cache")
	if code != exitOK || !strings.Contains(out, `"records"`) || !strings.Contains(out, `"dropped"`) ||
		!strings.Contains(out, `"not_alert"`) || !strings.Contains(out, `"d_hr"`) {
		t.Fatalf("run: %d\n%s", code, out)
	}
	// JSON input works too, and CBOR output is raw bytes.
	os.WriteFile(filepath.Join(dir, "in.json"), []byte(`{"records": [{"patient": "a", "t": 0, "hr": 80}]}`), 0o644)
	out, code = runFennec(t, dir, "run", mod, "--input", "in.json", "--output", "cbor", "--no-cache")
	if code != exitOK || len(out) == 0 || out[0]&0xe0 != 0xa0 { // a CBOR map
		t.Fatalf("run json->cbor: %d %q", code, out)
	}

	out, code = runFennec(t, dir, "inspect", mod)
	if code != exitOK || !strings.Contains(out, "reactor") || !strings.Contains(out, "loads on this host") {
		t.Fatalf("inspect: %d\n%s", code, out)
	}
	out, code = runFennec(t, dir, "version")
	if code != exitOK || !strings.Contains(out, "host ABI v1") {
		t.Fatalf("version: %d %s", code, out)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	mod := preprocessModule(t, dir)
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("patient,hr\np1,70\np2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.cbor"), []byte{0xbf, 0x61}, 0o644)
	os.WriteFile(filepath.Join(dir, "text.wasm"), []byte("hello, not wasm"), 0o644)
	os.WriteFile(filepath.Join(dir, "text.toml"), []byte("name = \"t\"\nversion = \"1.0.0\"\nentrypoints = [\"process\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "badman.toml"), []byte("name = \"t\"\nversion = \"one\"\nentrypoints = [\"process\"]\n"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", mod}, exitUsage, "--input FILE is required"},
		{[]string{"run", mod, "--input", "bad.csv"}, exitBadInput, "bad.csv:3: column 1: wrong number of fields"},
		{[]string{"run", mod, "--input", "bad.cbor"}, exitBadInput, "bad.cbor"},
		{[]string{"run", mod, "--input", "missing.csv"}, exitBadInput, "no such file"},
		{[]string{"run", "text.wasm", "--input", "bad.csv"}, exitBadInput, "bad.csv:3"},
		{[]string{"run", "text.wasm", "--input", "-", "--format", "json"}, exitBadInput, "invalid JSON"},
		// The manifest is read first (it says whether the module is a
		// WASI command), so its error comes before the input's.
		{[]string{"run", mod, "--manifest", "badman.toml", "--input", "bad.cbor", "--format", "json"}, exitBadInput, `badman.toml:2: field "version"`},
		{[]string{"inspect", "text.wasm"}, exitBadInput, "not a WebAssembly binary"},
		{[]string{"run", mod, "--input", "x.csv", "--entry", "nope"}, exitBadInput, "x.csv"},
		{[]string{"bench", "nosuchgroup"}, exitUsage, "unknown benchmark group"},
		{[]string{"run", mod, "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"vitals", "--patients", "-3"}, exitUsage, "vitals config: Patients must not be negative"},
		{[]string{"vitals", "--hours", "-1"}, exitUsage, "vitals config: Hours must not be negative"},
		// A format the command does not know is a usage error (exit 2),
		// told before the input is read; so is a negative device shard.
		{[]string{"run", mod, "--input", "bad.csv", "--format", "xml"}, exitUsage, `--format "xml": want csv, cbor or json`},
		{[]string{"vitals", "--device", "-5"}, exitUsage, "--device -5"},
		{[]string{"hub", "--nats", "nats://127.0.0.1:1"}, exitUsage, "--secret is required with --nats (no data directory)"},
	}
	for _, c := range cases {
		out, code := runFennec(t, dir, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("fennec %s: exit %d, %q; want exit %d saying %q", strings.Join(c.args, " "), code, out, c.code, c.want)
		}
	}
	// A bad manifest is named with its line and field.
	os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"records": []}`), 0o644)
	out, code := runFennec(t, dir, "run", mod, "--manifest", "badman.toml", "--input", "ok.json")
	if code != exitBadInput || !strings.Contains(out, `badman.toml:2: field "version"`) {
		t.Errorf("bad manifest: %d %q", code, out)
	}
	out, code = runFennec(t, dir, "run", "text.wasm", "--input", "ok.json")
	if code != exitBadInput || !strings.Contains(out, "not a WebAssembly binary") {
		t.Errorf("non-wasm module: %d %q", code, out)
	}
	out, code = runFennec(t, dir, "run", mod, "--input", "ok.json", "--entry", "nope")
	if code != exitFailure || !strings.Contains(out, "no such entrypoint") {
		t.Errorf("unknown entry: %d %q", code, out)
	}
}

// TestRunHostConfig: the operator's ceilings (--host-config) refuse a
// manifest that asks for more, naming the field; a bad host configuration
// is named with its file, line and field.
func TestRunHostConfig(t *testing.T) {
	dir := t.TempDir()
	mod := preprocessModule(t, dir)
	os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"records": []}`), 0o644)
	os.WriteFile(filepath.Join(dir, "small.toml"), []byte("[limits]\nmax_memory_pages = 64\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "roomy.toml"), []byte("[limits]\nmax_memory_pages = 4096\nmax_call_timeout = \"10s\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "typo.toml"), []byte("[limits]\nmax_call_timeout = \"10s\"\nmax_memroy_pages = 64\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "inverted.toml"), []byte("[limits]\nmax_call_timeout = \"1s\"\ndefault_call_timeout = \"5s\"\n"), 0o644)
	out, code := runFennec(t, dir, "--host-config", "roomy.toml", "run", mod, "--input", "ok.json", "--no-cache")
	if code != exitOK {
		t.Fatalf("within the ceilings: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		cfg, want string
	}{
		{"small.toml", "limits.memory_pages = 1024 (64 MiB) is above this host's ceiling of 64 (4 MiB)"},
		{"typo.toml", `typo.toml:3: field "limits.max_memroy_pages": unknown field`},
		{"inverted.toml", `inverted.toml:3: field "limits.default_call_timeout"`},
		{"missing.toml", "no such file"},
	} {
		out, code := runFennec(t, dir, "--host-config", c.cfg, "run", mod, "--input", "ok.json", "--no-cache")
		if code == exitOK || !strings.Contains(out, c.want) {
			t.Errorf("--host-config %s: exit %d, %q; want a failure saying %q", c.cfg, code, out, c.want)
		}
	}
}

// TestRunHEEncryptHasNoParty: a module calling he_encrypt in `fennec run`
// gets ESTATE with a message that says why: HE keys exist only on a
// federation device after its key setup, never in a standalone run.
func TestRunHEEncryptHasNoParty(t *testing.T) {
	wasm, err := guestbuild.Go(context.Background(), "testdata/heencrypt", guests.CacheDir())
	if errors.Is(err, guestbuild.ErrNoGo) {
		t.Skipf("cannot build guest modules here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile("testdata/heencrypt/fennec.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "heencrypt.wasm"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "heencrypt.toml"), man, 0o644)
	os.WriteFile(filepath.Join(dir, "in.json"), []byte(`{"values": [0.5, -0.25]}`), 0o644)
	out, code := runFennec(t, dir, "run", "heencrypt.wasm", "--input", "in.json", "--entry", "encrypt")
	t.Logf("exit %d:\n%s", code, out)
	if code == exitOK || !strings.Contains(out, "ESTATE") || !strings.Contains(out, "no homomorphic-encryption party on this host") ||
		!strings.Contains(out, "never in a standalone run") {
		t.Fatalf("fennec run of he_encrypt: exit %d, want ESTATE naming the missing HE party:\n%s", code, out)
	}
}
