package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Legacy /messages: a request whose params has a member of the wrong JSON
// type is -32602 with the message a Streamable HTTP session gets
// (TestWrongTypedParamsAreInvalidParams), refused on the POST like a
// cursor or non-object arguments; mcp-go answered -32600 "unparsable …
// request" on the stream. Params that are no object stay -32600 there.
func TestLegacyWrongTypedParamsAreInvalidParams(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	s, path := g.openLegacy(t, tok)
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`:               "invalid params: params.name must be a JSON string, not a number",
		`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":true}}`:         "invalid params: params.uri must be a JSON string, not a boolean",
		`{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":3}}`:        "invalid params: params.level has the wrong JSON type (a number)",
		`{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":{"a":1}}}`: "invalid params: params.uri must be a JSON string, not an object",
	} {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want || string(m.ID) == "null" {
			t.Errorf("%s: %d %s, want 400 -32602 %q with the request's id", body, r.Status, r.Body, want)
		}
	}
	// Params that are no object: accepted, and -32600 on the stream.
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":"x"}`})
	if r.Status != http.StatusAccepted {
		t.Fatalf("params \"x\": %d %s", r.Status, r.Body)
	}
	if e := s.next(response(7)); !contains32600(e.Data) {
		t.Errorf("params \"x\" on the stream: %s, want -32600", e.Data)
	}
	// A well-typed request is still answered on the stream.
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"health.check","arguments":{}}}`}); r.Status != http.StatusAccepted {
		t.Fatalf("health.check: %d %s", r.Status, r.Body)
	}
	s.next(response(8))
}

func contains32600(data string) bool {
	var m rpcMessage
	return json.Unmarshal([]byte(data), &m) == nil && m.Error != nil && m.Error.Code == -32600
}
