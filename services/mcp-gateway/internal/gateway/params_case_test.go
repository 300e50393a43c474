package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Params members spelt as mcp-go reads them but for letter case — a
// tools/call with "Name" and no "name", a resources/read with "URI", a
// logging/setLevel with "Level" — were served as if spelt right: encoding/
// json, the gateway's and mcp-go's decoder, matches member names ignoring
// case. JSON-RPC and MCP member names are case-sensitive, so such a request
// lacks the member. It is -32602 naming the member as sent and as it is
// spelt, with the request's id: HTTP 200 on /mcp, 400 on /messages. An
// unknown member that merely looks alike ("names") is ignored, as before.
func TestParamsMemberNamesAreCaseSensitive(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	cases := []struct {
		method string
		params map[string]any
		sent   string
	}{
		{"tools/call", map[string]any{"Name": "health.check", "arguments": map[string]any{}}, "Name"},
		{"tools/call", map[string]any{"name": "health.check", "ARGUMENTS": map[string]any{}}, "ARGUMENTS"},
		{"resources/read", map[string]any{"URI": "ui://widget/health-status-card-v1.html"}, "URI"},
		{"logging/setLevel", map[string]any{"Level": "debug"}, "Level"},
		{"resources/subscribe", map[string]any{"Uri": "ui://widget/health-status-card-v1.html"}, "Uri"},
	}
	for _, c := range cases {
		body := call(c.method, c.params)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			!strings.Contains(m.Error.Message, `"`+c.sent+`"`) {
			t.Errorf("/mcp %s %v: %d %s, want 200 -32602 naming %q with the id", c.method, c.params, r.Status, r.Body, c.sent)
		}
	}
	// Spelt exactly, with a look-alike unknown member: served.
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}, "names": "x"}, &res)
	if res.IsError {
		t.Errorf("health.check spelt exactly: %+v", res)
	}
	g.rpc(t, tok, sid, "logging/setLevel", map[string]any{"level": "debug"}, nil)

	_, path := g.openLegacy(t, tok)
	for _, c := range cases {
		body := call(c.method, c.params)
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			!strings.Contains(m.Error.Message, `"`+c.sent+`"`) {
			t.Errorf("/messages %s %v: %d %s, want 400 -32602 naming %q with the id", c.method, c.params, r.Status, r.Body, c.sent)
		}
	}
}
