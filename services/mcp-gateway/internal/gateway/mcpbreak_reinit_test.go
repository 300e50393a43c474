package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// An initialize that carries Mcp-Session-Id does not open a second session
// (Streamable HTTP, "Session Management": a client re-initializes without
// a session id). On a live session it is 400 -32600 with the request's id
// and no new Mcp-Session-Id, and the session stays usable; on an unknown
// session, or another subject's, it is 404 as for any request naming it.
// Neither takes a place of SESSION_LIMIT_PER_SUBJECT.
func TestInitializeWithSessionIsRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "2")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	init := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "again", "version": "1"}})

	for _, v := range []string{"", version} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: v, Body: init})
		if r.Status != http.StatusBadRequest || r.Header.Get("Mcp-Session-Id") != "" {
			t.Fatalf("initialize in a live session (version header %q): %d %v %s", v, r.Status, r.Header, r.Body)
		}
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "already initialized") ||
			string(m.ID) != string(mustJSON(t, init["id"])) {
			t.Errorf("initialize in a live session: %s", r.Body)
		}
	}
	if v := g.metric(t, `tollgate_mcp_requests_total{method="initialize",result="already_initialized",transport="streamable-http"}`); v != 2 {
		t.Errorf("already_initialized requests = %v", v)
	}
	// The session is as it was: usable, and still at the version it negotiated.
	var tools struct {
		Tools []any `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &tools)
	if len(tools.Tools) == 0 {
		t.Error("tools/list after the refused initialize: no tools")
	}

	for name, c := range map[string]req{
		"unknown session":           {Method: "POST", Path: "/mcp", Token: tok, Session: "x" + sid, Body: init},
		"another subject's session": {Method: "POST", Path: "/mcp", Token: f.Token("user-2", allScopes), Session: sid, Body: init},
	} {
		r := g.do(t, c)
		if r.Status != http.StatusNotFound || r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%s: %d %v %s", name, r.Status, r.Header, r.Body)
		}
	}

	// Nothing was created: the subject has one place left of two, and
	// initialize without the header opens a session as ever.
	g.initialize(t, tok)
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init}); r.Status != http.StatusTooManyRequests {
		t.Errorf("third session: %d %s", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Errorf("DELETE of the first session: %d %s", r.Status, r.Body)
	}
}
