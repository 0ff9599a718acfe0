package dashboard

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/fennec-edge/fennec/deploy"
)

// An operator token is "fennec1.PAYLOAD.SIG": PAYLOAD is the base64url
// JSON of a TokenClaims, SIG the base64url Ed25519 signature of
// tokenDomain + PAYLOAD by the operator's nkey (the key of its entry in
// the access file). The dashboard verifies it with the public nkey it
// already has; it stores no token and no secret.
const (
	tokenPrefix = "fennec1."
	tokenDomain = "fennec-dashboard-token-v1\n"
	// MaxTokenTTL bounds a token's lifetime: a token that claims to live
	// longer is refused, so a leaked one is useful for a day at most.
	MaxTokenTTL = 24 * time.Hour
	// maxToken bounds the Authorization header the dashboard parses.
	maxToken = 1024
	// clockSkew is how far in the future a token's issue time may be.
	clockSkew = time.Minute
)

// TokenClaims are what an operator token asserts.
type TokenClaims struct {
	Operator string `json:"op"`
	// Audience names the dashboard the token is for ("fennec-dashboard:"
	// + the federation name): a token for one fleet's dashboard is
	// refused by another's with the same operator.
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"` // Unix seconds
	Expires  int64  `json:"exp"` // Unix seconds
}

// Audience is the audience of the dashboard of federation name.
func Audience(name string) string { return "fennec-dashboard:" + name }

// SignToken makes operator's token for audience, valid for ttl (at most
// MaxTokenTTL), signed with the nkey seed in seedFile (`fennec deploy
// nkey` writes one; the file must be private).
func SignToken(seedFile, operator, audience string, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", fmt.Errorf("token lifetime %v: want more than 0 and at most %v", ttl, MaxTokenTTL)
	}
	fi, err := os.Stat(seedFile)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: permissions %04o are too open; a credential must be private (chmod 600)", seedFile, fi.Mode().Perm())
	}
	if fi.Size() > 4096 {
		return "", fmt.Errorf("%s: %d bytes is not an nkey seed file", seedFile, fi.Size())
	}
	data, err := os.ReadFile(seedFile)
	if err != nil {
		return "", err
	}
	var kp nkeys.KeyPair
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "SU") {
			if kp, err = nkeys.FromSeed([]byte(line)); err != nil {
				return "", fmt.Errorf("%s: %w", seedFile, err)
			}
			break
		}
	}
	if kp == nil {
		return "", fmt.Errorf("%s: no user nkey seed (SU...)", seedFile)
	}
	defer kp.Wipe()
	return signToken(kp, TokenClaims{Operator: operator, Audience: audience, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix()})
}

func signToken(kp nkeys.KeyPair, c TokenClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	sig, err := kp.Sign([]byte(tokenDomain + p))
	if err != nil {
		return "", err
	}
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// errToken is every refusal of a token: the client learns only that it is
// not accepted (the log says why).
var errToken = errors.New("token not accepted")

// verifyToken checks tok against the operators of acc for audience at
// now, and returns the operator's entry.
func verifyToken(acc *deploy.Access, audience, tok string, now time.Time) (deploy.OperatorAccess, error) {
	var none deploy.OperatorAccess
	if len(tok) > maxToken || !strings.HasPrefix(tok, tokenPrefix) {
		return none, fmt.Errorf("%w: not a fennec1 token", errToken)
	}
	p, s, ok := strings.Cut(tok[len(tokenPrefix):], ".")
	if !ok {
		return none, fmt.Errorf("%w: malformed", errToken)
	}
	b64 := base64.RawURLEncoding.Strict()
	payload, err := b64.DecodeString(p)
	if err != nil {
		return none, fmt.Errorf("%w: payload: %v", errToken, err)
	}
	sig, err := b64.DecodeString(s)
	if err != nil || len(sig) != 64 {
		return none, fmt.Errorf("%w: signature encoding", errToken)
	}
	var c TokenClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return none, fmt.Errorf("%w: claims", errToken)
	}
	op, ok := acc.Operator(c.Operator)
	if !ok {
		return none, fmt.Errorf("%w: operator %q is not in the access file", errToken, c.Operator)
	}
	pub, err := nkeys.FromPublicKey(op.Nkey)
	if err != nil {
		return none, fmt.Errorf("%w: operator %q: %v", errToken, c.Operator, err)
	}
	if err := pub.Verify([]byte(tokenDomain+p), sig); err != nil {
		return none, fmt.Errorf("%w: signature of operator %q: %v", errToken, c.Operator, err)
	}
	switch {
	case c.Audience != audience:
		return none, fmt.Errorf("%w: audience %q, this dashboard is %q", errToken, c.Audience, audience)
	case now.Unix() >= c.Expires:
		return none, fmt.Errorf("%w: expired at %s", errToken, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	case time.Unix(c.IssuedAt, 0).After(now.Add(clockSkew)):
		return none, fmt.Errorf("%w: issued in the future", errToken)
	case c.Expires-c.IssuedAt > int64(MaxTokenTTL/time.Second):
		return none, fmt.Errorf("%w: lifetime above %v", errToken, MaxTokenTTL)
	}
	return op, nil
}
