package gateway_test

import (
	"strings"
	"testing"
)

// The conformance fixture test_tool_with_logging sends its info log
// messages filtered by the level the session set with logging/setLevel,
// on whichever replica it was set, as mcp-go's SendLogMessageToClient
// filters: a session at error gets none. It sent them whatever the level.
// A session that never set a level gets them (MCP 2025-11-25: the server
// MAY decide which to send; the conformance scenario
// tools-call-with-logging expects them).
func TestFixtureLogsAtTheSessionsLevel(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true"), f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	logs := func(g *gw, meta map[string]any) int {
		t.Helper()
		params := map[string]any{"name": "test_tool_with_logging", "arguments": map[string]any{}}
		if meta != nil {
			params["_meta"] = meta
		}
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/call", params)})
		if m := r.rpc(t); r.Status != 200 || m.Error != nil || !strings.Contains(string(m.Result), "Tool with logging executed successfully") {
			t.Fatalf("tools/call test_tool_with_logging: %d %s %+v", r.Status, r.Body, r.Events)
		}
		n := strings.Count(string(r.Body), `"notifications/message"`)
		for _, e := range r.Events {
			n += strings.Count(e.Data, `"notifications/message"`)
		}
		return n
	}
	progress := map[string]any{"progressToken": "p-1"} // through mcp-go's transport
	if n := logs(a, nil); n != 3 {
		t.Errorf("no level set: %d log messages, want 3", n)
	}
	for _, c := range []struct {
		level string
		want  int
	}{{"error", 0}, {"warning", 0}, {"info", 3}, {"debug", 3}, {"emergency", 0}} {
		a.rpc(t, tok, sid, "logging/setLevel", map[string]any{"level": c.level}, nil)
		for where, g := range map[string]*gw{"A": a, "B": b} {
			if n := logs(g, nil); n != c.want {
				t.Errorf("level %s, called on %s: %d log messages, want %d", c.level, where, n, c.want)
			}
			if n := logs(g, progress); n != c.want {
				t.Errorf("level %s, called on %s with a progressToken: %d log messages, want %d", c.level, where, n, c.want)
			}
		}
	}
}
