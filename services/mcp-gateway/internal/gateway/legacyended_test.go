package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// When a legacy stream ended while Redis refused to delete its session
// (here an ACL denies DEL), the record outlived the stream, and a POST
// /messages to the session was accepted (202) and its message dropped —
// the client was never told — until the record idled out. A POST to the
// replica that held the stream is now 404 and deletes the record. One
// posted to another replica is relayed there, which deletes the record;
// that POST was answered 202 although its message was dropped, and is now
// 404 too: the replica it was posted to waits for the stream's replica to
// say what became of the message (answerRelay).
func TestLegacySessionWhoseDeleteFailedIsNotFound(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-7", allScopes)
	endWithoutDelete := func() string {
		t.Helper()
		before := strings.Count(a.Logs.String(), "could not delete ended SSE session")
		s, path := a.openLegacy(t, tok)
		allowDel := denyCommand(t, f.Redis.Client(), "del")
		s.Close()
		for deadline := time.Now().Add(10 * time.Second); strings.Count(a.Logs.String(), "could not delete ended SSE session") == before; {
			if time.Now().After(deadline) {
				t.Fatal("the stream's end was not logged as a failed delete")
			}
			time.Sleep(50 * time.Millisecond)
		}
		allowDel()
		return path
	}
	ping := func(g *gw, path string) int {
		t.Helper()
		return g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("ping", nil)}).Status
	}

	path := endWithoutDelete()
	// The failed delete is counted as such, not as a deleted session.
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="deleted",transport="sse"}`); v != 0 {
		t.Errorf(`sessions_total{event="deleted",transport="sse"} = %v after a failed delete, want 0`, v)
	}
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="delete_failed",transport="sse"}`); v != 1 {
		t.Errorf(`sessions_total{event="delete_failed",transport="sse"} = %v, want 1`, v)
	}
	if got := ping(a, path); got != http.StatusNotFound {
		t.Fatalf("POST to the replica whose stream ended: %d, want 404", got)
	}
	if got := ping(b, path); got != http.StatusNotFound {
		t.Fatalf("POST to the other replica after that: %d, want 404 (record deleted)", got)
	}

	path = endWithoutDelete()
	if got := ping(b, path); got != http.StatusNotFound {
		t.Fatalf("first POST relayed to the replica whose stream ended: %d, want 404 (nobody will deliver it)", got)
	}
	if got := ping(b, path); got != http.StatusNotFound {
		t.Fatalf("POST after the relayed one: %d, want 404 (the stream's replica deleted the record)", got)
	}
	if got := ping(a, path); got != http.StatusNotFound {
		t.Fatalf("POST to the stream's replica after that: %d, want 404", got)
	}
}
