package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// rawAssertionClient is keyJWTClient with a payload written whole by the
// test (raw JSON members after iss, sub, aud and jti; no exp or iat of
// its own).
func rawAssertionClient(t *testing.T, id string) (registry string, sign func(aud, members string) string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	registry = fmt.Sprintf(`- client_id: %s
  redirect_uris: ["http://127.0.0.1:8979/cb"]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  jwks: %s
`, id, set)
	return registry, func(aud, members string) string {
		payload := fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"jti":%q,%s}`, id, id, aud, rand.Text(), members)
		jws, err := signer.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
}

// TestAssertionExpNearMaxInt64IsRefused (brk47): a private_key_jwt
// assertion whose exp is within 62135596800 s of 2^63 (any value from
// 9223371974719179008, e.g. 9223372036854774784, exact as a float64 too)
// passes fosite's expiry check (exp > now), but time.Unix(exp, 0)
// overflows inside package time (sec + unixToInternal wraps) into a date
// far in the PAST. store.SetClientAssertionJWT then sees a TTL <= 0, keeps
// the jti for 1+1 minutes and accepts the assertion: no 503 as for year
// 3000, and no refusal from a "more than N minutes ahead" check that
// compares the same wrapped time (cimd47 #3 as built in its worktree).
// Once the jti record expires the same assertion is accepted again: a
// client assertion that never expires and can be replayed every two
// minutes (RFC 7523 §3 items 4 and 7: exp limits the window in which the
// JWT can be used; the jti is kept for that window). Expected: 401
// invalid_client, exp too far ahead — as for exp in year 3000.
func TestAssertionExpNearMaxInt64IsRefused(t *testing.T) {
	reg, sign := rawAssertionClient(t, "pkj-exp-wrap")
	f := startFleetWith(t, nil, reg)
	c := devClient{ClientID: "pkj-exp-wrap", AuthMethod: "private_key_jwt"}
	try := func(members string) tokenResponse {
		return f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}, "client_id": {c.ClientID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {sign(f.Base+"/oauth/token", members)}})
	}
	// The harness signs well: a one-minute assertion authenticates (400
	// invalid_grant for the unknown refresh token).
	if r := try(fmt.Sprintf(`"iat":%d,"exp":%d`, time.Now().Unix(), time.Now().Add(time.Minute).Unix())); r.Status == http.StatusUnauthorized {
		t.Fatalf("a one-minute assertion: %d %s %q", r.Status, r.Error, r.Description)
	}
	for _, exp := range []string{"9223372036854774784", "9223371974719180000", "9.2233720368547e18"} {
		r := try(fmt.Sprintf(`"iat":%d,"exp":%s`, time.Now().Unix(), exp))
		if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
			t.Errorf("assertion with exp %s (~292 billion years ahead): %d %s %q, want 401 invalid_client (exp too far ahead)", exp, r.Status, r.Error, r.Description)
		}
	}
}
