package gateway_test

import (
	"strings"
	"testing"
)

// A stateless (2026-07-28) POST whose Accept admits only application/json
// gets its call's result alone, as one JSON object: the conformance
// fixtures' notifications (progress, log messages) are not sent, since
// they would turn the answer into an event stream the client did not
// accept (MCP 2025-11-25, Streamable HTTP, "Sending Messages to the
// Server"; docs/reference/mcp.md). Twenty calls, so that a forwarder's
// race (some notifications written, the rest dropped) shows.
func TestStatelessJSONOnlyGetsTheResultAlone(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	const meta = `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/logLevel":"info"`
	for i := 0; i < 20; i++ {
		tool := []string{"test_tool_with_progress", "test_tool_with_logging"}[i%2]
		body := `{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"progressToken":"j` + itoa(i) + `",` + meta + `}}}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Accept": "application/json", "Mcp-Method": "tools/call", "Mcp-Name": tool}, Body: body})
		if ct := r.Header.Get("Content-Type"); r.Status != 200 || !strings.HasPrefix(ct, "application/json") || len(r.Events) != 0 ||
			!strings.Contains(string(r.Body), `"id":`+itoa(i)+`,`) || !strings.Contains(string(r.Body), `"result"`) {
			t.Errorf("call %d (%s), Accept application/json: %d %s, %d events %+v, body %s; want 200 application/json, the result alone",
				i, tool, r.Status, ct, len(r.Events), r.Events, r.Body)
		}
	}
}
