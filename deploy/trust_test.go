package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testWasm = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

func manifest(name, version string) []byte {
	return []byte("name = \"" + name + "\"\nversion = \"" + version + "\"\nentrypoints = [\"run\"]\n")
}

func mustKey(t testing.TB, name string, role Role) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(name, role)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPack(t testing.TB, name, version string, signers ...*PrivateKey) *Bundle {
	t.Helper()
	b, err := Pack(manifest(name, version), testWasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range signers {
		if err := b.Sign(k, k.Role == RoleOperator); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func trustOf(pubs []*PrivateKey, ops []*PrivateKey) *Trust {
	t := &Trust{}
	for _, k := range pubs {
		t.Publishers = append(t.Publishers, TrustedKey{Name: k.Name, Key: k.Public().Key})
	}
	for _, k := range ops {
		t.Operators = append(t.Operators, TrustedKey{Name: k.Name, Key: k.Public().Key})
	}
	return t
}

func TestVerifyDecisions(t *testing.T) {
	pub := mustKey(t, "acme", RolePublisher)
	other := mustKey(t, "mallory", RolePublisher)
	ops := mustKey(t, "ops", RoleOperator)
	rogueOps := mustKey(t, "rogue-ops", RoleOperator)
	trust := trustOf([]*PrivateKey{pub}, []*PrivateKey{ops})
	run := Running{Name: "m", Version: "1.2.0", Digest: "00"}

	signed := mustPack(t, "m", "1.3.0", pub)
	signedRaw, _ := signed.Encode()

	// Tampered: different content under the original digest and signatures.
	forged, _ := Pack(manifest("m", "1.3.0"), append(append([]byte(nil), testWasm...), 0x00))
	forged.env.Digest = signed.env.Digest
	forged.env.Signatures = signed.env.Signatures
	forgedRaw, _ := forged.Encode()

	// Re-digested but not re-signed: signature no longer verifies.
	resealed, _ := Pack(manifest("m", "1.3.0"), append(append([]byte(nil), testWasm...), 0x01))
	resealed.env.Signatures = signed.env.Signatures
	resealedRaw, _ := resealed.Encode()

	byOther, _ := mustPack(t, "m", "1.3.0", other).Encode()
	unsigned, _ := mustPack(t, "m", "1.3.0").Encode()
	onlyRollback, _ := mustPack(t, "m", "1.3.0", ops).Encode()
	older, _ := mustPack(t, "m", "1.1.0", pub).Encode()
	same, _ := mustPack(t, "m", "1.2.0", pub).Encode()
	preRelease, _ := mustPack(t, "m", "1.2.0-rc.1", pub).Encode()
	rollback, _ := mustPack(t, "m", "1.1.0", pub, ops).Encode()
	rogueRollback, _ := mustPack(t, "m", "1.1.0", pub, rogueOps).Encode()
	otherModule, _ := mustPack(t, "n", "0.1.0", pub).Encode()

	cases := []struct {
		name   string
		raw    []byte
		run    Running
		reason string // "" = accepted
		check  func(*Verified) bool
	}{
		{"good upgrade", signedRaw, run, "", func(v *Verified) bool { return v.Publisher == "acme" && !v.Rollback }},
		{"first install", older, Running{}, "", nil},
		{"other module, older number", otherModule, run, "", nil},
		{"malformed", []byte("not cbor"), run, ReasonMalformed, nil},
		{"tampered content", forgedRaw, run, ReasonTampered, nil},
		{"re-digested, not re-signed", resealedRaw, run, ReasonBadSignature, nil},
		{"unsigned", unsigned, run, ReasonUnsigned, nil},
		{"only an operator rollback signature", onlyRollback, run, ReasonUnsigned, nil},
		{"untrusted key", byOther, run, ReasonUntrusted, nil},
		{"older version", older, run, ReasonDowngrade, nil},
		{"same version, other content", same, run, ReasonDowngrade, nil},
		{"pre-release of running version", preRelease, run, ReasonDowngrade, nil},
		{"operator rollback", rollback, run, "", func(v *Verified) bool { return v.Rollback && v.Operator == "ops" }},
		{"rollback by untrusted operator", rogueRollback, run, ReasonDowngrade, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := trust.VerifyBytes(c.raw, Limits{}, c.run)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.check != nil && !c.check(v) {
					t.Fatalf("unexpected verdict %+v", v)
				}
				return
			}
			r, ok := IsRefused(err)
			if !ok || r != c.reason {
				t.Fatalf("got %v, want refusal %q", err, c.reason)
			}
			if len(err.Error()) < 40 {
				t.Fatalf("reason too terse: %v", err)
			}
		})
	}
}

func TestVerifySameDigest(t *testing.T) {
	pub := mustKey(t, "acme", RolePublisher)
	b := mustPack(t, "m", "1.0.0", pub)
	v, err := trustOf([]*PrivateKey{pub}, nil).Verify(b, Running{Name: "m", Version: "1.0.0", Digest: b.Digest()})
	if err != nil || !v.Same {
		t.Fatalf("re-delivery of the running bundle: %+v, %v", v, err)
	}
}

func TestRollbackSignatureBadAfterTamper(t *testing.T) {
	pub := mustKey(t, "acme", RolePublisher)
	ops := mustKey(t, "ops", RoleOperator)
	b := mustPack(t, "m", "1.0.0", pub, ops)
	b.env.Signatures[1].Sig[0] ^= 1
	_, err := trustOf([]*PrivateKey{pub}, []*PrivateKey{ops}).Verify(b, Running{Name: "m", Version: "2.0.0"})
	if r, _ := IsRefused(err); r != ReasonDowngrade || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("got %v", err)
	}
}

func TestModuleRestriction(t *testing.T) {
	pub := mustKey(t, "acme", RolePublisher)
	tr := trustOf([]*PrivateKey{pub}, nil)
	tr.Publishers[0].Modules = []string{"classifier"}
	if _, err := tr.Verify(mustPack(t, "classifier", "1.0.0", pub), Running{}); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Verify(mustPack(t, "other", "1.0.0", pub), Running{})
	if r, _ := IsRefused(err); r != ReasonUntrusted || !strings.Contains(err.Error(), "not trusted for module") {
		t.Fatalf("got %v", err)
	}
}

func TestSignRoles(t *testing.T) {
	b := mustPack(t, "m", "1.0.0")
	if err := b.Sign(mustKey(t, "p", RolePublisher), true); err == nil {
		t.Fatal("a publisher key signed a rollback")
	}
	if err := b.Sign(mustKey(t, "o", RoleOperator), false); err == nil {
		t.Fatal("an operator key signed content")
	}
	k := mustKey(t, "p", RolePublisher)
	b.Sign(k, false)
	b.Sign(k, false)
	if len(b.Signatures()) != 1 {
		t.Fatal("re-signing with the same key must replace, not add")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k := mustKey(t, "acme", RolePublisher)
	kp, pp, err := WriteKeyFiles(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(kp); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	got, err := LoadPrivateKey(kp)
	if err != nil || !got.Key.Equal(k.Key) || got.Name != "acme" || got.Role != RolePublisher {
		t.Fatalf("load: %+v %v", got, err)
	}
	pub, err := LoadPublicKey(pp)
	if err != nil || !pub.Key.Equal(k.Public().Key) {
		t.Fatalf("load pub: %v", err)
	}
	if _, _, err := WriteKeyFiles(dir, k); err == nil {
		t.Fatal("overwrote an existing key")
	}
	os.Chmod(kp, 0o644)
	if _, err := LoadPrivateKey(kp); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if _, err := LoadPrivateKey(pp); err == nil {
		t.Fatal("a .pub file loaded as a private key")
	}
}

func TestParseTrustErrors(t *testing.T) {
	k := FormatKey(mustKey(t, "a", RolePublisher).Public().Key)
	cases := []struct{ name, src, want string }{
		{"syntax", "[[publisher]\n", "trust.toml:2: expected end of table array"},
		{"no publishers", "", "no [[publisher]] keys"},
		{"unknown field", "[[publisher]]\nname = \"a\"\nkey = \"" + k + "\"\ncolour = 1\n", "trust.toml:4: unknown field \"publisher.colour\""},
		{"bad name", "[[publisher]]\nname = \"a b\"\nkey = \"" + k + "\"\n", "trust.toml:2: publisher[0].name"},
		{"missing key", "[[publisher]]\nname = \"a\"\n", "trust.toml:1: publisher[0].key: missing"},
		{"bad key", "[[publisher]]\nname = \"a\"\nkey = \"" + k + "\"\n\n[[publisher]]\nname = \"b\"\nkey = \"ed25519:AAAA\"\n", "trust.toml:7: publisher[1].key: key is 3 bytes"},
		{"dup key", "[[publisher]]\nname = \"a\"\nkey = \"" + k + "\"\n[[publisher]]\nname = \"b\"\nkey = \"" + k + "\"\n", "trust.toml:6: publisher[1].key: same key as publisher \"a\""},
		{"empty modules", "[[publisher]]\nname = \"a\"\nkey = \"" + k + "\"\nmodules = []\n", "trust.toml:4: publisher[0].modules"},
		{"wrong role", "[[publisher]]\nname = \"a\"\nrole = \"operator\"\nkey = \"" + k + "\"\n", "trust.toml:3: publisher[0].role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTrust([]byte(c.src), "trust.toml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestTrustFileFromPub(t *testing.T) {
	// The body of a .pub file, pasted under [[publisher]], is a valid entry.
	dir := t.TempDir()
	k := mustKey(t, "acme", RolePublisher)
	_, pp, _ := WriteKeyFiles(dir, k)
	body, _ := os.ReadFile(pp)
	tp := filepath.Join(dir, "trust.toml")
	os.WriteFile(tp, append([]byte("[[publisher]]\n"), body...), 0o644)
	tr, err := LoadTrust(tp)
	if err != nil || len(tr.Publishers) != 1 || tr.Publishers[0].Name != "acme" {
		t.Fatalf("%+v %v", tr, err)
	}
}

func FuzzParseTrust(f *testing.F) {
	f.Add([]byte("[[publisher]]\nname = \"a\"\nkey = \"ed25519:AAAA\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseTrust(b, "fuzz")
	})
}

func FuzzDecodeBundle(f *testing.F) {
	raw, _ := mustPack(f, "m", "1.0.0", mustKey(f, "a", RolePublisher)).Encode()
	f.Add(raw)
	tr := trustOf([]*PrivateKey{mustKey(f, "b", RolePublisher)}, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr.VerifyBytes(b, Limits{MaxBundle: 1 << 20}, Running{Name: "m", Version: "1.0.0"})
	})
}
