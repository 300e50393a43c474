package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// The gateway answers every list in one page and never issues a cursor,
// so any cursor a client sends is invalid: -32602 (MCP "Pagination":
// invalid cursors SHOULD get Invalid params), not a silently empty or
// shifted page — mcp-go took any base64 text for the name to list after
// ("eg==", "z", answered an empty tool list). Over /mcp, legacy /messages
// and the stateless era alike; no cursor, null or "" lists everything.
func TestInvalidCursorIsRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	methods := []string{"tools/list", "resources/list", "resources/templates/list"}
	cursors := []string{`"eg=="`, `"YQ=="`, `"not base64!"`, `"dG9vbDY1NA=="`, `5`, `{}`}
	for _, method := range methods {
		for _, cursor := range cursors {
			body := `{"jsonrpc":"2.0","id":3,"method":"` + method + `","params":{"cursor":` + cursor + `}}`
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
			m := r.rpc(t)
			if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "cursor") || string(m.ID) != "3" {
				t.Errorf("%s with cursor %s: %d %s, want -32602 naming the cursor", method, cursor, r.Status, r.Body)
			}
		}
		for _, cursor := range []string{"", `,"cursor":null`, `,"cursor":""`} {
			body := `{"jsonrpc":"2.0","id":4,"method":"` + method + `","params":{"_meta":{}` + cursor + `}}`
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
			if m := r.rpc(t); m.Error != nil || m.Result == nil {
				t.Errorf("%s with params %s: %d %s", method, cursor, r.Status, r.Body)
			}
		}
	}
	var first struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", map[string]any{"cursor": nil}, &first)
	if len(first.Tools) == 0 {
		t.Errorf("tools/list without a cursor listed nothing")
	}

	// Legacy /messages refuses it on the POST, like non-object arguments.
	_, path := g.openLegacy(t, tok)
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"cursor":"eg=="}}`})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != "5" {
		t.Errorf("legacy tools/list with a cursor: %d %s", r.Status, r.Body)
	}

	// The stateless era (no session) too.
	meta := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "modern", "version": "1"},
	}
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28", Header: map[string]string{"Mcp-Method": "tools/list"},
		Body: map[string]any{"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": map[string]any{"cursor": "eg==", "_meta": meta}}})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 {
		t.Errorf("stateless tools/list with a cursor: %d %s", r.Status, r.Body)
	}
}
