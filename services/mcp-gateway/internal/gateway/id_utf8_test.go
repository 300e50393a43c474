package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"unicode/utf8"
)

// A string id holding bytes that are not UTF-8 was echoed byte for byte
// (exactIDs keeps ids exact), so the answer was no valid JSON text (RFC
// 8259 §8.1). Such a message is an invalid request, answered -32600 with
// id null (JSON-RPC 2.0 §5), on /mcp (in a session, and initialize) and
// /messages; an id with the same character as valid UTF-8 is served.
func TestIDNotUTF8IsRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	check := func(name string, r *resp) {
		t.Helper()
		if !utf8.Valid(r.Body) || !json.Valid(r.Body) {
			t.Fatalf("%s: answer is not valid JSON text: %d %q", name, r.Status, r.Body)
		}
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || string(m.ID) != "null" {
			t.Errorf("%s: %d %s, want 400 -32600 with id null", name, r.Status, r.Body)
		}
	}
	for _, id := range []string{"\"a\xffb\"", "\"\xc3\"", "\"\xed\xa0\x80\""} { // a stray byte, a cut sequence, an encoded surrogate
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`
		check("ping "+id, g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body}))
		// An escaped key: the envelope read through encoding/json.
		check("ping (escaped key) "+id, g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: `{"jsonrpc":"2.0","\u0069d":` + id + `,"method":"ping"}`}))
		check("initialize "+id, g.do(t, req{Method: "POST", Path: "/mcp", Token: tok,
			Body: `{"jsonrpc":"2.0","id":` + id + `,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`}))
		check("legacy "+id, g.do(t, req{Method: "POST", Path: "/messages?sessionId=x", Token: tok, Body: body}))
	}
	// The same character, as UTF-8 or escaped, is an id like any other.
	for _, id := range []string{`"aÿb"`, `"a\u00ffb"`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || !bytes.Equal(m.ID, []byte(id)) {
			t.Errorf("ping %s: %d %s", id, r.Status, r.Body)
		}
	}
}
