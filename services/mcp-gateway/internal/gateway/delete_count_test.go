package gateway_test

import (
	"net/http"
	"testing"
)

// A DELETE /mcp whose session record Redis refused to delete (an ACL
// denies DEL) leaves the session alive, and was counted
// tollgate_mcp_sessions_total{event="deleted"} all the same (before it
// was served). It is counted delete_failed; a DELETE that succeeds,
// deleted.
func TestStreamableDeleteCountedByOutcome(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	const deleted = `tollgate_mcp_sessions_total{event="deleted",transport="streamable-http"}`
	const failed = `tollgate_mcp_sessions_total{event="delete_failed",transport="streamable-http"}`
	allowDel := denyCommand(t, f.Redis.Client(), "del")
	r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version})
	allowDel()
	if r.Status < 500 {
		t.Fatalf("DELETE while Redis refuses DEL: %d %s, want a 5xx", r.Status, r.Body)
	}
	if d, e := g.metric(t, deleted), g.metric(t, failed); d != 0 || e != 1 {
		t.Fatalf("after a failed DELETE: deleted %v, delete_failed %v; want 0 and 1", d, e)
	}
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if d, e := g.metric(t, deleted), g.metric(t, failed); d != 1 || e != 1 {
		t.Fatalf("after a DELETE: deleted %v, delete_failed %v; want 1 and 1", d, e)
	}
}
