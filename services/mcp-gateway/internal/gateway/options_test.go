package gateway_test

import (
	"net/http"
	"testing"
)

// An OPTIONS /mcp that is no CORS preflight (no Origin) asks what the
// endpoint allows (RFC 9110 §9.3.7). It was passed to mcp-go, which
// answered a plain-text 404 "page not found" — as if /mcp did not exist.
// It is 204 with Allow, the methods Streamable HTTP has there.
func TestOptionsIsAnsweredWithAllow(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	r := g.do(t, req{Method: "OPTIONS", Path: "/mcp", Token: tok})
	if r.Status != http.StatusNoContent || r.Header.Get("Allow") != "GET, POST, DELETE" || len(r.Body) != 0 {
		t.Fatalf("OPTIONS /mcp: %d Allow %q %s, want 204 and Allow: GET, POST, DELETE", r.Status, r.Header.Get("Allow"), r.Body)
	}
}
