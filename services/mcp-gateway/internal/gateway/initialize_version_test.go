package gateway_test

import (
	"encoding/json"
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

// An initialize over Streamable HTTP (/mcp) that asks for a version this
// transport does not serve — 2024-11-05, whose transport is HTTP+SSE
// (/sse), 2026-07-28, which has no initialize, or one unknown (an earlier
// or a later date) — is answered with the newest served there,
// 2025-11-25, and its session is of that version: "Otherwise, the server
// MUST respond with another protocol version it supports. This SHOULD be
// the latest version supported by the server" (MCP 2025-11-25, Lifecycle,
// "Version Negotiation"). mcp-go answered 2024-11-05, a session of a
// revision without this transport. A version served on /mcp is answered
// as asked, and a legacy initialize (/messages) negotiates 2024-11-05.
func TestInitializeNegotiatesAVersionOfItsTransport(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	negotiated := func(r *resp) string {
		t.Helper()
		var res struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if m := r.rpc(t); m.Error != nil || json.Unmarshal(m.Result, &res) != nil {
			t.Fatalf("initialize: %d %s", r.Status, r.Body)
		}
		return res.ProtocolVersion
	}
	for asked, want := range map[string]string{
		"2024-11-05": "2025-11-25", "1999-01-01": "2025-11-25", "2099-12-31": "2025-11-25", "2026-07-28": "2025-11-25",
		"2025-11-25": "2025-11-25", "2025-06-18": "2025-06-18", "2025-03-26": "2025-03-26",
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
			"protocolVersion": asked, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}})})
		sid := r.Header.Get("Mcp-Session-Id")
		if got := negotiated(r); r.Status != http.StatusOK || got != want || sid == "" {
			t.Errorf("initialize over /mcp asking %s: %d, negotiated %q, session %q; want %s and a session", asked, r.Status, got, sid, want)
			continue
		}
		if asked != "2024-11-05" {
			continue
		}
		// The session is 2025-11-25's: requests at it are served, at
		// 2024-11-05 refused as at any version but the negotiated one.
		if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: want, Body: call("tools/list", nil)}); r.Status != http.StatusOK || r.rpc(t).Error != nil {
			t.Errorf("tools/list at %s in the session: %d %s", want, r.Status, r.Body)
		}
		if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: asked, Body: call("tools/list", nil)}); r.Status != http.StatusBadRequest {
			t.Errorf("tools/list at %s in the session: %d %s, want 400", asked, r.Status, r.Body)
		}
	}

	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	init := call("initialize", map[string]any{"protocolVersion": "2024-11-05", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "legacy", "version": "1"}})
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize over /messages: %d %s", r.Status, r.Body)
	}
	if e := s.next(response(init["id"])); !strings.Contains(e.Data, `"protocolVersion":"2024-11-05"`) {
		t.Errorf("initialize over /messages asking 2024-11-05: %s, want 2024-11-05", e.Data)
	}
}
