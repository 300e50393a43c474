package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestAssertionAlgsAsAdvertised: the token endpoint accepts a private_key_jwt
// client assertion signed with exactly the algorithms discovery lists in
// token_endpoint_auth_signing_alg_values_supported (RFC 8414 §2). The client
// publishes an RSA key and a P-256 key; each algorithm of either is tried
// at the real token endpoint, and the set that authenticates must equal the
// advertised one. An ES256 assertion is refused invalid_client, naming its
// algorithm.
func TestAssertionAlgsAsAdvertised(t *testing.T) {
	redirect := "http://127.0.0.1:8979/alg-callback"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &rsaKey.PublicKey, KeyID: "rsa", Use: "sig"},
		{Key: &ecKey.PublicKey, KeyID: "ec", Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := "alg-client"
	registry := fmt.Sprintf(`- client_id: %s
  redirect_uris: [%q]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  skip_consent: true
  jwks: %s
`, id, redirect, set)
	f := startFleetWith(t, nil, registry)
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}

	sign := func(alg jose.SignatureAlgorithm, kid string, key any) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{f.Base + "/oauth/token"},
			ID: rand.Text(), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type candidate struct {
		alg jose.SignatureAlgorithm
		kid string
		key any
	}
	candidates := []candidate{
		{jose.RS256, "rsa", rsaKey}, {jose.RS384, "rsa", rsaKey}, {jose.RS512, "rsa", rsaKey},
		{jose.PS256, "rsa", rsaKey}, {jose.PS384, "rsa", rsaKey}, {jose.PS512, "rsa", rsaKey},
		{jose.ES256, "ec", ecKey},
	}
	var accepted []string
	for _, k := range candidates {
		a := newAuthRequest(c)
		code := f.authorize(a)
		tr := f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
			"code_verifier": {a.Verifier}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {sign(k.alg, k.kid, k.key)}})
		switch {
		case tr.Status == http.StatusOK:
			accepted = append(accepted, string(k.alg))
		case tr.Status != http.StatusUnauthorized || tr.Error != "invalid_client":
			t.Errorf("%s: %d %s %s, want 200 or 401 invalid_client", k.alg, tr.Status, tr.Error, tr.Description)
		case !strings.Contains(tr.Description, "'"+string(k.alg)+"'"):
			t.Errorf("%s: the refusal does not name the algorithm: %s", k.alg, tr.Description)
		}
	}

	// Revocation and introspection authenticate the client as the token
	// endpoint does (RFC 7009 §2.1, RFC 7662 §2.1): an unknown token is
	// answered 200 once the client is authenticated, 401 otherwise.
	acceptedAt := map[string][]string{}
	for _, endpoint := range []string{"revocation", "introspection"} {
		path := map[string]string{"revocation": "/oauth/revoke", "introspection": "/oauth/introspect"}[endpoint]
		for _, k := range candidates {
			resp, err := http.PostForm(f.Base+path, url.Values{"token": {"not-a-token"}, "client_id": {id},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {sign(k.alg, k.kid, k.key)}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				acceptedAt[endpoint] = append(acceptedAt[endpoint], string(k.alg))
			case http.StatusUnauthorized:
			default:
				t.Errorf("%s %s: %d, want 200 or 401", endpoint, k.alg, resp.StatusCode)
			}
		}
	}

	resp, err := http.Get(f.Base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Algs              []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		RevocationAlgs    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
		IntrospectionAlgs []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	slices.Sort(accepted)
	slices.Sort(md.Algs)
	if !slices.Equal(accepted, md.Algs) {
		t.Errorf("discovery advertises %v; the token endpoint accepts %v", md.Algs, accepted)
	}
	// RFC 8414 §2: an endpoint whose auth methods list private_key_jwt
	// MUST list its signing algorithms; what it lists is what it accepts.
	for endpoint, advertised := range map[string][]string{"revocation": md.RevocationAlgs, "introspection": md.IntrospectionAlgs} {
		slices.Sort(advertised)
		slices.Sort(acceptedAt[endpoint])
		if len(advertised) == 0 || !slices.Equal(advertised, acceptedAt[endpoint]) {
			t.Errorf("discovery advertises %v for %s_endpoint_auth_signing_alg_values_supported; the %s endpoint accepts %v",
				advertised, endpoint, endpoint, acceptedAt[endpoint])
		}
	}
	if !slices.Equal(accepted, []string{"RS256"}) {
		t.Errorf("accepted %v, want [RS256] (clients.Client.GetTokenEndpointAuthSigningAlgorithm)", accepted)
	}
}
