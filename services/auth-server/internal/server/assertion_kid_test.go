package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestAssertionUnknownKidIsInvalidClient: over real HTTP and Redis, a
// private_key_jwt client whose set holds kid "k1", and assertions signed
// with its key but naming a kid the set does not hold (a kid never
// published, "K1" (kids compare exactly), one of 10,000 bytes), at the token,
// revocation and introspection endpoints: each is 401 invalid_client
// (RFC 6749 §5.2, RFC 7523 §3.2: the client failed to authenticate),
// audited as a client_authentication_failure, and the description names
// the kid cut to a few hundred bytes; before, the token endpoint answered
// 400 invalid_request, audited as a refused grant. The assertion naming
// "k1" authenticates (the refresh token is then refused: invalid_grant).
func TestAssertionUnknownKidIsInvalidClient(t *testing.T) {
	const id = "pkj-kid"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	registry := fmt.Sprintf(`- client_id: %s
  redirect_uris: ["http://127.0.0.1:8979/cb"]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  skip_consent: true
  jwks: %s
`, id, set)
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, registry)
	assertion := func(kid string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{f.Base + "/oauth/token"}, ID: rand.Text(),
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	n := 0
	call := func(path, kid string) (tokenResponse, string) {
		form := badRefresh()
		if path != "/oauth/token" {
			form = map[string][]string{"token": {"unknown-" + rand.Text()}}
		}
		form.Set("client_id", id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion(kid))
		n++
		addr := fmt.Sprintf("198.51.100.%d", n)
		return f.clientCall(clientReq{Path: path, Form: form, ForwardFor: addr}), addr
	}
	long := strings.Repeat("k", 10000)
	for _, path := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
		endpoint := strings.TrimPrefix(path, "/oauth/")
		for _, kid := range []string{"not-published", "K1", long} {
			r, addr := call(path, kid)
			want := "kid '" + kid
			if len(want) > 100 {
				want = want[:100]
			}
			if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || !strings.Contains(r.Description, want) || len(r.Description) > 600 {
				t.Errorf("%s, kid %.20q: %d %s %.300q (%d bytes), want 401 invalid_client naming the kid in at most 600 bytes", path, kid, r.Status, r.Error, r.Description, len(r.Description))
			}
			if e := findEvent(auditEvents(t, f), map[string]any{"event": "client_authentication_failure", "client_address": addr, "endpoint": endpoint}); e == nil {
				t.Errorf("%s, kid %.20q: no client_authentication_failure record; records: %v", path, kid, eventsFrom(t, f, addr))
			}
		}
	}
	if r, _ := call("/oauth/token", "k1"); r.Error != "invalid_grant" {
		t.Errorf("the published kid: %d %s %q, want invalid_grant (authenticated)", r.Status, r.Error, r.Description)
	}
}
