package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With an nkey, the agent refuses a hub that is not on this machine
// without TLS, naming the way out; --allow-plaintext is the explicit way.
// The rollout server refuses to listen on the network in plaintext.
func TestPlaintextRefused(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(p("d.creds"), []byte("d:00112233445566778899aabbccddeeff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runFennec(t, dir, "deploy", "nkey", p("d.nk")); code != exitOK {
		t.Fatalf("nkey: %s", out)
	}
	for _, link := range [][]string{{"--hub", "nats://192.0.2.1:4222"}, {"--leaf", "nats-leaf://192.0.2.1:7422", "--leaf-dir", p("leaf")}} {
		args := append(append([]string{"agent"}, link...), "--creds", p("d.creds"), "--nkey", p("d.nk"), "--module", p("m.wasm"), "--data", p("d.csv"))
		out, code := runFennec(t, dir, args...)
		if code != exitUsage || !strings.Contains(out, "--allow-plaintext") || !strings.Contains(out, "192.0.2.1") {
			t.Errorf("agent %v: exit %d:\n%s", link, code, out)
		}
	}
	if err := os.WriteFile(p("access.toml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runFennec(t, dir, "deploy", "server", "--access", p("access.toml"), "--dir", p("srv"), "--listen", "0.0.0.0:0")
	if code == exitOK || !strings.Contains(out, "plaintext") || !strings.Contains(out, "--allow-plaintext") {
		t.Errorf("deploy server on 0.0.0.0 without TLS: exit %d:\n%s", code, out)
	}
}
