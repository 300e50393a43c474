package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A tools/call naming no tool the gateway serves is the protocol error MCP
// 2025-11-25 gives an unknown tool (server/tools, "Error Handling"):
// JSON-RPC -32602 "Unknown tool: <name>", with the request's id — on /mcp
// in a session (answered by the gateway and, asking for progress, where
// mcp-go's transport would answer), without a session, in the stateless
// era, as a 2025-03-26 batch's member, and on legacy /messages, locally
// and relayed (refused on the POST, 400, as /messages refuses other
// invalid params). mcp-go answered -32602 "tool 'nope' not found: tool not
// found". A call without a name is "params.name is required"; a known
// tool is still called on each.
func TestUnknownToolIsInvalidParams(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	oldSid := a.initialize20250326(t, tok)
	_, path := a.openLegacy(t, tok)

	const weird = `<nope> & "co"`
	cases := []struct {
		name   string
		params map[string]any
		want   string // the whole message; "" for a result
	}{
		{"unknown", map[string]any{"name": "nope", "arguments": map[string]any{}}, "Unknown tool: nope"},
		{"unknown without arguments", map[string]any{"name": "identity.profilex"}, "Unknown tool: identity.profilex"},
		{"unknown, repeated unescaped", map[string]any{"name": weird, "arguments": map[string]any{}}, "Unknown tool: " + weird},
		{"no name", map[string]any{"arguments": map[string]any{}}, "invalid params: params.name is required: the name of a tool (tools/list names them)"},
		{"empty name", map[string]any{"name": ""}, "invalid params: params.name is required: the name of a tool (tools/list names them)"},
		{"known", map[string]any{"name": "identity.profile", "arguments": map[string]any{}}, ""},
	}
	meta := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "modern", "version": "1"},
	}
	check := func(t *testing.T, where string, want string, id any, status, wantStatus int, raw []byte, m rpcMessage) {
		t.Helper()
		wantID, _ := json.Marshal(id)
		switch {
		case status != wantStatus:
			t.Errorf("%s: HTTP %d, want %d: %.300s", where, status, wantStatus, raw)
		case string(m.ID) != string(wantID):
			t.Errorf("%s: id %s, want %s: %.300s", where, m.ID, wantID, raw)
		case want == "" && (m.Error != nil || m.Result == nil):
			t.Errorf("%s: %.300s, want the tool's result", where, raw)
		case want != "" && (m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want):
			t.Errorf("%s: %.300s, want -32602 %q", where, raw, want)
		case strings.Contains(string(raw), `\u003c`) || strings.Contains(string(raw), `\u0026`):
			t.Errorf("%s: HTML-escaped: %.300s", where, raw)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := call("tools/call", c.params)
			r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: m})
			check(t, "/mcp session", c.want, m["id"], r.Status, 200, r.Body, r.rpc(t))

			// Asking for progress: mcp-go's transport serves the call.
			p := map[string]any{"_meta": map[string]any{"progressToken": "p-1"}}
			for k, v := range c.params {
				p[k] = v
			}
			m = call("tools/call", p)
			r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: m})
			check(t, "/mcp session with a progress token", c.want, m["id"], r.Status, 200, r.Body, r.rpc(t))

			m = call("tools/call", c.params)
			r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: m})
			check(t, "/mcp without a session", c.want, m["id"], r.Status, 200, r.Body, r.rpc(t))

			m = call("tools/call", c.params)
			ping := call("ping", nil)
			r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: oldSid, Body: []any{m, ping}})
			var answers []rpcMessage
			if err := json.Unmarshal(r.Body, &answers); err != nil || len(answers) != 2 {
				t.Errorf("batch: %d %.300s", r.Status, r.Body)
			} else {
				check(t, "2025-03-26 batch", c.want, m["id"], r.Status, 200, r.Body, answers[0])
			}

			p = map[string]any{"_meta": meta}
			for k, v := range c.params {
				p[k] = v
			}
			m = call("tools/call", p)
			name, _ := c.params["name"].(string)
			r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
				Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": name}, Body: m})
			check(t, "/mcp 2026-07-28", c.want, m["id"], r.Status, 200, r.Body, r.rpc(t))

			for where, g := range map[string]*gw{"/messages": a, "/messages relayed": b} {
				m = call("tools/call", c.params)
				r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: m})
				if c.want == "" {
					if r.Status != http.StatusAccepted {
						t.Errorf("%s: HTTP %d %s, want 202 (answered on the stream)", where, r.Status, r.Body)
					}
					continue
				}
				check(t, where, c.want, m["id"], r.Status, http.StatusBadRequest, r.Body, r.rpc(t))
			}
		})
	}
}
