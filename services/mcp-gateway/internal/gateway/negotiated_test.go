package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// When the negotiated version of a Streamable HTTP session could not be
// recorded (Redis refused the write after the session was created: here
// the record's script is not yet cached and an ACL denies EVAL), mcp-go's
// answer went out (200, Mcp-Session-Id) for a session that every replica
// reads without a version, client or capabilities, and that stayed until
// it idled out. The initialize is now refused with 503 and Retry-After,
// without an Mcp-Session-Id, and its session is deleted; the client's
// next initialize is served once Redis accepts the write.
func TestStreamableInitializeRefusedWhenTheVersionIsNotRecorded(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	rc := f.Redis.Client()
	// A legacy stream creates a session, which caches the creation's
	// scripts; the record of a negotiated version (another script) is
	// not cached until an initialize is answered.
	g.openStream(t, "/sse", tok, nil)
	before := sessionKeys(t, f)
	allowEval := denyCommand(t, rc, "eval")
	init := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "tollgate-test", "version": "1.0"}})
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init})
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("initialize whose version was not recorded: %d (session %q) %s, want 503",
			r.Status, r.Header.Get("Mcp-Session-Id"), r.Body)
	}
	if got := r.Header.Get("Retry-After"); got == "" {
		t.Error("503 to the initialize without Retry-After")
	}
	if id := r.Header.Get("Mcp-Session-Id"); id != "" {
		t.Errorf("503 to the initialize names session %q", id)
	}
	if !strings.Contains(string(r.Body), "temporarily unavailable") {
		t.Errorf("503 to the initialize: %s", r.Body)
	}
	// With the request's id (JSON-RPC 2.0 §5), not null.
	if wantID, _ := json.Marshal(init["id"]); string(r.rpc(t).ID) != string(wantID) {
		t.Errorf("503 to the initialize: id %s, want %s", r.rpc(t).ID, wantID)
	}
	// Counted once, as what the client got (review2: also as a 200, the
	// held answer's status).
	if n := g.metric(t, `tollgate_mcp_requests_total{method="initialize",result="200",transport="streamable-http"}`); n != 0 {
		t.Errorf("the refused initialize was counted as %v answered (200)", n)
	}
	if n := g.metric(t, `tollgate_mcp_requests_total{method="initialize",result="unavailable",transport="streamable-http"}`); n != 1 {
		t.Errorf("the refused initialize was counted %v times as unavailable, want 1", n)
	}
	allowEval()
	if n := sessionKeys(t, f); n != before {
		t.Errorf("session keys after the refused initialize: %d, want %d (its session deleted)", n, before)
	}
	id := g.initialize(t, tok)
	var tools struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	g.rpc(t, tok, id, "tools/list", nil, &tools)
	if len(tools.Tools) == 0 {
		t.Fatal("tools/list on the new session: no tools")
	}
	if n := g.metric(t, `tollgate_mcp_requests_total{method="initialize",result="200",transport="streamable-http"}`); n != 1 {
		t.Errorf("the answered initialize was counted %v times (200), want 1", n)
	}
}

// denyCommand makes the test's Redis refuse cmd to the default user (an
// ACL rule "-cmd") and returns the function that allows it again; it is
// allowed again at the end of the test in any case.
func denyCommand(t *testing.T, rc *redisx.Client, cmd string) (allow func()) {
	t.Helper()
	if err := rc.Do(t.Context(), "ACL", "SETUSER", "default", "-"+cmd).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Do(context.Background(), "ACL", "SETUSER", "default", "+"+cmd) })
	return func() {
		t.Helper()
		if err := rc.Do(context.Background(), "ACL", "SETUSER", "default", "+"+cmd).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// An initialize whose session could not be created (Redis refused the
// creation's script: an ACL makes the session records read-only) was
// answered 503 with "id": null although its id was read; it now carries
// the request's id (JSON-RPC 2.0 §5: null only when the id could not be
// detected), as the 429 of the session cap does. The test denied EVALSHA
// and EVAL instead, counting on the first initialize's rate-limit lease
// to decide the next request in memory; a lease is usable for 250 ms, and
// on a loaded machine (CI) the next request came later: the rate limiter
// took a new lease, was refused, and its own 503 (id null) failed the test.
// Only the session records are refused now; the rate limiter's keys stay
// writable, however long the request takes to come.
func TestStreamableInitializeUnavailableCarriesItsID(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-7", allScopes)
	g.initialize(t, tok)
	f.Redis.RestrictKeys(t, "test:mcp:session:", "%R")
	init := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "tollgate-test", "version": "1.0"}})
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: init})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("initialize whose session was not created: %d (Retry-After %q) %s, want 503 with Retry-After",
			r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	m := r.rpc(t)
	if wantID, _ := json.Marshal(init["id"]); string(m.ID) != string(wantID) || m.Error == nil || m.Error.Code != -32603 {
		t.Fatalf("503 to the initialize: %s, want error -32603 with id %s", r.Body, wantID)
	}
}
