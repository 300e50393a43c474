package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// initialize whose clientInfo lacks name or version, or has one that is
// no string (null taken for absent), was accepted: mcp-go took an empty
// name. The MCP schema's Implementation (2024-11-05 through 2025-11-25,
// every version the gateway negotiates) requires both, as strings. And the
// members InitializeRequest requires were looked up as encoding/json
// matches names, ignoring case: an initialize with only "Capabilities",
// "ClientInfo" or "ProtocolVersion" (or clientInfo's "Name", "Version")
// counted as having them, where JSON-RPC and MCP names are case-sensitive
// and such a request lacks the member. Each is -32602 naming the member,
// with the request's id and no session, on both transports (/mcp HTTP 200,
// /messages 400); an exact member beside a case variant of it is refused
// too (decoders that ignore case take either). Exactly spelt members are
// served as ever.
func TestInitializeClientInfoAndMemberCase(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	before := sessionKeys(t, f)
	caps := map[string]any{}
	info := map[string]any{"name": "t", "version": "1"}
	cases := []struct {
		name   string
		params map[string]any
		want   string // what the -32602 message names
	}{
		{"no name", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"version": "1"}}, "params.clientInfo.name is required"},
		{"no version", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"name": "t"}}, "params.clientInfo.version is required"},
		{"empty clientInfo", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{}}, "params.clientInfo.name is required"},
		{"null name", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"name": nil, "version": "1"}}, "params.clientInfo.name is required"},
		{"numeric name", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"name": 7, "version": "1"}}, "params.clientInfo.name must be a string"},
		{"numeric version", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"name": "t", "version": 1}}, "params.clientInfo.version must be a string"},
		{"Name", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"Name": "t", "version": "1"}}, "params.clientInfo.name is required"},
		{"VERSION", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]any{"name": "t", "VERSION": "1"}}, "params.clientInfo.version is required"},
		{"Capabilities", map[string]any{"protocolVersion": version, "Capabilities": caps, "clientInfo": info}, "params.capabilities is required"},
		{"ClientInfo", map[string]any{"protocolVersion": version, "capabilities": caps, "ClientInfo": info}, "params.clientInfo is required"},
		{"ProtocolVersion", map[string]any{"ProtocolVersion": version, "capabilities": caps, "clientInfo": info}, "params.protocolVersion is required"},
		{"both spellings", map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": info, "clientinfo": map[string]any{"name": "x"}}, `"clientinfo"`},
	}
	check := func(where string, r *resp, body map[string]any, want string, status int) {
		t.Helper()
		m := r.rpc(t)
		if r.Status != status || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			r.Header.Get("Mcp-Session-Id") != "" || !strings.Contains(m.Error.Message, want) {
			t.Errorf("%s %v: %d %s, want %d -32602 naming %q with the id and no session", where, body["params"], r.Status, r.Body, status, want)
		}
	}
	for _, c := range cases {
		body := call("initialize", c.params)
		check("/mcp "+c.name, g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: body}), body, c.want, http.StatusOK)
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}
	// Exactly spelt, with optional members of Implementation: served.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": caps,
		"clientInfo": map[string]any{"name": "t", "version": "", "title": "T", "websiteUrl": "https://t.example"},
	})})
	if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || r.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize with name, version and optional members: %d %s, want a session", r.Status, r.Body)
	}

	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	for _, c := range cases {
		body := call("initialize", c.params)
		check("/messages "+c.name, g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}), body, c.want, http.StatusBadRequest)
	}
	// The refusals took no claim: the session initializes now.
	legacyInit(t, s, g, tok, path)
}
