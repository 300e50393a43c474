package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamPKCEVerifierDroppedAfterExchange: the auth-server's own PKCE
// verifier and nonce for the upstream sign-in (RFC 7636 §4.1, OpenID
// Connect Core §3.1.2.1) are needed only to redeem the upstream code.
// While the login is pending they are in Redis (the callback needs them);
// once the upstream code is redeemed, the request waiting on the consent
// page keeps neither — every key of the test's own redis-server is read
// while the consent page waits. Before, consent-req held both for
// LOGIN_TTL.
func TestUpstreamPKCEVerifierDroppedAfterExchange(t *testing.T) {
	f := newFleet(t, nil, "", true)
	f.start()
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	redirect := "http://127.0.0.1:8976/verifier-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Verifier client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	b := newBrowser(t, a.RedirectURI)
	p := b.get(a.URL(f.Base))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("want the IdP's login page, got %d at %s: %.300s", p.Status, p.URL, p.Body)
	}
	held := regexp.MustCompile(`"(verifier|nonce)":"[^"]+"`)
	pendingHeld := false
	for key, v := range redisValues(t, rdb) {
		if strings.Contains(key, ":pending:") && held.MatchString(v) {
			pendingHeld = true
		}
	}
	if !pendingHeld {
		t.Fatal("login pending: no pending request holds the upstream verifier and nonce (the callback needs them); the test reads the wrong keys")
	}
	p = b.submit(p, map[string][]string{"username": {idptest.Username}, "password": {idptest.Password}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="consent_id"`) {
		t.Fatalf("want the consent page, got %d %v: %.300s", p.Status, p.Location, p.Body)
	}
	seen := 0
	for key, v := range redisValues(t, rdb) {
		if !strings.Contains(key, ":consent-req:") {
			continue
		}
		seen++
		if m := held.FindString(v); m != "" {
			t.Errorf("consent pending: Redis key %q holds the upstream %s", key, m[:strings.Index(m, ":")])
		}
	}
	if seen == 0 {
		t.Fatal("consent pending: no consent-req key found")
	}
	p = b.submit(p, map[string][]string{"decision": {"approve"}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("after consent: %d %v %.300s, want a code", p.Status, p.Location, p.Body)
	}
	if tr := f.exchange(c, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK || tr.AccessToken == "" {
		t.Errorf("exchange after consent: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
}
