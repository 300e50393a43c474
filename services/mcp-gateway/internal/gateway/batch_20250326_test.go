package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// MCP 2025-03-26 has every implementation support receiving JSON-RPC
// batches; 2025-06-18 removed them. A session negotiated at 2025-03-26
// gets each message of a batch answered (an array of the responses, in
// JSON; 202 for notifications and responses only); sessions of later
// versions keep refusing batches with -32600.
func TestBatchesIn20250326Sessions(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize20250326(t, tok)
	// A batch of notifications only: 202, no body.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`})
	if r.Status != http.StatusAccepted || len(r.Body) != 0 {
		t.Fatalf("batch of one notification: %d %s", r.Status, r.Body)
	}
	batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},
		{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77}},
		{"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"health.check","arguments":{}}},
		{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"},
		{"jsonrpc":"2.0","id":4,"method":"no/such/method"},
		1,
		{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"x","version":"1"}}},
		{"jsonrpc":"2.0","id":6,"result":{}}]`
	for _, v := range []string{"", "2025-03-26"} {
		r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: v, Body: batch})
		var answers []rpcMessage
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(r.Body, &answers) != nil {
			t.Fatalf("batch (version header %q): %d %s", v, r.Status, r.Body)
		}
		byID := map[string]rpcMessage{}
		for _, a := range answers {
			byID[string(a.ID)] = a
		}
		ok := len(answers) == 6 &&
			byID["1"].Result != nil &&
			strings.Contains(string(byID[`"t"`].Result), `"structuredContent"`) &&
			strings.Contains(string(byID["9007199254740993"].Result), `"tools"`) &&
			byID["4"].Error != nil && byID["4"].Error.Code == -32601 &&
			byID["null"].Error != nil && byID["null"].Error.Code == -32600 &&
			byID["5"].Error != nil && byID["5"].Error.Code == -32600
		if !ok {
			t.Errorf("batch (version header %q) answered %s", v, r.Body)
		}
	}
	// Only responses: 202. An empty batch: 400 -32600.
	if r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: `[{"jsonrpc":"2.0","id":8,"result":{}}]`}); r.Status != http.StatusAccepted || len(r.Body) != 0 {
		t.Errorf("batch of a response: %d %s", r.Status, r.Body)
	}
	if r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: `[]`}); r.Status != http.StatusBadRequest || r.rpc(t).Error == nil || r.rpc(t).Error.Code != -32600 {
		t.Errorf("empty batch: %d %s", r.Status, r.Body)
	}
	// At most 64 messages: one more is refused whole, before any runs.
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"jsonrpc":"2.0","method":"notifications/initialized"},`, 65), ",") + "]"
	if r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: many}); r.Status != http.StatusBadRequest || r.rpc(t).Error == nil || !strings.Contains(r.rpc(t).Error.Message, "at most 64") {
		t.Errorf("batch of 65: %d %s", r.Status, r.Body)
	}
	if r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: strings.Replace(many, `{"jsonrpc":"2.0","method":"notifications/initialized"},`, "", 1)}); r.Status != http.StatusAccepted {
		t.Errorf("batch of 64: %d %s", r.Status, r.Body)
	}
	// Another subject's token with the session's id: 404, as for a single message.
	if r = g.do(t, req{Method: "POST", Path: "/mcp", Token: f.Token("user-2", allScopes), Session: sid, Body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`}); r.Status != http.StatusNotFound {
		t.Errorf("batch in another subject's session: %d %s", r.Status, r.Body)
	}
	// Later versions: refused, as before.
	newer := g.initialize(t, tok)
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: newer, Version: version, Body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 {
		t.Errorf("batch in a %s session: %d %s", version, r.Status, r.Body)
	}
}
