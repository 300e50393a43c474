package server_test

import (
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestJWKSURIFetchFailureIsInvalidClient: over real HTTP and Redis, a
// private_key_jwt client of the registry whose jwks_uri cannot be fetched
// — nothing listening at it (connection refused), a TLS server whose
// certificate the auth-server does not trust — gets 401 invalid_client at
// the token endpoint (RFC 6749 §5.2: its authentication could not be
// completed), saying what failed in fixed words and not the address; not
// fosite's 500 server_error, which blamed the auth-server for the
// client's outage. (The harness's CIMD_ALLOW_PRIVATE_NETWORKS lets the
// guarded fetcher reach loopback; the oauth package's
// TestJWKSFetchFailureIsInvalidClient covers 500, 404, timeouts, bad JSON
// and the SSRF guard without the switch.)
func TestJWKSURIFetchFailureIsInvalidClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(untrusted.Close)

	jwksLine := regexp.MustCompile(`(?m)^  jwks: .*$`)
	var registry string
	assertions := map[string]func(aud, jti string, extra ...string) string{}
	cases := map[string]struct{ uri, want string }{
		"pkj-refused":   {closed, "could not connect"},
		"pkj-untrusted": {untrusted.URL + "/jwks.json", "TLS failed"},
	}
	for id, tc := range cases {
		reg, assertion := keyJWTClient(t, id, "http://127.0.0.1:8979/"+id)
		registry += jwksLine.ReplaceAllString(reg, `  jwks_uri: "`+tc.uri+`"`)
		assertions[id] = assertion
	}
	f := startFleetWith(t, nil, registry)
	for id, tc := range cases {
		c := devClient{ClientID: id, AuthMethod: "private_key_jwt"}
		r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_unknown.unknown"}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertions[id](f.Base+"/oauth/token", rand.Text())}})
		want := "The client's jwks_uri could not be used to verify the client assertion: " + tc.want + "."
		if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" || !strings.Contains(r.Description, want) {
			t.Errorf("%s (jwks_uri %s): %d %s %q, want 401 invalid_client saying %q", id, tc.uri, r.Status, r.Error, r.Description, want)
		}
		if strings.Contains(r.Description, "127.0.0.1") {
			t.Errorf("%s: the description names the address: %q", id, r.Description)
		}
	}
}
