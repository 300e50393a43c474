package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// A client's JSON-RPC response (to a request the server sent, or one it
// never sent) is accepted with 202 and no body (Streamable HTTP, "Sending
// Messages to the Server": a response the server accepts gets 202) and
// changes nothing: not 404, which tells the client its session is gone
// and makes it initialize again, and never an answer of its own. Over
// legacy /messages it is not answered on the stream either, where an
// error "response to the response" carried the client's id and could be
// taken for the answer to the client's own request of that id.
func TestClientResponsesAreAccepted(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	responses := map[string]string{
		"error response":      `{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"not supported"}}`,
		"result to nothing":   `{"jsonrpc":"2.0","id":5,"result":{"x":1}}`,
		"string id result":    `{"jsonrpc":"2.0","id":"s-1","result":{"x":1}}`,
		"string id error":     `{"jsonrpc":"2.0","id":"s-2","error":{"code":-1,"message":"x"}}`,
		"empty result (ping)": `{"jsonrpc":"2.0","id":6,"result":{}}`,
		"error with data":     `{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"x","data":{"a":[1]}}}`,
		"big id error":        `{"jsonrpc":"2.0","id":9007199254740993,"error":{"code":-1,"message":"x"}}`,
	}
	check := func(where string) {
		t.Helper()
		for name, body := range responses {
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
			if r.Status != http.StatusAccepted || len(r.Body) != 0 || len(r.Events) != 0 {
				t.Errorf("%s, %s: %d %q, want 202 and no body", where, name, r.Status, r.Body)
			}
		}
		// The session is still live.
		g.rpc(t, tok, sid, "ping", nil, nil)
	}
	check("no stream open")
	// With the session's GET stream open on the replica (registered with
	// mcp-go while it lasts) the answer is the same.
	s := g.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
	check("GET stream open")
	s.cancel()

	// Legacy HTTP+SSE: 202, and nothing on the stream for the response's id.
	l, path := g.openLegacy(t, tok)
	for name, body := range responses {
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}); r.Status != http.StatusAccepted {
			t.Errorf("legacy %s: %d %s", name, r.Status, r.Body)
		}
	}
	// Two pings answered in turn: whatever the stream carries before their
	// answers must not answer one of the client's responses.
	for _, id := range []int{1001, 1002} {
		ping := map[string]any{"jsonrpc": "2.0", "id": id, "method": "ping"}
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: ping}); r.Status != http.StatusAccepted {
			t.Fatalf("legacy ping: %d %s", r.Status, r.Body)
		}
		want, _ := json.Marshal(id)
		l.next(func(e sseEvent) bool {
			var m rpcMessage
			if json.Unmarshal([]byte(e.Data), &m) != nil || m.Method != "" {
				return false
			}
			if string(m.ID) != string(want) {
				t.Errorf("legacy stream answered a client's response: %s", e.Data)
				return false
			}
			return true
		})
	}
}

// Under the conformance fixture profile a client's response still goes to
// mcp-go's transport first (a fixture's sampling or elicitation could be
// waiting for it there); when nothing waits, its 404 or 400 becomes the
// same 202.
func TestClientResponsesAreAcceptedWithFixtures(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"not supported"}}`,
		`{"jsonrpc":"2.0","id":5,"result":{"x":1}}`,
		`{"jsonrpc":"2.0","id":"s-1","result":{"x":1}}`,
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if r.Status != http.StatusAccepted || len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
			t.Errorf("%s: %d %v %q, want 202 and no body", body, r.Status, r.Header, r.Body)
		}
	}
	g.rpc(t, tok, sid, "ping", nil, nil)
}
