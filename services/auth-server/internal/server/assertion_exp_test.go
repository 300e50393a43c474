package server_test

import (
	"context"
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
	"github.com/redis/go-redis/v9"
)

// TestAssertionExpBounded: over real HTTP and Redis, a private_key_jwt
// client assertion whose exp is more than 6 minutes ahead (5 minutes,
// plus 1 for clock skew; RFC 7523 §3 lets the server reject an exp
// unreasonably far in the future) is 401 invalid_client saying so — exp
// in year 3000 too, which overflowed the jti's TTL (503 "state store
// unavailable"), and before that an assertion living ~173 years was
// accepted and its jti kept that long. An assertion 4 minutes ahead is
// accepted, its jti kept at most 6 minutes, and its replay refused.
func TestAssertionExpBounded(t *testing.T) {
	const id = "pkj-exp"
	redirect := "http://127.0.0.1:8981/pkj-exp-callback"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	f := startFleetWith(t, nil, fmt.Sprintf(`- client_id: %s
  redirect_uris: [%q]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  skip_consent: true
  jwks: %s
`, id, redirect, set))
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	signed := func(jti string, exp time.Time) url.Values {
		t.Helper()
		now := time.Now()
		payload, err := json.Marshal(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{f.Base + "/oauth/token"}, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(exp)})
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {s}}
	}
	a := newAuthRequest(c)
	code := f.authorize(a)
	exchange := func(auth url.Values) tokenResponse {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
		for k, v := range auth {
			form[k] = v
		}
		return f.token(c, form)
	}

	for _, tc := range []struct {
		name, want string
		exp        time.Time
	}{
		{"10 minutes ahead", "s ahead; at most 6m0s is accepted", time.Now().Add(10 * time.Minute)},
		{"in year 3000", "days ahead; at most 6m0s is accepted", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if r := exchange(signed("far-"+tc.name, tc.exp)); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || !strings.Contains(r.Description, tc.want) {
			t.Errorf("assertion whose exp is %s: %d %s %q, want 401 invalid_client saying %q", tc.name, r.Status, r.Error, r.Description, tc.want)
		}
	}

	near := signed("near", time.Now().Add(4*time.Minute))
	if r := exchange(near); r.Status != http.StatusOK {
		t.Fatalf("assertion whose exp is 4 minutes ahead: %d %s %q, want 200", r.Status, r.Error, r.Description)
	}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	keys := rdb.Keys(ctx, "*as:jti:*").Val()
	if len(keys) != 1 {
		t.Fatalf("jti keys %v, want the accepted assertion's only (the refused ones are not kept)", keys)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > 6*time.Minute {
		t.Errorf("the jti of an assertion 4 minutes ahead is kept %v, want at most 6m", ttl)
	}
	if r := exchange(near); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Errorf("the same assertion again: %d %s %q, want 401 invalid_client", r.Status, r.Error, r.Description)
	} else if !strings.Contains(r.Description, "already used") {
		t.Errorf("the same assertion again: %q, want it said to be already used", r.Description)
	}
}
