package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// GET /mcp without Mcp-Session-Id is 405: the server offers no stream
// without a session (Streamable HTTP, "Listening for Messages from the
// Server"). Its Allow lists the methods the resource /mcp supports (RFC
// 9110 §15.5.6), GET, POST and DELETE — GET and DELETE with a session —
// as the endpoint's other 405s and OPTIONS do; it said POST alone.
func TestGetWithoutASessionAllowsTheEndpointsMethods(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	options := g.do(t, req{Method: "OPTIONS", Path: "/mcp", Token: tok}).Header.Get("Allow")
	put := g.do(t, req{Method: "PUT", Path: "/mcp", Token: tok}).Header.Get("Allow")
	if options != "GET, POST, DELETE" || put != options {
		t.Fatalf("OPTIONS Allow %q, PUT Allow %q; want both GET, POST, DELETE", options, put)
	}
	for _, v := range []string{"", version, "2025-03-26"} {
		r := g.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Version: v})
		m := r.rpc(t)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != options || m.Error == nil || m.Error.Code != -32600 ||
			!strings.Contains(m.Error.Message, "GET with its Mcp-Session-Id") {
			t.Errorf("version %q: GET without a session: %d Allow %q %s; want 405 Allow %q and -32600 naming GET with a session",
				v, r.Status, r.Header.Get("Allow"), r.Body, options)
		}
	}
}
