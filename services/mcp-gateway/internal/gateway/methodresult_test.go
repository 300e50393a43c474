package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestMethodWithResultIsInvalidRequest: a message with a method and a
// result (or an error) is neither a request nor a response (JSON-RPC 2.0
// §4, §5): -32600 on every transport. mcp-go took it for a response, so
// on a legacy session each one held a place in the backlog of answers the
// stream waits for, never given back: after 32, every request on the
// session got 429 for good (review6).
func TestMethodWithResultIsInvalidRequest(t *testing.T) {
	f := newFleet(t)
	tok := f.Token("user-7", allScopes)
	a := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	s := a.openStream(t, "/sse", tok, nil)
	defer s.Close()
	path := s.endpoint()
	legacyInit(t, s, a, tok, path)
	for i := range 40 {
		member := `"result":{}`
		if i%2 == 1 {
			member = `"error":{"code":1,"message":"x"}`
		}
		r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: fmt.Sprintf(`{"jsonrpc":"2.0","id":"r-%d","method":"ping",%s}`, i, member)})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "not both") {
			t.Fatalf("legacy message %d with a method and %s: %d %s, want 400 -32600", i, member, r.Status, r.Body)
		}
	}
	if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","id":"p","method":"ping"}`}); r.Status != http.StatusAccepted {
		t.Fatalf("a ping after 40 refused messages: %d %s, want 202", r.Status, r.Body)
	}

	sid := a.initialize(t, tok)
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: `{"jsonrpc":"2.0","id":7,"method":"ping","result":{}}`})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || string(m.ID) != "7" {
		t.Fatalf("/mcp message with a method and a result: %d %s, want 400 -32600 with id 7", r.Status, r.Body)
	}
}
