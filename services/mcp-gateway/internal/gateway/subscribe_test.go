package gateway_test

import (
	"fmt"
	"strings"
	"testing"
)

// resources/subscribe takes only a URI that resources/list names or a
// template of resources/templates/list matches: another is refused with
// -32002 (resource not found, as resources/read refuses it), a URI that is
// not valid UTF-8 (an invalid byte, an unpaired surrogate escape) with
// -32602, and neither takes one of the session's 64 subscription places.
func TestSubscribeOnlyToResources(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true", "RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	send := func(body string) rpcMessage {
		t.Helper()
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if r.Status != 200 {
			t.Fatalf("%s: HTTP %d %s", body, r.Status, r.Body)
		}
		return r.rpc(t)
	}
	for i := range 64 {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"resources/subscribe","params":{"uri":"test://nothing/%d"}}`, i+1, i)
		if m := send(body); m.Error == nil || m.Error.Code != -32002 || !strings.Contains(m.Error.Message, "resource not found") {
			t.Fatalf("subscribe to no resource: %s %+v", m.Result, m.Error)
		}
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":"u1","method":"resources/subscribe","params":{"uri":"test://template/` + "\xff\xfe" + `/data"}}`,
		`{"jsonrpc":"2.0","id":"u2","method":"resources/subscribe","params":{"uri":"test://template/\ud800/data"}}`,
		`{"jsonrpc":"2.0","id":"u3","method":"resources/read","params":{"uri":"test://template/\udfff/data"}}`,
	} {
		if m := send(body); m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "not valid UTF-8") {
			t.Errorf("%q: %s %+v", body, m.Result, m.Error)
		}
	}
	// A replacement character the client spelled is valid text (a URI
	// that names nothing here, like any other).
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":"r1","method":"resources/subscribe","params":{"uri":"test://nothing/\ufffd"}}`,
		`{"jsonrpc":"2.0","id":"r2","method":"resources/subscribe","params":{"uri":"test://nothing/` + "\ufffd" + `"}}`,
	} {
		if m := send(body); m.Error == nil || m.Error.Code != -32002 {
			t.Errorf("%q: %s %+v", body, m.Result, m.Error)
		}
	}
	// Every place is still free: a listed resource, a widget and 62
	// template matches fill them, and one more is over the cap.
	g.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": "test://static-text"}, nil)
	g.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, nil)
	for i := range 62 {
		g.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": fmt.Sprintf("test://template/%d/data", i)}, nil)
	}
	if m := send(`{"jsonrpc":"2.0","id":"over","method":"resources/subscribe","params":{"uri":"test://template/over/data"}}`); m.Error == nil ||
		m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "at most 64") {
		t.Errorf("subscription beyond the cap: %s %+v", m.Result, m.Error)
	}
}
