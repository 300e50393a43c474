package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// initialize without params.protocolVersion (absent, null, "", or no
// params) is -32602 naming the member and the supported versions, with the
// request's id and no session: the member is required (MCP schema,
// InitializeRequest), and mcp-go negotiated 2025-03-26 for it. On /mcp
// HTTP 200 as for other invalid params; on /messages 400, refused on the
// POST. An initialize that names a version is served as ever.
func TestInitializeWithoutProtocolVersion(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	before := sessionKeys(t, f)
	info := map[string]any{"name": "t", "version": "1"}
	bodies := []map[string]any{
		call("initialize", map[string]any{"capabilities": map[string]any{}, "clientInfo": info}),
		call("initialize", map[string]any{"protocolVersion": nil, "capabilities": map[string]any{}, "clientInfo": info}),
		call("initialize", map[string]any{"protocolVersion": "", "capabilities": map[string]any{}, "clientInfo": info}),
		call("initialize", nil),
	}
	check := func(where string, r *resp, body map[string]any, status int) {
		t.Helper()
		m := r.rpc(t)
		if r.Status != status || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "params.protocolVersion is required") ||
			!strings.Contains(m.Error.Message, "2025-11-25") || string(m.ID) != string(mustJSON(t, body["id"])) || r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%s %v: %d %v %s", where, body["params"], r.Status, r.Header, r.Body)
		}
	}
	for _, body := range bodies {
		check("/mcp", g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: body}), body, http.StatusOK)
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}
	g.initialize(t, tok)

	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	for _, body := range bodies {
		check("/messages", g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}), body, http.StatusBadRequest)
	}
	legacyInit(t, s, g, tok, path)
}
