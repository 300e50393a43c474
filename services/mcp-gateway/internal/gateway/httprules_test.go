package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// POST /mcp with a body that is not application/json is 415, and with an
// Accept that does not admit application/json 406 — text/event-stream
// alone too, which was answered in JSON it did not admit (Streamable HTTP
// has the client list both) —, each with a JSON-RPC error body (id null);
// a request without Accept, or with a wildcard that admits JSON, is
// served.
func TestPostMediaTypes(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	// post sends a ping with exactly these headers (a missing key: none).
	post := func(header map[string]string) (int, http.Header, []byte) {
		t.Helper()
		hr, _ := http.NewRequest("POST", g.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"ping"}`))
		hr.Header.Set("Authorization", "Bearer "+tok)
		hr.Header.Set("Mcp-Session-Id", sid)
		hr.Header.Set("Mcp-Protocol-Version", version)
		for k, v := range header {
			hr.Header.Set(k, v)
		}
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}
	refused := func(what string, header map[string]string, status int, msg string) {
		t.Helper()
		code, h, body := post(header)
		var m struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if code != status || h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil ||
			string(m.ID) != "null" || m.Error.Code != -32600 || m.Error.Message != msg {
			t.Errorf("%s: %d %q %s, want %d and a JSON-RPC error %q", what, code, h.Get("Content-Type"), body, status, msg)
		}
	}
	served := func(what string, header map[string]string) {
		t.Helper()
		code, _, body := post(header)
		if code != http.StatusOK || !strings.Contains(string(body), `"result":{}`) {
			t.Errorf("%s: %d %s, want the ping answered", what, code, body)
		}
	}
	const accept = "application/json, text/event-stream"
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/jsonx", "json"} {
		refused("Content-Type "+ct, map[string]string{"Content-Type": ct, "Accept": accept}, http.StatusUnsupportedMediaType,
			`Content-Type must be application/json (a JSON-RPC message), not "`+ct+`"`)
	}
	refused("no Content-Type", map[string]string{"Accept": accept}, http.StatusUnsupportedMediaType,
		"Content-Type must be application/json (a JSON-RPC message), not none")
	for _, a := range []string{"text/html", "application/xml, text/plain", "*/*;q=0", "application/json;q=0, text/event-stream; q=0.0",
		"text/event-stream", "text/*", "application/json;q=0, */*"} {
		refused("Accept "+a, map[string]string{"Content-Type": "application/json", "Accept": a}, http.StatusNotAcceptable,
			`Accept must admit application/json (every answer may be JSON; Streamable HTTP clients list application/json and text/event-stream), not "`+a+`"`)
	}
	for _, ct := range []string{"text/plain; a=1; a=2", "application/jsonx; charset=utf-8; charset=utf-16"} {
		refused("Content-Type "+ct, map[string]string{"Content-Type": ct, "Accept": accept}, http.StatusUnsupportedMediaType,
			`Content-Type must be application/json (a JSON-RPC message), not "`+ct+`"`)
	}
	// Parameters mime.ParseMediaType refuses — one named twice with
	// different values, a malformed one — do not refuse the type
	// (application/json defines none).
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON",
		"application/json; charset=utf-8; charset=UTF-8", "application/json; charset=utf-8; charset=utf-16", "application/json; charset", "APPLICATION/JSON ; =x"} {
		served("Content-Type "+ct, map[string]string{"Content-Type": ct, "Accept": accept})
	}
	served("no Accept (curl, some clients)", map[string]string{"Content-Type": "application/json"})
	for _, a := range []string{"", "*/*", "application/*", "application/json", "text/html, application/json;q=0.1", "APPLICATION/JSON", "text/event-stream, application/json"} {
		served("Accept "+a, map[string]string{"Content-Type": "application/json", "Accept": a})
	}
	// The checks come after the token's: no token is still 401.
	hr, _ := http.NewRequest("POST", g.URL+"/mcp", strings.NewReader(`{}`))
	hr.Header.Set("Content-Type", "text/plain")
	res, err := httpClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("text/plain without a token: %d, want 401", res.StatusCode)
	}
}

// A method the Streamable HTTP endpoint does not have (PUT, PATCH) is 405
// with Allow (GET, POST, DELETE; POST in the stateless era) and a JSON-RPC
// error, with or without a session, in both
// protocol eras, on /mcp and /mcp/ — never the 400 "Mcp-Session-Id header
// is required" of a POST without a session, nor the plain-text 404 that
// would tell the client its session is gone; the session lives on.
func TestOtherMethodsOnTheEndpointAre405(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, method := range []string{"PUT", "PATCH"} {
		for _, c := range []struct {
			name, path, allow string
			header            map[string]string
		}{
			{"in a session", "/mcp", "GET, POST, DELETE", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version}},
			{"without a session", "/mcp", "GET, POST, DELETE", nil},
			{"trailing slash", "/mcp/", "GET, POST, DELETE", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version}},
			{"stateless era", "/mcp", "POST", map[string]string{"Mcp-Protocol-Version": "2026-07-28"}},
		} {
			h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
			for k, v := range c.header {
				h[k] = v
			}
			r := g.do(t, req{Method: method, Path: c.path, Token: tok, Header: h, Body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
			var m struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != c.allow ||
				json.Unmarshal(r.Body, &m) != nil || m.Error.Code != -32600 {
				t.Errorf("%s %s %s: %d Allow %q %s, want 405 Allow %q and a JSON-RPC error",
					method, c.path, c.name, r.Status, r.Header.Get("Allow"), r.Body, c.allow)
			}
			// The message names the methods Allow names, no other.
			for _, verb := range []string{"GET", "DELETE"} {
				if strings.Contains(m.Error.Message, verb) != strings.Contains(c.allow, verb) {
					t.Errorf("%s %s %s: message %q, Allow %q: they disagree on %s", method, c.path, c.name, m.Error.Message, c.allow, verb)
				}
			}
		}
	}
	// Every refusal is counted, as the endpoint's other refusals are.
	if n := g.metric(t, `tollgate_mcp_requests_total{method="other",result="405",transport="streamable-http"}`); n != 8 {
		t.Errorf("405 answers counted = %v, want 8 (2 methods × 4 cases)", n)
	}
	g.rpc(t, tok, sid, "ping", nil, nil)
}
