package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
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
