package gateway_test

import (
	"strings"
	"testing"
)

// TestStatelessFixtureLogsOnlyAtTheRequestsLevel: in the stateless era a
// request asks for log messages with _meta io.modelcontextprotocol/logLevel
// (MCP 2026-07-28, SEP-2575): without it the server sends no
// notifications/message for the request. The conformance fixture
// test_tool_with_logging sent its three whatever the request asked
// (brkgosdk F5); a level above info gets none, debug gets all three.
func TestStatelessFixtureLogsOnlyAtTheRequestsLevel(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	for _, c := range []struct {
		level string
		want  int
	}{{"", 0}, {"error", 0}, {"debug", 3}, {"info", 3}} {
		meta := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"go-sdk","version":"1.8.0"}`
		if c.level != "" {
			meta += `,"io.modelcontextprotocol/logLevel":"` + c.level + `"`
		}
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "test_tool_with_logging"},
			Body:   `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{},"_meta":{` + meta + `}}}`})
		logs := strings.Count(string(r.Body), `"notifications/message"`)
		for _, e := range r.Events {
			logs += strings.Count(e.Data, `"notifications/message"`)
		}
		if m := r.rpc(t); r.Status != 200 || m.Error != nil || !strings.Contains(string(m.Result), "Tool with logging executed successfully") || logs != c.want {
			t.Errorf("logLevel %q: %d, %d log messages (want %d): %s %+v", c.level, r.Status, logs, c.want, r.Body, r.Events)
		}
	}
}
