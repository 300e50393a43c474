package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A DELETE /mcp admitted to its session (from the replica's memory) whose
// record Redis then refuses to remove (an ACL denies DEL) was answered
// with mcp-go's plain-text 500 "Session termination failed: <the Redis
// error>", without Retry-After. A shared dependency's outage is 503 with
// Retry-After and the JSON-RPC error of every other request
// (docs/operations/failures.md); the session lives on, and once Redis
// takes the DEL again the session still serves and the DELETE ends it.
func TestStreamableDeleteRefusedByRedisIs503(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	allowDel := denyCommand(t, f.Redis.Client(), "del")
	r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version})
	allowDel()
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "5" {
		t.Fatalf("DELETE while Redis refuses DEL: %d (Retry-After %q) %s; want 503 with Retry-After: 5",
			r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var m struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is no JSON-RPC error: %v: %s", err, r.Body)
	}
	if m.JSONRPC != "2.0" || string(m.ID) != "null" || m.Error.Code != -32603 || m.Error.Message != "temporarily unavailable; retry shortly" {
		t.Errorf("body %s, want the JSON-RPC error -32603 \"temporarily unavailable; retry shortly\" with id null", r.Body)
	}
	if strings.Contains(strings.ToLower(string(r.Body)), "noperm") {
		t.Errorf("body tells Redis' error: %s", r.Body)
	}
	if v := g.metric(t, `tollgate_mcp_requests_total{method="DELETE",result="unavailable",transport="streamable-http"}`); v != 1 {
		t.Errorf(`requests_total{method="DELETE",result="unavailable"} = %v, want 1`, v)
	}

	// Redis takes DEL again: the session was not ended, serves, and ends.
	g.rpc(t, tok, sid, "tools/list", nil, nil)
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE once Redis is back: %d %s", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != http.StatusNotFound {
		t.Fatalf("ping after the DELETE: %d %s, want 404", r.Status, r.Body)
	}
}

// A DELETE /mcp whose record Redis removed but whose place in the
// (subject, client)'s session index it then refused to remove (an ACL
// denies ZREM: Store.Delete's second command) ended the session without
// telling the other replicas: the DELETE was answered as failed, and a
// replica that had admitted the session from memory went on serving it
// until its renewal was due. The session has ended: the DELETE is 200,
// announced to every replica, and the other replica answers 404 at once.
func TestStreamableDeleteWhoseIndexEntryStaysEndsTheSession(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	b.rpc(t, tok, sid, "ping", nil, nil) // b now admits the session from memory
	allowZrem := denyCommand(t, f.Redis.Client(), "zrem")
	r := a.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version})
	allowZrem()
	if r.Status != http.StatusOK {
		t.Fatalf("DELETE whose record was removed, its index entry not: %d %s, want 200", r.Status, r.Body)
	}
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != http.StatusNotFound {
		t.Fatalf("ping on the other replica after the DELETE: %d %s, want 404", r.Status, r.Body)
	}
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="deleted",transport="streamable-http"}`); v != 1 {
		t.Errorf(`sessions_total{event="deleted"} = %v, want 1`, v)
	}
}

// The same for an initialize that names the caller's live session in
// Mcp-Session-Id, which ends that session first (endReplacedSession): with
// ZREM refused, the old record was removed and the initialize refused 503
// without the end being announced, so a replica that had admitted the old
// session from memory went on serving it. The initialize now opens the new
// session, and the old one is 404 everywhere.
func TestReplacedSessionWhoseIndexEntryStaysEnds(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	old := a.initialize(t, tok)
	b.rpc(t, tok, old, "ping", nil, nil) // b now admits the old session from memory
	allowZrem := denyCommand(t, f.Redis.Client(), "zrem")
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: old, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "tollgate-test", "version": "1.0"}})})
	allowZrem()
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != http.StatusOK || sid == "" || sid == old {
		t.Errorf("initialize replacing a session whose index entry stays: %d %v %s, want 200 with a new session", r.Status, r.Header, r.Body)
	}
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: old, Version: version, Body: call("ping", nil)}); r.Status != http.StatusNotFound {
		t.Errorf("ping of the replaced session on the other replica: %d %s, want 404", r.Status, r.Body)
	}
}
