package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// initialize without params.capabilities or params.clientInfo (absent or
// null) was accepted: mcp-go took empty ones and opened a session. Both
// are required in InitializeRequest (MCP schema, every version), and the
// TypeScript SDK's server does not take such an initialize; every client
// SDK, the conformance suite and the Inspector send them. It is -32602
// naming each missing member, with the request's id and no session: on
// /mcp HTTP 200, as for other invalid params; on /messages 400, refused
// on the POST. An initialize with all three members is served as ever.
func TestInitializeWithoutCapabilitiesOrClientInfo(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	before := sessionKeys(t, f)
	info := map[string]any{"name": "t", "version": "1"}
	caps := map[string]any{}
	cases := []struct {
		params  map[string]any
		missing []string
	}{
		{map[string]any{"protocolVersion": version, "capabilities": caps}, []string{"clientInfo"}},
		{map[string]any{"protocolVersion": version, "capabilities": caps, "clientInfo": nil}, []string{"clientInfo"}},
		{map[string]any{"protocolVersion": version, "clientInfo": info}, []string{"capabilities"}},
		{map[string]any{"protocolVersion": version, "capabilities": nil, "clientInfo": info}, []string{"capabilities"}},
		{map[string]any{"protocolVersion": version}, []string{"capabilities", "clientInfo"}},
		{map[string]any{}, []string{"protocolVersion", "capabilities", "clientInfo"}},
	}
	all := []string{"protocolVersion", "capabilities", "clientInfo"}
	check := func(where string, r *resp, body map[string]any, missing []string, status int) {
		t.Helper()
		m := r.rpc(t)
		if r.Status != status || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%s %v: %d %v %s, want -32602 with the id and no session", where, body["params"], r.Status, r.Header, r.Body)
			return
		}
		for _, member := range all {
			named := strings.Contains(m.Error.Message, "params."+member+" is required")
			want := strings.Contains(strings.Join(missing, " "), member)
			if named != want {
				t.Errorf("%s %v: message %q names params.%s: %v, want %v", where, body["params"], m.Error.Message, member, named, want)
			}
		}
	}
	for _, c := range cases {
		body := call("initialize", c.params)
		check("/mcp", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: body}), body, c.missing, http.StatusOK)
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}
	g.initialize(t, tok) // all three members: served

	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	for _, c := range cases {
		body := call("initialize", c.params)
		check("/messages", g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}), body, c.missing, http.StatusBadRequest)
	}
	// The refusals took no claim: the session initializes now.
	legacyInit(t, s, g, tok, path)
}
