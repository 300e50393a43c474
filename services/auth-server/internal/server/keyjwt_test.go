package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// keyJWTClient is a static private_key_jwt client id with redirect (its
// registry entry: resource BASE/actions, no consent, its RS256 key's JWKS)
// and assertion, which signs the client's assertion for aud with jti
// (iss and sub the client id, valid for a minute). Each extra is a raw
// JSON member (`"name":value`) written after those claims, in order — as
// a client crafting its own payload could, duplicate or case-varied names
// included.
func keyJWTClient(t *testing.T, id, redirect string) (registry string, assertion func(aud, jti string, extra ...string) string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	registry = fmt.Sprintf(`- client_id: %s
  redirect_uris: [%q]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  skip_consent: true
  jwks: %s
`, id, redirect, set)
	return registry, func(aud, jti string, extra ...string) string {
		now := time.Now()
		payload, err := json.Marshal(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{aud}, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))})
		if err != nil {
			t.Error(err)
			return ""
		}
		for _, m := range extra {
			payload = append(append(payload[:len(payload)-1], ','), m+"}"...)
		}
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Error(err)
			return ""
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Error(err)
		}
		return s
	}
}

// TestPrivateKeyJWTIssuerAudience: a client assertion whose aud is the
// issuer identifier authenticates at the token, introspection and
// revocation endpoints, as one naming the token endpoint does (RFC 7523
// §3: any value identifying the authorization server; oauth4webapi and
// openid-client send the issuer). An assertion for another audience — a
// different server, the issuer with a path or trailing slash — is still
// 401 invalid_client, whose description names both accepted values.
func TestPrivateKeyJWTIssuerAudience(t *testing.T) {
	redirect := "http://127.0.0.1:8979/pkj-iss-callback"
	registry, assertion := keyJWTClient(t, "pkj-iss", redirect)
	f := startFleetWith(t, nil, registry)
	c := devClient{ClientID: "pkj-iss", RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	signed := func(aud string) url.Values {
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(aud, rand.Text())}}
	}
	with := func(form, auth url.Values) url.Values {
		for k, v := range auth {
			form[k] = v
		}
		return form
	}
	a := newAuthRequest(c)
	code := f.authorize(a)
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
	// The description names both accepted values for what they are.
	hint := fmt.Sprintf("The client assertion's aud must be the token endpoint URL %s or the issuer identifier %s (RFC 7523 section 3).", f.Base+"/oauth/token", f.Base)
	for _, aud := range []string{"https://wrong.example", f.Base + "/", f.Base + "/oauth", f.Base + "/oauth/introspect"} {
		if r := f.token(c, with(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
			"code_verifier": {a.Verifier}}, signed(aud))); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || !strings.HasSuffix(r.Description, hint) {
			t.Errorf("aud %q: %d %s %q, want 401 invalid_client ending %q", aud, r.Status, r.Error, r.Description, hint)
		}
	}
	tr := f.token(c, with(exchange, signed(f.Base)))
	if tr.Status != http.StatusOK {
		t.Fatalf("code grant with aud = issuer: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	resp, body := f.post("/oauth/introspect", c, with(url.Values{"token": {tr.AccessToken}}, signed(f.Base)))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"active":true`) {
		t.Errorf("introspection with aud = issuer: %d %s", resp.StatusCode, body)
	}
	if r := f.token(c, with(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, signed(f.Base))); r.Status != http.StatusOK {
		t.Fatalf("refresh with aud = issuer: %d %s %s", r.Status, r.Error, r.Description)
	} else {
		tr = r
	}
	resp, body = f.post("/oauth/revoke", c, with(url.Values{"token": {tr.RefreshToken}}, signed(f.Base)))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("revocation with aud = issuer: %d %s", resp.StatusCode, body)
	}
	if r := f.token(c, with(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, signed(f.Base+"/oauth/token"))); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh after the revocation: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}
