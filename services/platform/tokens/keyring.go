package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AccessTokenAlgorithms are the JWS algorithms the fleet signs access
// tokens with and verifiers accept: RS256 (the default) and ES256 (ECDSA
// P-256 with SHA-256, RFC 7518 §3.4), a few times cheaper to sign.
var AccessTokenAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// KeyRing holds the signing keys: RSA keys (RS256: ID tokens, and access
// tokens by default) and optionally ECDSA P-256 keys (ES256 access
// tokens). Several may be published, one of each kind signs. Rotation adds
// a key, makes it active, and retires the old one only after every token
// it signed has expired.
type KeyRing struct {
	keys     map[string]*rsa.PrivateKey
	ec       map[string]*ecdsa.PrivateKey
	active   string
	activeEC string
	signers  sync.Map // signerKey -> jose.Signer
}

type signerKey struct {
	alg jose.SignatureAlgorithm
	typ string
}

// MinKeyBits is the smallest RSA modulus accepted.
const MinKeyBits = 2048

// NewKeyRing builds a ring from RSA keys by kid; active must be one of them.
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
		return nil, fmt.Errorf("active signing key %q is not among the loaded RSA keys (%s)", active, strings.Join(sortedKeys(keys), ", "))
	}
	return &KeyRing{keys: keys, ec: map[string]*ecdsa.PrivateKey{}, active: active}, nil
}

// WithECKeys returns a ring that also holds ECDSA P-256 keys by kid, for
// ES256; active names the one that signs. Kids are unique across kinds.
func (r *KeyRing) WithECKeys(keys map[string]*ecdsa.PrivateKey, active string) (*KeyRing, error) {
	for kid, k := range keys {
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key %q: only P-256 EC keys are supported (ES256)", kid)
		}
		if _, dup := r.keys[kid]; dup {
			return nil, fmt.Errorf("signing key id %q names both an RSA and an EC key", kid)
		}
	}
	if len(keys) > 0 {
		if _, ok := keys[active]; !ok {
			return nil, fmt.Errorf("active ES256 signing key %q is not among the loaded EC keys (%s)", active, strings.Join(sortedKeys(keys), ", "))
		}
	} else {
		active = ""
	}
	return &KeyRing{keys: r.keys, ec: keys, active: r.active, activeEC: active}, nil
}

// LoadKeyDir reads every *.pem file of dir as a private key (PKCS#1 or
// PKCS#8 RSA, SEC 1 or PKCS#8 ECDSA P-256) whose kid is the file name
// without extension. active names the RSA signing key; when empty, the only
// RSA key, or else the newest file, signs. activeEC names the ES256 key
// likewise (empty: the newest EC key, if any).
func LoadKeyDir(dir, active string, activeEC ...string) (*KeyRing, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PrivateKey{}
	ecKeys := map[string]*ecdsa.PrivateKey{}
	var newest, newestEC string
	var newestTime, newestECTime time.Time
	for _, path := range matches {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		k, err := ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		kid := strings.TrimSuffix(filepath.Base(path), ".pem")
		fi, statErr := os.Stat(path)
		switch k := k.(type) {
		case *rsa.PrivateKey:
			keys[kid] = k
			if statErr == nil && (newest == "" || fi.ModTime().After(newestTime)) {
				newest, newestTime = kid, fi.ModTime()
			}
		case *ecdsa.PrivateKey:
			ecKeys[kid] = k
			if statErr == nil && (newestEC == "" || fi.ModTime().After(newestECTime)) {
				newestEC, newestECTime = kid, fi.ModTime()
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no *.pem RSA signing keys in %s (ID tokens are RS256)", dir)
	}
	if active == "" {
		active = newest
	}
	ring, err := NewKeyRing(keys, active)
	if err != nil {
		return nil, err
	}
	if len(activeEC) > 0 && activeEC[0] != "" {
		newestEC = activeEC[0]
	}
	return ring.WithECKeys(ecKeys, newestEC)
}

// ParseRSAPrivateKey decodes a PEM RSA private key.
func ParseRSAPrivateKey(b []byte) (*rsa.PrivateKey, error) {
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

// ParsePrivateKey decodes a PEM private key: RSA (PKCS#1 or PKCS#8) or
// ECDSA (SEC 1 "EC PRIVATE KEY" or PKCS#8). It returns *rsa.PrivateKey or
// *ecdsa.PrivateKey.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not an RSA or EC private key")
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T (RSA or ECDSA P-256)", k)
}

// EnsureDevKey creates dir/<kid>.pem with a fresh 2048-bit RSA key unless
// dir already holds an RSA key, and likewise a P-256 key for ES256. It is
// for development only; production mounts keys.
func EnsureDevKey(dir string) error {
	var hasRSA, hasEC bool
	m, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	for _, path := range m {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch k, _ := ParsePrivateKey(b); k.(type) {
		case *rsa.PrivateKey:
			hasRSA = true
		case *ecdsa.PrivateKey:
			hasEC = true
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	day := time.Now().UTC().Format("20060102")
	if !hasRSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		if err := writeKey(dir, "dev-"+day+"-"+Thumbprint(&k.PublicKey)[:8], k); err != nil {
			return err
		}
	}
	if !hasEC {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		if err := writeKey(dir, "dev-ec-"+day+"-"+Thumbprint(&k.PublicKey)[:8], k); err != nil {
			return err
		}
	}
	return nil
}

func writeKey(dir, kid string, k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, kid+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of pub (*rsa.PublicKey or
// *ecdsa.PublicKey), base64url.
func Thumbprint(pub crypto.PublicKey) string {
	tp, _ := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ActiveKeyID is the kid of the RSA key that signs RS256 tokens.
func (r *KeyRing) ActiveKeyID() string { return r.active }

// Active returns the RSA signing key.
func (r *KeyRing) Active() *rsa.PrivateKey { return r.keys[r.active] }

// RSAKeys returns the ring's RSA keys by kid, the active one among them
// (ActiveKeyID): a new map of the ring's own keys, which the caller must
// not modify.
func (r *KeyRing) RSAKeys() map[string]*rsa.PrivateKey { return maps.Clone(r.keys) }

// ActiveES256KeyID is the kid of the P-256 key that signs ES256 tokens, ""
// when the ring has none.
func (r *KeyRing) ActiveES256KeyID() string { return r.activeEC }

// Supports reports whether the ring can sign with alg.
func (r *KeyRing) Supports(alg jose.SignatureAlgorithm) bool {
	switch alg {
	case jose.RS256:
		return true
	case jose.ES256:
		return r.activeEC != ""
	}
	return false
}

// PublicJWKS is the key set published at /oauth/jwks: every key, public
// half only, each with its algorithm.
func (r *KeyRing) PublicJWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, kid := range sortedKeys(r.keys) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &r.keys[kid].PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	for _, kid := range sortedKeys(r.ec) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &r.ec[kid].PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
	}
	return set
}

// PublicJWKSJSON is PublicJWKS encoded.
func (r *KeyRing) PublicJWKSJSON() []byte {
	b, _ := json.Marshal(r.PublicJWKS())
	return b
}

// Sign signs claims (any JSON-encodable values, merged) with the active RSA
// key (RS256) and the given JOSE typ.
func (r *KeyRing) Sign(typ string, claims ...any) (string, error) {
	return r.SignWith(jose.RS256, typ, claims...)
}

// SignWith signs claims with the active key of alg (RS256 or ES256) and
// the given JOSE typ.
func (r *KeyRing) SignWith(alg jose.SignatureAlgorithm, typ string, claims ...any) (string, error) {
	signer, err := r.signer(alg, typ)
	if err != nil {
		return "", err
	}
	b := jwt.Signed(signer)
	for _, c := range claims {
		b = b.Claims(c)
	}
	return b.Serialize()
}

// signer returns a cached signer: the key and headers are fixed per
// (alg, typ), and go-jose signers are safe for concurrent use.
func (r *KeyRing) signer(alg jose.SignatureAlgorithm, typ string) (jose.Signer, error) {
	sk := signerKey{alg, typ}
	if s, ok := r.signers.Load(sk); ok {
		return s.(jose.Signer), nil
	}
	var kid string
	var key any
	switch alg {
	case jose.RS256:
		kid, key = r.active, r.keys[r.active]
	case jose.ES256:
		if r.activeEC == "" {
			return nil, errors.New("no ES256 (EC P-256) signing key loaded")
		}
		kid, key = r.activeEC, r.ec[r.activeEC]
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %s", alg)
	}
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, err
	}
	r.signers.Store(sk, s)
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
