package gateway_test

import (
	"net/http"
	"testing"
)

// "jsonrpc" is checked by its value, not its spelling: "2\u002e0" is the
// string "2.0" (JSON-RPC 2.0 §4) and was refused -32600 'jsonrpc must be
// "2.0"' by the envelope check, which compared the raw bytes; what is not
// "2.0" once decoded is still refused.
func TestEnvelopeVersionByValue(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for _, v := range []string{`"2\u002e0"`, `"\u0032.0"`, `"\u0032\u002E\u0030"`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"jsonrpc":` + v + `,"id":1,"method":"ping"}`})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || m.Result == nil {
			t.Errorf("jsonrpc %s: %d %s", v, r.Status, r.Body)
		}
		// The same through the map reading of an object with an escaped key.
		r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"jsonrpc":` + v + `,"\u0069d":2,"method":"ping"}`})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || m.Result == nil {
			t.Errorf("jsonrpc %s with an escaped key: %d %s", v, r.Status, r.Body)
		}
	}
	for _, v := range []string{`"2\u002e1"`, `"2.0 "`, `"\u0032"`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"jsonrpc":` + v + `,"id":1,"method":"ping"}`})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("jsonrpc %s: %d %s, want 400 -32600", v, r.Status, r.Body)
		}
	}
}
