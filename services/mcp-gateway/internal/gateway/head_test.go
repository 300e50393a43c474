package gateway_test

import (
	"net/http"
	"testing"
)

// HEAD /mcp was handed to mcp-go, which answered 200 with nothing: it
// said a GET would succeed, where GET /mcp opens an event stream of a
// session (and without one is 400). RFC 9110 §9.3.2 has HEAD answer as
// GET would, without content; the endpoint serves no representation to
// GET — its GET is the stream — so, as the TypeScript SDK's server does,
// HEAD is a method the endpoint does not serve: 405 with Allow (§15.5.6),
// as PUT and PATCH are, with and without a session, and no content.
func TestHeadIs405WithAllow(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, c := range []struct {
		name, path, allow string
		header            map[string]string
	}{
		{"in a session", "/mcp", "GET, POST, DELETE", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version}},
		{"without a session", "/mcp", "GET, POST, DELETE", nil},
		{"trailing slash", "/mcp/", "GET, POST, DELETE", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version}},
		{"stateless era", "/mcp", "POST", map[string]string{"Mcp-Protocol-Version": "2026-07-28"}},
	} {
		r := g.do(t, req{Method: "HEAD", Path: c.path, Token: tok, Header: c.header})
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != c.allow || len(r.Body) != 0 {
			t.Errorf("HEAD %s %s: %d Allow %q body %q, want 405 Allow %q and no content",
				c.path, c.name, r.Status, r.Header.Get("Allow"), r.Body, c.allow)
		}
	}
	if n := g.metric(t, `tollgate_mcp_requests_total{method="HEAD",result="405",transport="streamable-http"}`); n != 4 {
		t.Errorf("405 answers to HEAD counted = %v, want 4", n)
	}
	// Without a token, HEAD is challenged as any request.
	if r := g.do(t, req{Method: "HEAD", Path: "/mcp"}); r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("HEAD /mcp without a token: %d %v, want 401 with a challenge", r.Status, r.Header)
	}
	// The session is untouched.
	g.rpc(t, tok, sid, "ping", nil, nil)
}
