package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Each POST's answer form is its own: a session that was sent a progress
// stream on a replica is answered with JSON there afterwards, as on every
// other replica, when the request sends nothing before its answer.
// mcp-go's transport keeps a session it registered on SSE once it sent it
// a notification (streamableHttpSession.upgradeToSSE), but here it
// registers none: initialize is answered by direct.go, a GET stream is
// listen's session, and every request the transport serves (a tools/call
// with progress, a prompts/get, a resumption) gets a throwaway session of
// its own. Checked after a progress stream, after its resumption
// (Last-Event-ID, mcp-go's) and with a GET stream open, on the replica
// that streamed and on another, for a request direct.go answers (a
// tools/call without progress) and one the transport answers
// (prompts/get).
func TestAnswerFormIsChosenPerRequest(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true"), f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)

	jsonAnswers := func(when string) {
		t.Helper()
		for name, g := range map[string]*gw{"A (streamed)": a, "B": b} {
			for _, c := range []map[string]any{
				call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}}),
				call("prompts/get", map[string]any{"name": "test_simple_prompt"}),
			} {
				r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: c})
				if ct := r.Header.Get("Content-Type"); r.Status != http.StatusOK || !strings.HasPrefix(ct, "application/json") || len(r.Events) != 0 {
					t.Errorf("%s, %s on %s: %d %q %d events, want a JSON answer: %s", when, c["method"], name, r.Status, ct, len(r.Events), r.Body)
				} else if m := r.rpc(t); m.Result == nil {
					t.Errorf("%s, %s on %s: %s", when, c["method"], name, r.Body)
				}
			}
		}
	}
	jsonAnswers("before any stream")

	progress := call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}, "_meta": map[string]any{"progressToken": "p-1"}})
	live := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: progress})
	if ct := live.Header.Get("Content-Type"); live.Status != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") || len(live.Events) < 2 || live.Events[0].ID == "" {
		t.Fatalf("tools/call with progress on A: %d %q %+v", live.Status, ct, live.Events)
	}
	jsonAnswers("after a progress stream on A")

	resumed := a.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Header: map[string]string{"Last-Event-ID": live.Events[0].ID}})
	if resumed.Status != http.StatusOK || len(resumed.Events) != len(live.Events)-1 {
		t.Fatalf("resumed on A: %d %+v %s", resumed.Status, resumed.Events, resumed.Body)
	}
	jsonAnswers("after its resumption on A")

	s := a.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
	jsonAnswers("with a GET stream open on A")
	s.Close()
}
