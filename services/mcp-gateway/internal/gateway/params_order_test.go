package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// paramsError checked what encoding/json decoded ignoring case before the
// spelling: a tools/call with "ARGUMENTS":[1] got "arguments … must be a
// JSON object", which sends the client to fix a value it never sent under
// that name, and one with "arguments" twice, the last [1], the same. The
// spelling and repeated names are checked first.
func TestParamsSpellingCheckedBeforeTheirValues(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	cases := []struct{ method, params, want string }{
		{"tools/call", `{"name":"health.check","ARGUMENTS":[1]}`, `params has "ARGUMENTS", which is not "arguments"; spell it "arguments"`},
		{"tools/call", `{"name":"health.check","arguments":{},"arguments":[1]}`, `params has "arguments" more than once`},
		{"tools/list", `{"Cursor":"x"}`, `params has "Cursor", which is not "cursor"`},
		{"resources/read", `{"URI":""}`, `params has "URI", which is not "uri"`},
	}
	for i, c := range cases {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: rawCall(700+i, c.method, c.params)})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/mcp %s %s: %d %s, want 200 -32602 %q", c.method, c.params, r.Status, r.Body, c.want)
		}
	}
	_, path := g.openLegacy(t, tok)
	for i, c := range cases {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: rawCall(800+i, c.method, c.params)})
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/messages %s %s: %d %s, want 400 -32602 %q", c.method, c.params, r.Status, r.Body, c.want)
		}
	}
	// Spelt exactly, the values' own refusals stand.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: rawCall(900, "tools/call", `{"name":"health.check","arguments":[1]}`)})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "must be a JSON object") {
		t.Errorf("arguments [1]: %d %s", r.Status, r.Body)
	}
}
