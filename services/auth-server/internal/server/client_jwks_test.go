package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/services/auth-server/internal/server"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
)

// ecOnlyJWKS is a JWK set whose one key is a P-256 signing key: no
// RS256 client assertion (the only algorithm accepted) verifies with it.
func ecOnlyJWKS(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "ec", Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRegistryRefusesUnusableJWKS: a private_key_jwt client of the
// registry file whose jwks holds no RS256-usable key stops the server at
// start-up, naming the client and the key; before, it started and every
// assertion of the client was invalid_client.
func TestRegistryRefusesUnusableJWKS(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/clients.yaml"
	writeFile(t, path, `clients:
- client_id: ec-partner
  redirect_uris: ["https://partner.example/cb"]
  token_endpoint_auth_method: private_key_jwt
  resources: ["https://mcp.example/mcp"]
  jwks: `+ecOnlyJWKS(t)+`
`)
	env := map[string]string{
		"PUBLIC_ISSUER_URL": "http://localhost:1", "REDIS_URL": "redis://127.0.0.1:1/0", "CLIENTS_FILE": path,
		"SIGNING_KEYS_DIR": dir, "UPSTREAM_ISSUER_URL": "http://localhost:2", "UPSTREAM_CLIENT_ID": "x",
		"MCP_RESOURCE_URL": "https://mcp.example/mcp",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, pconfig.MapEnv(env), &strings.Builder{}, nil)
	want := `CLIENTS_FILE: client "ec-partner": jwks holds no key usable for RS256 client assertions`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `key 1 (kid "ec") is not an RSA key`) {
		t.Fatalf("Run: %v\nwant an error containing %q and naming the key", err, want)
	}
}

// TestMetadataDocumentRefusesUnusableJWKS: a client id metadata document
// of a private_key_jwt client whose jwks holds no RS256-usable key (an EC
// key; an RSA key of "use": "enc") is refused at the authorization
// request, before any redirect, saying why; before, the sign-in went
// through and the code could never be redeemed. A key whose "use" is
// spelled "USE" (member names are exact, RFC 8259 §8.3) has no "use",
// which RFC 7517 §4.2 allows: it is usable.
func TestMetadataDocumentRefusesUnusableJWKS(t *testing.T) {
	docs := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	defer srv.Close()
	redirect := "http://127.0.0.1:8978/cimd-jwks-callback"
	_, rsaSet := rsaJWKS(t)
	doc := func(path, jwks string) {
		docs[path] = `{"client_id":"` + srv.URL + path + `","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + jwks + `}`
	}
	doc("/ec.json", ecOnlyJWKS(t))
	doc("/upper-use.json", strings.Replace(rsaSet, `"use":"sig"`, `"USE":"enc"`, 1))
	doc("/enc.json", strings.Replace(rsaSet, `"use":"sig"`, `"use":"enc"`, 1))
	doc("/good.json", rsaSet)
	f := startFleet(t, nil)
	for path, want := range map[string]string{
		"/ec.json":        `jwks holds no key usable for RS256 client assertions`,
		"/upper-use.json": "",
		"/enc.json":       `key 1 (kid 'r1') has 'use': 'enc', not 'sig'`,
		"/good.json":      "",
	} {
		t.Run(path, func(t *testing.T) {
			c := devClient{ClientID: srv.URL + path, RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
			p := newBrowser(t, redirect).get(newAuthRequest(c).URL(f.Base))
			body := htmlUnescape(p.Body)
			switch {
			case want == "" && (p.Status != http.StatusOK || !formAction.MatchString(p.Body)):
				t.Errorf("a usable set: %d %s, want the consent page", p.Status, body)
			case want != "" && (p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(body, "invalid_client")):
				t.Errorf("%d %v %s\nwant 400 invalid_client, no redirect", p.Status, p.Location, body)
			}
			if want != "" {
				// The page says fixed words; the description is in the JSON answer.
				if st, code, desc := authorizeJSON(t, newAuthRequest(c).URL(f.Base), "", ""); st != http.StatusBadRequest || code != "invalid_client" || !strings.Contains(desc, want) {
					t.Errorf("JSON %d %s %q, want 400 invalid_client saying %q", st, code, desc, want)
				}
			}
		})
	}
}

// rsaJWKS is a 2048-bit RSA signing key and its JWK set (kid r1, use sig).
func rsaJWKS(t *testing.T) (*jose.JSONWebKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "r1", Use: "sig"}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"use":"sig"`) {
		t.Fatalf("the set does not spell use as expected: %s", b)
	}
	return &jwk, string(b)
}
