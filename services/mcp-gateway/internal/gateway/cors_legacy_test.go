package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// The legacy SSE endpoints' answers that mcp-go writes — the /sse stream
// and a /messages 202 — carried only mcp-go's own exposed-header list
// (Mcp-Session-Id), replacing the gateway's, so a page of an allowed
// origin could not read Ratelimit-Remaining or Retry-After there as it
// can on /mcp. mcp-go's CORS now exposes the gateway's list.
func TestLegacyAnswersExposeTheGatewaysHeaders(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-cors-legacy", allScopes)
	origin := map[string]string{"Origin": allowedOrigin}
	s := g.openStream(t, "/sse", tok, origin)
	exposes := func(what string, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %s", what, h.Get("Access-Control-Allow-Origin"), allowedOrigin)
		}
		got := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
		for _, name := range []string{"Mcp-Session-Id", "Retry-After", "Ratelimit-Remaining", "WWW-Authenticate", "Allow"} {
			if !strings.Contains(got, strings.ToLower(name)) {
				t.Errorf("%s: %s not exposed (Access-Control-Expose-Headers %q)", what, name, h.Get("Access-Control-Expose-Headers"))
			}
		}
	}
	exposes("GET /sse", s.res.Header)
	path := s.endpoint()
	legacyInit(t, s, g, tok, path)
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Header: origin, Body: call("ping", nil)})
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
	}
	exposes("POST /messages", r.Header)
}
