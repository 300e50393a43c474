package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestNotificationWithBadParamsIsNotAnswered: a message without an id is
// a notification, which JSON-RPC 2.0 §4.1 never answers; the Streamable
// HTTP transport (MCP 2025-06-18 and 2025-11-25, "Sending Messages to the
// Server") has the server answer one it cannot accept with an HTTP error
// status, its body at most a JSON-RPC error without an id. A tools/call,
// tools/list or resources/read sent as a notification with params the
// gateway refuses (arguments not an object, a cursor, no uri) got 200 and
// an error response, as a request would. Now 400; a notification the
// gateway accepts is still 202 with no body.
func TestNotificationWithBadParamsIsNotAnswered(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, c := range []struct{ method, params string }{
		{"tools/call", `{"name":"health.check","arguments":[1]}`},
		{"tools/list", `{"cursor":"x"}`},
		{"resources/read", `{"uri":""}`},
	} {
		body := `{"jsonrpc":"2.0","method":"` + c.method + `","params":` + c.params + `}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s notification %s: %d %s, want 400", c.method, c.params, r.Status, r.Body)
			continue
		}
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 || len(m.ID) != 0 && string(m.ID) != "null" {
			t.Errorf("%s notification %s: body %s, want a -32602 error without an id", c.method, c.params, r.Body)
		}
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	if r.Status != http.StatusAccepted || strings.TrimSpace(string(r.Body)) != "" {
		t.Errorf("notifications/initialized: %d %q, want 202 and no body", r.Status, r.Body)
	}
}
