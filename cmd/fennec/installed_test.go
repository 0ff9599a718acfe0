package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fennec-edge/fennec/internal/guests"
)

// asMainEnv makes the test binary run fennec's main instead of the tests
// (TestMain), so a test can run "the installed binary" as a separate process
// without paying for a go build and link: the test binary is the fennec main
// package with the same embedded files.
const asMainEnv = "FENNEC_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestInstalledBinary runs the fennec binary (this test binary, as main) as
// a user who installed it with `go install` does: from a directory outside
// any source tree, with FENNEC_SRC unset, no Go toolchain (nor anything
// else) on PATH, an empty home and cache, and GOFLAGS and GOROOT pointing
// nowhere. The demo must run on the prebuilt guests the binary carries, and
// `fennec guests build --out` must write them, digests as recorded.
func TestInstalledBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a demo in a separate process; skipped with -short")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home, work, emptyPath := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{asMainEnv + "=1", "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "PATH=" + emptyPath, "GOFLAGS=-modfile=/nonexistent/go.mod", "GOROOT=/nonexistent"}
	fennec := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = work, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("fennec %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	out := fennec("demo", "--rounds", "2", "--devices", "3", "--patients", "4")
	if !strings.Contains(out, "(prebuilt,") || !strings.Contains(out, "round   2/2") || !strings.Contains(out, "summary") {
		t.Fatalf("demo from the installed binary:\n%s", out)
	}

	out = fennec("guests", "build", "--out", "g")
	if !strings.Contains(out, "no fennec source tree") {
		t.Fatalf("guests build does not say why it wrote the prebuilt copies:\n%s", out)
	}
	ix, err := guests.PrebuiltIndex()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range guests.Names() {
		if !guests.HasPrebuilt(name) {
			continue // built from a source tree only, until prebuilt/ is regenerated
		}
		wasm, err := os.ReadFile(filepath.Join(work, "g", name+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(work, "g", name+".toml")); err != nil {
			t.Fatal(err)
		}
		e, _ := ix.Find(name)
		if sum := sha256.Sum256(wasm); hex.EncodeToString(sum[:]) != e.SHA256 {
			t.Fatalf("%s written with sha256 %x, recorded %s", name, sum, e.SHA256)
		}
	}
}
