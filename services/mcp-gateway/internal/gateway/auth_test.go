package gateway_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// wantChallenge starts the challenge of a refused token; its
// error_description follows.
const wantChallenge = `Bearer error="invalid_token", resource_metadata="` + metadataURL + `", scope="` + allScopes + `", error_description=`

// noCredentialsChallenge answers a request without a bearer token: no
// error code (RFC 6750 §3.1).
const noCredentialsChallenge = `Bearer resource_metadata="` + metadataURL + `", scope="` + allScopes + `"`

// The legacy endpoints name the metadata of the /sse identifier (RFC 9728 §3.3).
const (
	wantSSEChallenge          = `Bearer error="invalid_token", resource_metadata="` + sseMetadataURL + `", scope="` + allScopes + `", error_description=`
	noCredentialsSSEChallenge = `Bearer resource_metadata="` + sseMetadataURL + `", scope="` + allScopes + `"`
)

// challenges are the two challenges of the endpoint of path.
func challenges(path string) (refused, none string) {
	if strings.HasPrefix(path, "/sse") || strings.HasPrefix(path, "/messages") {
		return wantSSEChallenge, noCredentialsSSEChallenge
	}
	return wantChallenge, noCredentialsChallenge
}

// Every transport answers a refused token with the same 401 challenge, and
// a request without one with the same challenge minus the error code. The
// challenge's error_description (RFC 6750 §3) and the body's say why the
// token was refused and, when the client can fix it, how.
func TestUnauthorizedOnEveryTransport(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	good := f.Token("user-1", allScopes)
	sid := g.initialize(t, good)

	refused := map[string]struct{ token, desc string }{
		"actions audience": {f.Issuer.Mint(t, tokentest.Token{Audience: actionsAudience, Scope: allScopes}),
			"access token rejected: wrong audience; this is the MCP resource " + resource + ": request the token with resource=" + resource + " (RFC 8707)"},
		"expired": {f.Issuer.Mint(t, tokentest.Token{Audience: resource, IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresIn: time.Hour}),
			"access token rejected: token expired; refresh it or sign in again"},
		"other issuer":  {f.Issuer.Mint(t, tokentest.Token{Audience: resource, Issuer: "https://evil.example"}), "access token rejected: wrong issuer"},
		"id token typ":  {f.Issuer.Mint(t, tokentest.Token{Audience: resource, Type: "JWT"}), "access token rejected: typ is not at+jwt"},
		"garbage":       {"not-a-jwt", "access token rejected: not a JWS compact token"},
		"bad signature": {good[:len(good)-4] + "AAAA", "access token rejected: bad signature"},
	}
	requests := []req{
		{Method: "POST", Path: "/mcp", Session: sid, Body: call("tools/list", nil)},
		{Method: "POST", Path: "/mcp", Body: call("initialize", map[string]any{"protocolVersion": version})},
		{Method: "GET", Path: "/mcp", Session: sid},
		{Method: "DELETE", Path: "/mcp", Session: sid},
		{Method: "GET", Path: "/sse"},
		{Method: "POST", Path: "/messages?sessionId=x", Body: call("tools/list", nil)},
	}
	for name, c := range refused {
		for _, r := range requests {
			r.Token = c.token
			res := g.do(t, r)
			var body struct {
				ErrorDescription string `json:"error_description"`
			}
			_ = json.Unmarshal(res.Body, &body)
			if refused, _ := challenges(r.Path); res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != refused+strconv.Quote(c.desc) {
				t.Errorf("%s: %s %s: %d %q, want %q", name, r.Method, r.Path, res.Status, res.Header.Get("WWW-Authenticate"), refused+strconv.Quote(c.desc))
			}
			if body.ErrorDescription != c.desc {
				t.Errorf("%s: %s %s: error_description %q, want %q", name, r.Method, r.Path, body.ErrorDescription, c.desc)
			}
		}
	}
	for _, r := range requests {
		res := g.do(t, r)
		if _, want := challenges(r.Path); res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != want {
			t.Errorf("no token: %s %s: %d %q, want %q", r.Method, r.Path, res.Status, res.Header.Get("WWW-Authenticate"), want)
		}
	}
	// The session survived all that.
	g.rpc(t, good, sid, "tools/list", nil, nil)
}

// Two Authorization headers, or a token in the query, are 400 and the
// query token is never used, not even next to a valid header. Their
// invalid_request challenge names the endpoint's protected resource
// metadata, as every other challenge does (RFC 9728 §5.1; security.md).
func TestBearerRefusals(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	good := f.Token("user-1", allScopes)
	for _, path := range []string{"/mcp", "/sse", "/messages"} {
		meta := metadataURL
		if path != "/mcp" {
			meta = sseMetadataURL
		}
		want := func(desc string) string {
			return `Bearer error="invalid_request", resource_metadata="` + meta + `", scope="` + allScopes + `", error_description=` + strconv.Quote(desc)
		}
		hr, _ := http.NewRequest("GET", g.URL+path, nil)
		hr.Header.Add("Authorization", "Bearer "+good)
		hr.Header.Add("Authorization", "Bearer "+good)
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s with two Authorization headers: %d", path, res.StatusCode)
		}
		if got, w := res.Header.Get("WWW-Authenticate"), want("more than one Authorization header"); got != w {
			t.Errorf("%s with two Authorization headers: challenge %q, want %q", path, got, w)
		}
		r := g.do(t, req{Method: "GET", Path: path + "?access_token=" + good, Token: good})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "invalid_request") {
			t.Errorf("%s with access_token in the query: %d %s", path, r.Status, r.Body)
		}
		if got, w := r.Header.Get("WWW-Authenticate"), want("access_token in the query string is not accepted; use the Authorization header"); got != w {
			t.Errorf("%s with access_token in the query: challenge %q, want %q", path, got, w)
		}
		r = g.do(t, req{Method: "GET", Path: path + "?access_token=" + good})
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s with only a query token: %d", path, r.Status)
		}
	}
	// Basic is not Bearer: an unsupported method counts as no credentials
	// (RFC 6750 §3.1).
	r := g.do(t, req{Method: "POST", Path: "/mcp", Header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, Body: call("ping", nil)})
	if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != noCredentialsChallenge {
		t.Errorf("Basic credentials: %d %v", r.Status, r.Header)
	}
}

// A session's steady state costs no RSA verification: the token is
// verified once, then found in the cache.
func TestVerifiedTokensAreCached(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	before := g.metric(t, `tollgate_mcp_token_verifications_total{cache="hit"}`)
	misses := g.metric(t, `tollgate_mcp_token_verifications_total{cache="miss"}`)
	for i := 0; i < 5; i++ {
		g.rpc(t, tok, sid, "ping", nil, nil)
	}
	if hits := g.metric(t, `tollgate_mcp_token_verifications_total{cache="hit"}`); hits-before != 5 {
		t.Errorf("cache hits went from %v to %v, want +5", before, hits)
	}
	if m := g.metric(t, `tollgate_mcp_token_verifications_total{cache="miss"}`); m != misses {
		t.Errorf("cache misses went from %v to %v", misses, m)
	}
}
