package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A browser on an allowed origin could not read the answers the gateway
// gives with a method its CORS options did not list — HEAD or PUT /mcp
// (405), and GET of a path it does not serve (404) — since they carried
// no Access-Control-Allow-Origin, and Allow was not among the exposed
// headers: the client saw a network error instead of the 405 and its
// Allow. The Fetch standard's CORS protocol lets a page read a response
// only when it names the page's origin. Every answer to an allowed origin
// now names it and exposes Allow (with Mcp-Session-Id, WWW-Authenticate,
// Retry-After, Ratelimit-Remaining); a preflight is still granted only
// for GET, POST and DELETE, the methods the endpoints serve. A disallowed
// origin gets 403 and no CORS header, preflight or not.
func TestCORSEveryAnswerReadable(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	origin := map[string]string{"Origin": allowedOrigin}
	readable := func(what string, r *resp, status int, exposed ...string) {
		t.Helper()
		if r.Status != status || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Errorf("%s from the allowed origin: %d Access-Control-Allow-Origin %q, want %d readable by %s",
				what, r.Status, r.Header.Get("Access-Control-Allow-Origin"), status, allowedOrigin)
			return
		}
		for _, h := range exposed {
			// Header names compare without case (rs/cors sends "Www-Authenticate").
			if !strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Expose-Headers")), strings.ToLower(h)) {
				t.Errorf("%s: %s not exposed (Access-Control-Expose-Headers %q)", what, h, r.Header.Get("Access-Control-Expose-Headers"))
			}
		}
	}
	for _, m := range []string{"HEAD", "PUT", "PATCH"} {
		r := g.do(t, req{Method: m, Path: "/mcp", Token: tok, Session: sid, Version: version, Header: origin})
		readable(m+" /mcp", r, http.StatusMethodNotAllowed, "Allow")
		if r.Header.Get("Allow") != "GET, POST, DELETE" {
			t.Errorf("%s /mcp: Allow %q", m, r.Header.Get("Allow"))
		}
	}
	readable("PUT /sse", g.do(t, req{Method: "PUT", Path: "/sse", Token: tok, Header: origin}), http.StatusMethodNotAllowed, "Allow")
	readable("GET /messages", g.do(t, req{Method: "GET", Path: "/messages", Token: tok, Header: origin}), http.StatusMethodNotAllowed, "Allow")
	readable("GET /nope", g.do(t, req{Method: "GET", Path: "/nope", Header: origin}), http.StatusNotFound)
	readable("GET /.well-known/nope", g.do(t, req{Method: "GET", Path: "/.well-known/nope", Header: origin}), http.StatusNotFound)
	readable("POST /mcp of an unknown session", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: "x" + sid, Version: version,
		Header: origin, Body: call("ping", nil)}), http.StatusNotFound)
	readable("POST /mcp without a token", g.do(t, req{Method: "POST", Path: "/mcp", Header: origin, Body: call("ping", nil)}),
		http.StatusUnauthorized, "WWW-Authenticate")
	readable("POST /mcp", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: origin,
		Body: call("ping", nil)}), http.StatusOK, "Mcp-Session-Id", "Ratelimit-Remaining")

	// Preflights: granted for the methods served, not for others (the
	// request headers in the sorted, lower-case list browsers send).
	preflight := func(from, method string) *resp {
		return g.do(t, req{Method: "OPTIONS", Path: "/mcp", Header: map[string]string{"Origin": from,
			"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, mcp-protocol-version, mcp-session-id"}})
	}
	for _, m := range []string{"GET", "POST", "DELETE"} {
		r := preflight(allowedOrigin, m)
		if r.Status/100 != 2 || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), m) {
			t.Errorf("preflight for %s: %d %v, want it granted", m, r.Status, r.Header)
		}
	}
	if r := preflight(allowedOrigin, "PUT"); strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("preflight for PUT: %d %v, want it refused (no method granted)", r.Status, r.Header)
	}

	// A disallowed origin reads nothing.
	for _, r := range []*resp{
		g.do(t, req{Method: "HEAD", Path: "/mcp", Token: tok, Header: map[string]string{"Origin": "https://evil.example"}}),
		g.do(t, req{Method: "PUT", Path: "/mcp", Token: tok, Header: map[string]string{"Origin": "https://evil.example"}}),
		preflight("https://evil.example", "POST"),
	} {
		if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("from a disallowed origin: %d %v, want 403 without CORS headers", r.Status, r.Header)
		}
	}
	if r := g.do(t, req{Method: "GET", Path: "/nope", Header: map[string]string{"Origin": "https://evil.example"}}); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET /nope from a disallowed origin: %v, want no CORS headers", r.Header)
	}

	// 503 (Redis down) is readable too.
	f.Redis.Stop()
	defer f.Redis.Start()
	time.Sleep(leaseTTL + 50*time.Millisecond) // leased rate-limit tokens expire
	readable("POST /mcp with Redis down", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: origin,
		Body: call("tools/list", nil)}), http.StatusServiceUnavailable, "Retry-After")
}
