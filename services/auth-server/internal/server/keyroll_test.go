package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// followingSource fetches the key set from the auth-server's gRPC port as
// it is now: the fleet's restarts bind a new one, as a Service that
// follows its pods would.
type followingSource struct{ f *fleet }

func (s followingSource) FetchKeySet(ctx context.Context) (tokens.KeySet, error) {
	conn, err := grpc.NewClient(s.f.AS.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return tokens.KeySet{}, err
	}
	defer conn.Close()
	return tokens.NewGRPCKeySource(conn).FetchKeySet(ctx)
}

func writeECKey(t *testing.T, dir, kid string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	writeFile(t, filepath.Join(dir, kid+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})))
}

// header is a compact JWS's protected header (alg, kid).
func header(t *testing.T, raw string) (alg, kid string) {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var hdr struct{ Alg, Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Alg, hdr.Kid
}

// withKid is raw with its header's kid replaced (the signature no longer
// matches; a verifier looks the kid up first).
func withKid(t *testing.T, raw, kid string) string {
	t.Helper()
	alg, _ := header(t, raw)
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": tokens.AccessTokenType})
	_, rest, _ := strings.Cut(raw, ".")
	return base64.RawURLEncoding.EncodeToString(h) + "." + rest
}

// keySetsAgree checks that /oauth/jwks, discovery and the KeySetService
// the verifiers use say the same: the same keys (kid, alg), the same
// issuer, and the JWKS where discovery points.
func keySetsAgree(t *testing.T, f *fleet) {
	t.Helper()
	ks, err := followingSource{f}.FetchKeySet(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal([]byte(get(t, f.Base+"/.well-known/openid-configuration")), &md); err != nil {
		t.Fatal(err)
	}
	if md.Issuer != ks.Issuer || md.JWKSURI != f.Base+"/oauth/jwks" {
		t.Errorf("discovery issuer %q, jwks_uri %q; KeySetService issuer %q", md.Issuer, md.JWKSURI, ks.Issuer)
	}
	var published jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(get(t, md.JWKSURI)), &published); err != nil {
		t.Fatal(err)
	}
	names := func(set jose.JSONWebKeySet) string {
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID+"/"+k.Algorithm)
		}
		return strings.Join(out, " ")
	}
	if names(published) != names(ks.Keys) {
		t.Errorf("/oauth/jwks publishes %s, the KeySetService %s", names(published), names(ks.Keys))
	}
}

// TestES256KeyRotationWithALongLivedVerifier follows
// docs/operations/key-rotation.md for the EC key of ES256 access tokens
// (SIGNING_KEY_ACTIVE_ES256) with one verifier that lives through every
// step, as an mcp-gateway or actions-api replica does: tokens of the old
// key verify until it is retired, the first token of the new key makes the
// verifier fetch the new set, ID tokens stay RS256 under the unchanged RSA
// key, /oauth/jwks, discovery and the KeySetService agree at each step,
// and once the old key is retired and the verifier has fetched the set
// without it, its tokens are refused even though it had verified (cached)
// them; refresh tokens survive and get tokens of the new key.
func TestES256KeyRotationWithALongLivedVerifier(t *testing.T) {
	f := startFleet(t, map[string]string{"ACCESS_TOKEN_SIGNING_ALG": "ES256"})
	c := f.Clients["local-test"]
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: followingSource{f}, Audiences: []string{c.Audience}, MinRefreshInterval: time.Millisecond})
	old := f.fullFlow(c, newAuthRequest(c))
	alg, oldKid := header(t, old.AccessToken)
	if alg != "ES256" {
		t.Fatalf("access token alg %s, want ES256", alg)
	}
	_, rsaKid := header(t, old.IDToken)
	if _, err := v.Verify(ctxT(t), old.AccessToken); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	keySetsAgree(t, f)
	keys := f.env["SIGNING_KEYS_DIR"]

	// Step 1: add the new EC key, keep the old one active.
	writeECKey(t, keys, "ec-2")
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE_ES256": oldKid})
	keySetsAgree(t, f)
	if tr := f.fullFlow(c, newAuthRequest(c)); func() string { _, k := header(t, tr.AccessToken); return k }() != oldKid {
		t.Fatalf("step 1 signs with the new key already")
	}

	// Step 3: activate it.
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE_ES256": "ec-2"})
	keySetsAgree(t, f)
	fresh := f.fullFlow(c, newAuthRequest(c))
	if alg, kid := header(t, fresh.AccessToken); alg != "ES256" || kid != "ec-2" {
		t.Fatalf("after activation the access token is %s under %q, want ES256 under ec-2", alg, kid)
	}
	if alg, kid := header(t, fresh.IDToken); alg != "RS256" || kid != rsaKid {
		t.Errorf("ID token %s under %q, want RS256 under the unchanged %q", alg, kid, rsaKid)
	}
	for name, tok := range map[string]string{"old": old.AccessToken, "new": fresh.AccessToken} {
		if _, err := v.Verify(ctxT(t), tok); err != nil {
			t.Errorf("%s token while both keys are published: %v", name, err)
		}
	}

	// Step 4: retire the old key.
	if err := os.Remove(filepath.Join(keys, oldKid+".pem")); err != nil {
		t.Fatal(err)
	}
	f.restart(map[string]string{"SIGNING_KEY_ACTIVE_ES256": ""})
	keySetsAgree(t, f)
	if jwks := get(t, f.Base+"/oauth/jwks"); strings.Contains(jwks, `"`+oldKid+`"`) {
		t.Fatalf("retired key still published: %s", jwks)
	}
	// The verifier learns the set at its routine refresh or at the next
	// unknown kid; the test sends one.
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(ctxT(t), withKid(t, fresh.AccessToken, "no-such-kid")); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("made-up kid: %v", err)
	}
	if _, err := v.Verify(ctxT(t), old.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "unknown kid") {
		t.Errorf("retired key's token, verified before: %v, want refused (unknown kid)", err)
	}
	if _, err := v.Verify(ctxT(t), fresh.AccessToken); err != nil {
		t.Errorf("new key's token after retirement: %v", err)
	}
	if st, _ := f.userinfo(old.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("userinfo with the retired key's token: %d, want 401", st)
	}
	r := f.refresh(c, old.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh token issued before the rotation: %d %s", r.Status, r.Error)
	}
	if _, kid := header(t, r.AccessToken); kid != "ec-2" {
		t.Errorf("refreshed access token under %q, want ec-2", kid)
	}
	if _, err := v.Verify(ctxT(t), r.AccessToken); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
}
