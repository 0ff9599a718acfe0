package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/internal/config"
)

// Role says what a key is for. A publisher key vouches for a bundle's
// content; an operator key authorises a rollback to an older version.
type Role string

const (
	RolePublisher Role = "publisher"
	RoleOperator  Role = "operator"
)

func (r Role) valid() bool { return r == RolePublisher || r == RoleOperator }

const (
	pubPrefix  = "ed25519:"
	seedPrefix = "ed25519-seed:"
	// maxKeyFile bounds key and trust files read from disk.
	maxKeyFile = 1 << 20
)

// PublicKey is a named Ed25519 public key.
type PublicKey struct {
	Name string
	Role Role
	Key  ed25519.PublicKey
}

// PrivateKey is a named Ed25519 signing key.
type PrivateKey struct {
	Name string
	Role Role
	Key  ed25519.PrivateKey
}

// Public returns the public half of k.
func (k *PrivateKey) Public() PublicKey {
	return PublicKey{Name: k.Name, Role: k.Role, Key: k.Key.Public().(ed25519.PublicKey)}
}

// FormatKey renders a public key as "ed25519:BASE64", the form used in key
// and trust files.
func FormatKey(pub ed25519.PublicKey) string {
	return pubPrefix + base64.StdEncoding.EncodeToString(pub)
}

// Fingerprint is a short, stable identifier of a public key for messages
// and audit records: the first 8 bytes of its SHA-256, in hex.
func Fingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// ParseKey parses "ed25519:BASE64".
func ParseKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(s, pubPrefix)
	if !ok {
		return nil, fmt.Errorf("key %q does not start with %q", abbrev(s), pubPrefix)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("key is not valid base64: %v", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func abbrev(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// validName reports whether s can name a key, device or group: 1-64 bytes
// of [A-Za-z0-9_-]. The same alphabet is safe in file names and NATS
// subject tokens.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// GenerateKey creates a new signing key.
func GenerateKey(name string, role Role) (*PrivateKey, error) {
	if !validName(name) {
		return nil, fmt.Errorf("key name %q: want 1-64 characters of A-Z a-z 0-9 _ -", name)
	}
	if !role.valid() {
		return nil, fmt.Errorf("role %q: want %q or %q", role, RolePublisher, RoleOperator)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{Name: name, Role: role, Key: priv}, nil
}

type keyFile struct {
	Name   string `toml:"name"`
	Role   string `toml:"role"`
	Key    string `toml:"key"`
	Secret string `toml:"secret,omitempty"`
}

// WriteKeyFiles writes k to dir as NAME.key (mode 0600, secret) and
// NAME.pub (mode 0644, the public key to put in devices' trust files). It
// refuses to overwrite an existing key file.
func WriteKeyFiles(dir string, k *PrivateKey) (keyPath, pubPath string, err error) {
	keyPath = filepath.Join(dir, k.Name+".key")
	pubPath = filepath.Join(dir, k.Name+".pub")
	if _, err := os.Lstat(keyPath); err == nil {
		return "", "", fmt.Errorf("%s already exists; refusing to overwrite a key", keyPath)
	}
	pub := k.Public()
	var priv, pubb bytes.Buffer
	fmt.Fprintf(&priv, "# fennec %s signing key %q. Keep this file secret.\n", k.Role, k.Name)
	fmt.Fprintf(&pubb, "# fennec %s public key %q. Add it to devices' trust files as a [[%s]] entry.\n", k.Role, k.Name, k.Role)
	if err := toml.NewEncoder(&priv).Encode(keyFile{Name: k.Name, Role: string(k.Role), Key: FormatKey(pub.Key),
		Secret: seedPrefix + base64.StdEncoding.EncodeToString(k.Key.Seed())}); err != nil {
		return "", "", err
	}
	if err := toml.NewEncoder(&pubb).Encode(keyFile{Name: k.Name, Role: string(k.Role), Key: FormatKey(pub.Key)}); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(keyPath, priv.Bytes(), 0o600); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(pubPath, pubb.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

func readSmall(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > maxKeyFile {
		return nil, nil, fmt.Errorf("%s: %d bytes is too large", path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, fi, nil
}

func decodeKeyFile(data []byte, path string) (keyFile, error) {
	var kf keyFile
	md, err := config.DecodeTOML(data, path, &kf)
	if err != nil {
		return kf, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return kf, fmt.Errorf("%s:%d: unknown field %q", path, locate(data, "", -1, u[0].String()), u[0].String())
	}
	if !validName(kf.Name) {
		return kf, fmt.Errorf("%s:%d: name %q: want 1-64 characters of A-Z a-z 0-9 _ -", path, locate(data, "", -1, "name"), kf.Name)
	}
	if !Role(kf.Role).valid() {
		return kf, fmt.Errorf("%s:%d: role %q: want %q or %q", path, locate(data, "", -1, "role"), kf.Role, RolePublisher, RoleOperator)
	}
	return kf, nil
}

// LoadPrivateKey reads a NAME.key file. It refuses a file that group or
// others can read or write, as ssh does.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	data, fi, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %04o are too open; a signing key must be private (chmod 600)", path, fi.Mode().Perm())
	}
	kf, err := decodeKeyFile(data, path)
	if err != nil {
		return nil, err
	}
	rest, ok := strings.CutPrefix(kf.Secret, seedPrefix)
	if !ok {
		return nil, fmt.Errorf("%s:%d: secret: missing or not %q…; is this a .pub file?", path, locate(data, "", -1, "secret"), seedPrefix)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s:%d: secret: want %d bytes of base64", path, locate(data, "", -1, "secret"), ed25519.SeedSize)
	}
	k := &PrivateKey{Name: kf.Name, Role: Role(kf.Role), Key: ed25519.NewKeyFromSeed(seed)}
	if kf.Key != "" {
		pub, err := ParseKey(kf.Key)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: key: %v", path, locate(data, "", -1, "key"), err)
		}
		if !pub.Equal(k.Key.Public()) {
			return nil, fmt.Errorf("%s:%d: key does not match secret", path, locate(data, "", -1, "key"))
		}
	}
	return k, nil
}

// LoadPublicKey reads a NAME.pub (or NAME.key) file's public key.
func LoadPublicKey(path string) (PublicKey, error) {
	data, _, err := readSmall(path)
	if err != nil {
		return PublicKey{}, err
	}
	kf, err := decodeKeyFile(data, path)
	if err != nil {
		return PublicKey{}, err
	}
	pub, err := ParseKey(kf.Key)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s:%d: key: %v", path, locate(data, "", -1, "key"), err)
	}
	return PublicKey{Name: kf.Name, Role: Role(kf.Role), Key: pub}, nil
}

// locate returns the 1-based line of field inside the idx-th (0-based)
// [[table]] of a TOML document (idx -1: any), the table header's line if
// field is empty or absent, or 0 if not found. It is a line scanner, not a
// parser: good enough to point a person at the right line of the small,
// flat files used here (key and trust files).
func locate(src []byte, table string, idx int, field string) int {
	cur, n, header := "", -1, 0
	for i, line := range strings.Split(string(src), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "[") {
			name := strings.TrimSpace(strings.Trim(l, "[]"))
			cur = name
			if name == table {
				n++
				if n == idx || (idx < 0 && header == 0) {
					header = i + 1
				}
			}
			continue
		}
		if cur != table || (idx >= 0 && n != idx) {
			continue
		}
		if field == "" {
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == field {
			return i + 1
		}
	}
	return header
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
