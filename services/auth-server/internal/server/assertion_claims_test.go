package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// claimSigner is an RS256 key (kid k1), its JWK set, and sign, which signs
// a client assertion for id with the raw JSON members given after iss,
// sub, aud and jti.
func claimSigner(t *testing.T) (set []byte, sign func(id, aud, members string) string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, _ = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return set, func(id, aud, members string) string {
		jws, err := signer.Sign([]byte(fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"jti":%q,%s}`, id, id, aud, rand.Text(), members)))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
}

// TestAssertionTimeClaimsAreInvalidClient (brk47): a correctly signed
// private_key_jwt assertion that is expired, not yet valid (nbf ahead) or
// issued in the future (iat ahead — a client whose clock runs a few
// seconds fast) got 500 server_error "the server could not complete the
// request", logged at ERROR ("token endpoint failed", err="Token is
// expired" / "Token is not valid yet" / "Token used before issued") and
// counted as the auth-server's failure: fosite returns the jwt library's
// plain error (ValidationError.Inner) for these, which the error mapping
// did not know. It is the client's failed authentication: RFC 6749 §5.2
// invalid_client, 401 (RFC 7523 §3: the server MUST reject a JWT that is
// expired / not yet valid). And anyone can do it: a Client ID Metadata
// Document with an inline jwks is a private_key_jwt client of the
// caller's own, so one anonymous address sending expired assertions
// (10/s within RATE_LIMIT_TOKEN_PER_ADDRESS) drives
// TollgateTokenEndpointFailures and TollgateHighErrorRatio (both
// critical) on a quiet install and fills the log with ERROR lines.
// Expected: 401 invalid_client for every case, no 500.
func TestAssertionTimeClaimsAreInvalidClient(t *testing.T) {
	set, sign := claimSigner(t)
	f := startFleetWith(t, nil, fmt.Sprintf(`- client_id: pkj-clock
  redirect_uris: ["http://127.0.0.1:8979/cb"]
  token_endpoint_auth_method: private_key_jwt
  resources: ["BASE/actions"]
  jwks: %s
`, set))
	var docs *httptest.Server
	docs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"client_id":%q,"redirect_uris":[%q],"token_endpoint_auth_method":"private_key_jwt","jwks":%s}`, docs.URL+r.URL.Path, docs.URL+"/cb", set)
	}))
	t.Cleanup(docs.Close)

	now := time.Now().Unix()
	cases := map[string]string{
		"expired five minutes ago":     fmt.Sprintf(`"iat":%d,"exp":%d`, now-600, now-300),
		"nbf an hour ahead":            fmt.Sprintf(`"iat":%d,"exp":%d,"nbf":%d`, now, now+60, now+3600),
		"iat 5 s ahead (a fast clock)": fmt.Sprintf(`"iat":%d,"exp":%d`, now+5, now+60),
	}
	for _, id := range []string{"pkj-clock", docs.URL + "/anonymous.json"} {
		for name, members := range cases {
			resp, err := http.PostForm(f.Base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"},
				"client_id": {id}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion": {sign(id, f.Base+"/oauth/token", members)}})
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			// A few seconds of iat ahead may also be accepted (clock-skew
			// leeway: then 400 invalid_grant for the unknown refresh token).
			leeway := strings.HasPrefix(name, "iat") && resp.StatusCode == http.StatusBadRequest && e.Error == "invalid_grant"
			if !leeway && (resp.StatusCode != http.StatusUnauthorized || e.Error != "invalid_client") {
				t.Errorf("client %s, assertion %s: %d %s, want 401 invalid_client (the client's failed authentication, not the server's failure)", id, name, resp.StatusCode, e.Error)
			}
		}
	}
	if logs := f.AS.Logs.String(); strings.Contains(logs, `msg="token endpoint failed"`) {
		t.Errorf("client assertions with bad time claims are logged at ERROR as the token endpoint's failure")
	}
}
