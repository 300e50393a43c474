package gateway_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// The transport's session rules on one gateway.
func TestSessionRules(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)

	cases := []struct {
		name   string
		r      req
		status int
	}{
		// Served without a session (TestSessionlessChatGPTConnectorCreation).
		{"missing session on POST", req{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: call("tools/list", nil)}, 200},
		// No stream without a session (TestSessionlessRefusals).
		{"missing session on GET", req{Method: "GET", Path: "/mcp", Token: tok, Version: version}, 405},
		{"missing session on DELETE", req{Method: "DELETE", Path: "/mcp", Token: tok, Version: version}, 400},
		{"unknown session", req{Method: "POST", Path: "/mcp", Token: tok, Session: "x" + sid, Version: version, Body: call("tools/list", nil)}, 404},
		{"another subject's session", req{Method: "POST", Path: "/mcp", Token: f.Token("user-2", allScopes), Session: sid, Version: version, Body: call("tools/list", nil)}, 404},
		{"the same subject's other client", req{Method: "POST", Path: "/mcp", Token: f.Issuer.Mint(t, tokentest.Token{Subject: "user-1", ClientID: "other-app", Audience: resource, Scope: allScopes}), Session: sid, Version: version, Body: call("tools/list", nil)}, 404},
		{"unsupported version", req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: "1999-01-01", Body: call("tools/list", nil)}, 400},
		{"not the session's version", req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: "2025-06-18", Body: call("tools/list", nil)}, 400},
		{"no version header (2025-03-26 default)", req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: call("tools/list", nil)}, 200},
		{"not JSON", req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: "{"}, 400},
		{"body too large", req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"x":"` + strings.Repeat("a", 1<<20) + `"}`}, 413},
	}
	for _, c := range cases {
		r := g.do(t, c.r)
		if r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
		}
	}

	// Older clients negotiate their version at initialize.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": "2025-03-26", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "old", "version": "0"}})})
	if !strings.Contains(string(r.rpc(t).Result), `"protocolVersion":"2025-03-26"`) {
		t.Errorf("2025-03-26 initialize: %s", r.Body)
	}

	// DELETE ends the session; later use is 404.
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	for _, method := range []string{"POST", "GET", "DELETE"} {
		rr := req{Method: method, Path: "/mcp", Token: tok, Session: sid, Version: version}
		if method == "POST" {
			rr.Body = call("tools/list", nil)
		}
		if r := g.do(t, rr); r.Status != http.StatusNotFound {
			t.Errorf("%s after DELETE: %d", method, r.Status)
		}
	}
}

// The stateless 2026-07-28 era needs no session: each request carries its
// version and capabilities.
func TestStatelessProtocol(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	meta := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "modern", "version": "1"},
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
		Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "health.check"},
		Body:   call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}, "_meta": meta})})
	if r.Status != 200 {
		t.Fatalf("stateless tools/call: %d %s", r.Status, r.Body)
	}
	if m := r.rpc(t); m.Error != nil || !strings.Contains(string(m.Result), `"structuredContent"`) || r.Header.Get("Mcp-Session-Id") != "" {
		t.Errorf("stateless call: %s %+v %v", m.Result, m.Error, r.Header)
	}
	// Without a token it is refused like everything else.
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Version: "2026-07-28", Body: call("tools/list", map[string]any{"_meta": meta})}); r.Status != 401 {
		t.Errorf("stateless without token: %d", r.Status)
	}
}

// One subject holds at most SESSION_LIMIT_PER_SUBJECT live sessions across
// the replicas: beyond it initialize and GET /sse get 429 with Retry-After
// and a JSON-RPC error naming the limit, and no session; a DELETE frees a
// place at once; other subjects are not affected.
func TestSessionLimitPerSubject(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	b := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	tok := f.Token("greedy", allScopes)
	first := a.initialize(t, tok)
	b.initialize(t, tok)
	init := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "test", "version": "1"}})
	for _, g := range []*gw{a, b} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init})
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Mcp-Session-Id") != "" {
			t.Fatalf("third initialize: %d %v %s", r.Status, r.Header, r.Body)
		}
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 30*60 {
			t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32029 || !strings.Contains(m.Error.Message, "too many live sessions") ||
			string(m.ID) != string(mustJSON(t, init["id"])) {
			t.Errorf("body %s", r.Body)
		}
		if r := g.do(t, req{Method: "GET", Path: "/sse", Token: tok}); r.Status != http.StatusTooManyRequests {
			t.Errorf("GET /sse over the limit: %d", r.Status)
		}
	}
	if v := a.metric(t, `tollgate_mcp_requests_total{method="initialize",result="session_limit",transport="streamable-http"}`); v != 1 {
		t.Errorf("session_limit requests on A = %v", v)
	}
	// Another subject is not affected.
	a.initialize(t, f.Token("modest", allScopes))
	// DELETE on B frees the place of a session made on A.
	if r := b.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: first, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	a.initialize(t, tok)
}

// The session cap is per (subject, client_id) of the verified token: one
// app of a user at its cap (here a "leaky" app holding every place) does not
// stop the same user's other app from opening sessions on either transport;
// the leaky app's refusal names the client; a forged clientInfo in
// initialize changes nothing (only the token's client_id counts); the other
// app's sessions take nothing from the leaky app's cap.
func TestSessionLimitPerSubjectAndClient(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	b := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	tokenOf := func(client string) string {
		return f.Issuer.Mint(t, tokentest.Token{Subject: "ada", ClientID: client, Audience: resource, Scope: allScopes})
	}
	leaky, good := tokenOf("leaky-app"), tokenOf("good-app")
	a.initialize(t, leaky)
	b.initialize(t, leaky)
	for _, name := range []string{"good-app", "leaky-app"} { // clientInfo is the client's say-so, not a verified fact
		r := a.do(t, req{Method: "POST", Path: "/mcp", Token: leaky, Body: call("initialize", map[string]any{
			"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": name, "version": "1"}})})
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Fatalf("leaky app's third initialize (clientInfo %s): %d %s", name, r.Status, r.Body)
		}
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32029 || !strings.Contains(m.Error.Message, "through this client") {
			t.Errorf("refusal: %s", r.Body)
		}
	}
	if r := b.do(t, req{Method: "GET", Path: "/sse", Token: leaky}); r.Status != http.StatusTooManyRequests {
		t.Errorf("leaky app's GET /sse: %d", r.Status)
	}
	// The same user's other app opens sessions on both replicas, up to its own cap.
	a.initialize(t, good)
	b.initialize(t, good)
	if r := a.do(t, req{Method: "POST", Path: "/mcp", Token: good, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "good", "version": "1"}})}); r.Status != http.StatusTooManyRequests {
		t.Errorf("good app beyond its own cap: %d %s", r.Status, r.Body)
	}
	// And the leaky app is still at its cap (the good app's sessions were not counted against it).
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: leaky, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})}); r.Status != http.StatusTooManyRequests {
		t.Errorf("leaky app: %d", r.Status)
	}
}
