package tokens

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// KeyRing holds the RS256 signing keys: several may be published, one
// signs. Rotation adds a key, makes it active, and retires the old one only
// after every token it signed has expired.
type KeyRing struct {
	keys   map[string]*rsa.PrivateKey
	active string
}

// MinKeyBits is the smallest RSA modulus accepted.
const MinKeyBits = 2048

// NewKeyRing builds a ring from keys by kid; active must be one of them.
func NewKeyRing(keys map[string]*rsa.PrivateKey, active string) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing keys")
	}
	for kid, k := range keys {
		if k.N.BitLen() < MinKeyBits {
			return nil, fmt.Errorf("signing key %q has %d bits; at least %d are required", kid, k.N.BitLen(), MinKeyBits)
		}
	}
	if _, ok := keys[active]; !ok {
		return nil, fmt.Errorf("active signing key %q is not among the loaded keys (%s)", active, strings.Join(sortedKeys(keys), ", "))
	}
	return &KeyRing{keys: keys, active: active}, nil
}

// LoadKeyDir reads every *.pem file of dir as an RSA private key (PKCS#1 or
// PKCS#8) whose kid is the file name without extension. active names the
// signing key; when empty, the only key, or else the newest file, signs.
func LoadKeyDir(dir, active string) (*KeyRing, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PrivateKey{}
	var newest string
	var newestTime time.Time
	for _, path := range matches {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		k, err := ParseRSAPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		kid := strings.TrimSuffix(filepath.Base(path), ".pem")
		keys[kid] = k
		if fi, err := os.Stat(path); err == nil && (newest == "" || fi.ModTime().After(newestTime)) {
			newest, newestTime = kid, fi.ModTime()
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no *.pem signing keys in %s", dir)
	}
	if active == "" {
		active = newest
	}
	return NewKeyRing(keys, active)
}

// ParseRSAPrivateKey decodes a PEM RSA private key.
func ParseRSAPrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not an RSA private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

// EnsureDevKey creates dir/<kid>.pem with a fresh 2048-bit key unless dir
// already holds a key. It is for development only; production mounts keys.
func EnsureDevKey(dir string) error {
	if m, _ := filepath.Glob(filepath.Join(dir, "*.pem")); len(m) > 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	kid := "dev-" + time.Now().UTC().Format("20060102") + "-" + Thumbprint(&k.PublicKey)[:8]
	return os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of pub, base64url.
func Thumbprint(pub *rsa.PublicKey) string {
	tp, _ := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ActiveKeyID is the kid that signs new tokens.
func (r *KeyRing) ActiveKeyID() string { return r.active }

// Active returns the signing key.
func (r *KeyRing) Active() *rsa.PrivateKey { return r.keys[r.active] }

// PublicJWKS is the key set published at /oauth/jwks: every key, public half only.
func (r *KeyRing) PublicJWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, kid := range sortedKeys(r.keys) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &r.keys[kid].PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set
}

// PublicJWKSJSON is PublicJWKS encoded.
func (r *KeyRing) PublicJWKSJSON() []byte {
	b, _ := json.Marshal(r.PublicJWKS())
	return b
}

// Sign signs claims (any JSON-encodable values, merged) with the active key
// and the given JOSE typ.
func (r *KeyRing) Sign(typ string, claims ...any) (string, error) {
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), r.active)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: r.keys[r.active]}, opts)
	if err != nil {
		return "", err
	}
	b := jwt.Signed(signer)
	for _, c := range claims {
		b = b.Claims(c)
	}
	return b.Serialize()
}

func sortedKeys(m map[string]*rsa.PrivateKey) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
