package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runFennec runs the command line in dir and returns its output and the
// exit code main would use.
func runFennec(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return out.String(), exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return out.String() + err.Error(), ee.code
	}
	return out.String() + err.Error(), exitFailure
}

func TestModuleCommands(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fennec.toml"), []byte("name = \"hello\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"module", "keygen", "acme"}, exitOK, "publisher key acme: ed25519:"},
		{[]string{"module", "keygen", "ops", "--role", "operator"}, exitOK, "operator key ops"},
		{[]string{"module", "keygen", "bad name"}, exitUsage, "key name"},
		{[]string{"module", "pack", "--manifest", "fennec.toml", "--wasm", "m.wasm", "-o", "hello.fbundle"}, exitOK, "unsigned"},
		{[]string{"module", "verify", "hello.fbundle", "--trust", "trust.toml"}, exitFailure, "(unsigned)"},
		{[]string{"module", "sign", "hello.fbundle", "--key", "ops.key"}, exitBadInput, "only sign rollbacks"},
		{[]string{"module", "sign", "hello.fbundle", "--key", "acme.key"}, exitOK, "signed hello 1.0.0"},
		{[]string{"module", "verify", "hello.fbundle", "--trust", "trust.toml", "--audit", "audit.log"}, exitOK, `trusted publisher "acme"`},
		{[]string{"module", "verify", "hello.fbundle", "--trust", "trust.toml", "--running", "1.0.1", "--audit", "audit.log"}, exitFailure, "(downgrade)"},
		{[]string{"module", "sign", "hello.fbundle", "--key", "ops.key", "--rollback"}, exitOK, "authorised rollback"},
		{[]string{"module", "verify", "hello.fbundle", "--trust", "trust.toml", "--running", "1.0.1"}, exitOK, `rollback authorised by operator "ops"`},
		{[]string{"module", "inspect", "hello.fbundle", "--json"}, exitOK, `"kind": "rollback"`},
		{[]string{"module", "inspect", "fennec.toml"}, exitBadInput, "malformed bundle"},
		{[]string{"module", "pack", "--manifest", "m.wasm", "--wasm", "m.wasm", "-o", "x.fbundle"}, exitBadInput, "m.wasm"},
	}
	for i, s := range steps {
		if i == 4 { // the trust file, built from the .pub files
			acme, _ := os.ReadFile(filepath.Join(dir, "acme.pub"))
			ops, _ := os.ReadFile(filepath.Join(dir, "ops.pub"))
			os.WriteFile(filepath.Join(dir, "trust.toml"), []byte("[[publisher]]\n"+string(acme)+"\n[[operator]]\n"+string(ops)), 0o644)
		}
		out, code := runFennec(t, dir, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Fatalf("fennec %s: exit %d, output %q; want exit %d containing %q", strings.Join(s.args, " "), code, out, s.code, s.want)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
	if n := strings.Count(string(log), "\n"); n != 2 || !strings.Contains(string(log), `"decision":"refuse"`) {
		t.Fatalf("audit log:\n%s", log)
	}
}

// TestModulePackModel: --model ships a model in the bundle with its digest
// pinned in the bundle's manifest; a model the manifest does not grant and
// a malformed --model are refused.
func TestModulePackModel(t *testing.T) {
	dir := t.TempDir()
	model, err := os.ReadFile("../../hostfuncs/testdata/nn/add.onnx")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "add.onnx"), model, 0o644)
	os.WriteFile(filepath.Join(dir, "fennec.toml"), []byte("name = \"vad\"\nversion = \"1.0.0\"\nentrypoints = [\"run\"]\ncapabilities = [\"nn\"]\n\n[nn]\nmodels = [\"m\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	sum := sha256Hex(model)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"module", "pack", "--manifest", "fennec.toml", "--wasm", "m.wasm", "--model", "m=add.onnx", "-o", "vad.fbundle"}, exitOK, "model m: 94 bytes, sha256:" + sum},
		{[]string{"module", "inspect", "vad.fbundle"}, exitOK, `m = "` + sum + `"`},
		{[]string{"module", "inspect", "vad.fbundle"}, exitOK, "model:    m, 94 bytes"},
		{[]string{"module", "pack", "--manifest", "fennec.toml", "--wasm", "m.wasm", "--model", "other=add.onnx", "-o", "x.fbundle"}, exitBadInput, `model "other" is not granted`},
		{[]string{"module", "pack", "--manifest", "fennec.toml", "--wasm", "m.wasm", "--model", "add.onnx", "-o", "x.fbundle"}, exitUsage, "want NAME=FILE.onnx"},
		{[]string{"module", "pack", "--manifest", "fennec.toml", "--wasm", "m.wasm", "--model", "m=missing.onnx", "-o", "x.fbundle"}, exitBadInput, "missing.onnx"},
	}
	for _, s := range steps {
		out, code := runFennec(t, dir, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Fatalf("fennec %s: exit %d, output %q; want exit %d containing %q", strings.Join(s.args, " "), code, out, s.code, s.want)
		}
	}
}
