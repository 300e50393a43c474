package server_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"regexp"
	"testing"
)

// TestPrivateKeyJWTKeyWithoutUse: a private_key_jwt client of the registry
// file whose JWK Set leaves "use" out (RFC 7517 §4.2: optional) starts and
// authenticates at the token endpoint with an RS256 assertion. Before,
// start-up refused the set ("has no \"use\": \"sig\"") — and had it been
// let through, fosite, which verifies only with a "sig" key, would have
// answered every assertion invalid_client.
func TestPrivateKeyJWTKeyWithoutUse(t *testing.T) {
	redirect := "http://127.0.0.1:8977/pkj-nouse-callback"
	registry, assertion := keyJWTClient(t, "pkj-nouse", redirect)
	noUse := regexp.MustCompile(`"use":"sig",?`).ReplaceAllString(registry, "")
	if noUse == registry {
		t.Fatalf("the registry entry holds no \"use\" to remove: %s", registry)
	}
	f := startFleetWith(t, nil, noUse)
	c := devClient{ClientID: "pkj-nouse", RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	a := newAuthRequest(c)
	code := f.authorize(a)
	tr := f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assertion(f.Base+"/oauth/token", rand.Text())}})
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("code grant: %d %s %s, want 200 with an access token", tr.Status, tr.Error, tr.Description)
	}
}
