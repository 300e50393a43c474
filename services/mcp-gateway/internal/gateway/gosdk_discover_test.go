package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestLegacyServerDiscoverIsAnsweredOnTheStream: the Go MCP SDK's SSE
// client (v1.8.0, default options) sends server/discover (2026-07-28,
// SEP-2575) on /messages before initialize, and falls back to initialize
// on an error that is not a modern server's. On the 2024-11-05 transport
// answers travel on the stream: the POST is 202 and the stream carries
// -32601 with the request's id — on the stream's replica and relayed from
// another, before initialize and after it (never a discover result on a
// legacy stream) — and the fallback initialize is served. It was 400
// -32600 "session not initialized" on the POST, which the SDK never read
// as an answer (it failed with EOF).
func TestLegacyServerDiscoverIsAnsweredOnTheStream(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	discover := func(g *gw, id string) {
		t.Helper()
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"server/discover","params":{"_meta":{` +
			`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"go-sdk","version":"1.8.0"},` +
			`"io.modelcontextprotocol/clientCapabilities":{}}}}`
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		if r.Status != http.StatusAccepted {
			t.Fatalf("server/discover %s: %d %s, want 202 and its answer on the stream", id, r.Status, r.Body)
		}
		var wantID any
		_ = json.Unmarshal([]byte(id), &wantID)
		var m rpcMessage
		e := s.next(response(wantID))
		if json.Unmarshal([]byte(e.Data), &m); m.Error == nil || m.Error.Code != -32601 ||
			!strings.Contains(m.Error.Message, "server/discover") || m.Result != nil {
			t.Fatalf("server/discover %s: answered %s on the stream, want -32601", id, e.Data)
		}
	}
	discover(a, "1")
	discover(b, `"relayed"`) // from the replica without the stream
	init := call("initialize", map[string]any{"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "go-sdk", "version": "1.8.0"}})
	if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: init}); r.Status != http.StatusAccepted {
		t.Fatalf("initialize after server/discover: %d %s", r.Status, r.Body)
	}
	if e := s.next(response(init["id"])); !strings.Contains(e.Data, `"protocolVersion"`) {
		t.Fatalf("initialize after server/discover: %s", e.Data)
	}
	discover(a, "2")
	discover(b, "3")
}
