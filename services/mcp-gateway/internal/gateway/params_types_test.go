package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// A request whose params member has the wrong JSON type is invalid params
// (JSON-RPC -32602), named in the client's terms — mcp-go answered -32600
// "unparsable tools/call request: json: cannot unmarshal number into Go
// struct field CallToolRequest.params.name of type string". Params that
// are not an object or array at all stay -32600 (JSON-RPC §4.2: an
// invalid request).
func TestWrongTypedParamsAreInvalidParams(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`:                "invalid params: params.name must be a JSON string, not a number",
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":["health.check"]}}`: "invalid params: params.name must be a JSON string, not an array",
		`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":true}}`:          "invalid params: params.uri must be a JSON string, not a boolean",
		`{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":3}}`:         "invalid params: params.level has the wrong JSON type (a number)",
		`{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":{"a":1}}}`:  "invalid params: params.uri must be a JSON string, not an object",
		// A number of the right JSON type that mcp-go's float64 cannot
		// hold: "params._meta must be a JSON number, not a number" before.
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"health.check","_meta":{"x":1e400}}}`: "invalid params: params._meta holds a number beyond the range of a 64-bit floating-point number",
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want ||
			strings.Contains(m.Error.Message, "Go ") {
			t.Errorf("%s: %d %s, want -32602 %q", body, r.Status, r.Body, want)
		}
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":"x"}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/list","params":5}`,
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("%s: %d %s, want -32600", body, r.Status, r.Body)
		}
	}
}
