package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// A browser-based MCP client could not preflight the protected resource
// metadata: the TypeScript SDK (and so the MCP Inspector) fetches it with
// an MCP-Protocol-Version header, which a browser asks leave for first
// (Fetch standard, CORS-preflight request), and mcp-go's answer allowed only
// Content-Type and Authorization, so the preflight failed and the fetch with
// it. The metadata answers any origin (RFC 9728 §3: a public document), and
// so do its preflights now, for GET and HEAD with the headers MCP clients
// send; a preflight for another method or header is refused (no grant),
// and the document is then read with the header.
func TestMetadataPreflightGrantsMCPHeaders(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	preflight := func(path, from, method, headers string) *resp {
		return g.do(t, req{Method: "OPTIONS", Path: path, Header: map[string]string{"Origin": from,
			"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}})
	}
	lower := func(h http.Header, name string) string { return strings.ToLower(strings.Join(h.Values(name), ", ")) }
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
		"/.well-known/oauth-protected-resource/sse"} {
		for _, from := range []string{allowedOrigin, "https://inspector.example"} {
			for _, method := range []string{"GET", "HEAD"} {
				r := preflight(path, from, method, "mcp-protocol-version")
				if r.Status/100 != 2 || r.Header.Get("Access-Control-Allow-Origin") != "*" ||
					!strings.Contains(lower(r.Header, "Access-Control-Allow-Methods"), strings.ToLower(method)) ||
					!strings.Contains(lower(r.Header, "Access-Control-Allow-Headers"), "mcp-protocol-version") {
					t.Errorf("preflight %s %s from %s with mcp-protocol-version: %d %v, want it granted to any origin", method, path, from, r.Status, r.Header)
				}
			}
			r := g.do(t, req{Method: "GET", Path: path, Header: map[string]string{"Origin": from, "MCP-Protocol-Version": version}})
			if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(string(r.Body), `"authorization_servers"`) {
				t.Errorf("GET %s from %s: %d %v %s, want the document readable by any origin", path, from, r.Status, r.Header, r.Body)
			}
			// Refused: a method the document is not served with, a header no
			// MCP client sends.
			for _, bad := range [][2]string{{"POST", "content-type"}, {"PUT", ""}, {"GET", "x-unknown"}} {
				r := preflight(path, from, bad[0], bad[1])
				if r.Header.Get("Access-Control-Allow-Origin") != "" || strings.Contains(lower(r.Header, "Access-Control-Allow-Methods"), strings.ToLower(bad[0])) {
					t.Errorf("preflight %s %s from %s with %q: %d %v, want it refused (no grant)", bad[0], path, from, bad[1], r.Status, r.Header)
				}
			}
		}
	}
}
