package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A string id written with encoding/json's HTML escapes (\u003c, \u003e,
// \u0026) comes back byte for byte, as every id does (docs/reference/mcp.md,
// "Ids are echoed byte for byte"): the gateway unescapes what mcp-go
// encodes, and the id it restores is the client's, not mcp-go's — on the
// legacy stream it was restored first and then unescaped, so
// "\u003cb\u003e" came back as "<b>"; so it did on /mcp (encoding/json
// re-encodes it alike, so it was not rewritten), relayed (the relay's
// encoding unescaped the body) and in a refusal on the POST.
func TestHTMLEscapedIDsAreEchoed(t *testing.T) {
	f := newFleet(t)
	g, relay := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	s, path := g.openLegacy(t, tok)

	ids := []string{`"\u003cb\u003e"`, `"a\u0026b"`, `"<\u003c"`, `"\u00e9\u003e"`, `"\u0026amp;"`}
	for _, id := range ids {
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		if m := r.rpc(t); r.Status != http.StatusOK || string(m.ID) != id {
			t.Errorf("/mcp: id %s came back as %s (%d %s)", id, m.ID, r.Status, r.Body)
		}
		// Refused on the POST, with the request's id.
		bad := `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":5}}`
		for _, p := range []string{"/mcp", path} {
			r := g.do(t, req{Method: "POST", Path: p, Token: tok, Session: map[bool]string{true: sid}[p == "/mcp"], Version: version, Body: bad})
			if m := r.rpc(t); m.Error == nil || string(m.ID) != id {
				t.Errorf("%s refused: id %s came back as %s (%d %s)", p, id, m.ID, r.Status, r.Body)
			}
		}
		for j, to := range []*gw{g, relay} {
			if r := to.do(t, req{Method: "POST", Path: path, Token: tok, Body: body}); r.Status != http.StatusAccepted {
				t.Fatalf("/messages (%d), id %s: %d %s", j, id, r.Status, r.Body)
			}
			e := s.next(func(e sseEvent) bool {
				var m rpcMessage
				return json.Unmarshal([]byte(e.Data), &m) == nil && m.Method == "" && (m.Result != nil || m.Error != nil)
			})
			var m rpcMessage
			_ = json.Unmarshal([]byte(e.Data), &m)
			if string(m.ID) != id || !strings.Contains(e.Data, `"id":`+id) {
				t.Errorf("/messages (%d): id %s came back as %s: %s", j, id, m.ID, e.Data)
			}
		}
	}
}

// So in a batch's answers (2025-03-26), a member answered and a member
// refused.
func TestHTMLEscapedIDsAreEchoedInBatches(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize20250326(t, tok)
	g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	batch := `[{"jsonrpc":"2.0","id":"\u003cb\u003e","method":"ping"},{"jsonrpc":"2.0","id":"a\u0026b","method":"tools/call","params":{"name":5}}]`
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Body: batch})
	var answers []rpcMessage
	if err := json.Unmarshal(r.Body, &answers); err != nil || len(answers) != 2 {
		t.Fatalf("batch: %d %s", r.Status, r.Body)
	}
	got := map[string]bool{}
	for _, a := range answers {
		got[string(a.ID)] = true
	}
	if !got[`"\u003cb\u003e"`] || !got[`"a\u0026b"`] {
		t.Errorf("batch answers' ids are not as sent: %s", r.Body)
	}
}

// So in an initialize refused for a member of the wrong JSON type, whose
// answer the gateway rewords into the client's terms (clientTerms
// re-encodes the message), whether Accept admits an event stream or not,
// and for ids that travel as they are (no token): "<b>", a number.
func TestHTMLEscapedIDsAreEchoedOnRefusedInitialize(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	ids := []string{`"\u003cb\u003e"`, `"a\u0026b"`, `"<\u003c"`, `"\u00e9\u003e"`, `"\u0026amp;"`, `"<b>"`, `7`}
	for _, id := range ids {
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"initialize","params":{"protocolVersion":"` + version +
			`","capabilities":{"roots":"invalid"},"clientInfo":{"name":"t","version":"1"}}}`
		for _, accept := range []string{"application/json", "application/json, text/event-stream"} {
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Header: map[string]string{"Accept": accept}, Body: body})
			raw := string(r.Body)
			for _, e := range r.Events {
				raw += e.Data
			}
			m := r.rpc(t)
			if m.Error == nil || !strings.Contains(m.Error.Message, "params.capabilities.roots must be a JSON object") ||
				string(m.ID) != id || !strings.Contains(raw, `"id":`+id) {
				t.Errorf("initialize refused (Accept %s): id %s came back as %s: %d %s", accept, id, m.ID, r.Status, raw)
			}
		}
	}
}
