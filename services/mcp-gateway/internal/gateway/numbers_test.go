package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A number literal of 100 KB (JSON puts no bound on one) in an id or in
// params, where the gateway or mcp-go expects another type or a smaller
// number, is not repeated in the answer: encoding/json's type errors name
// the literal whole ("cannot unmarshal number 1111… into …"). On /mcp (a
// session, a 2025-03-26 batch, the stateless era) and on /messages.
func TestHugeNumberLiteralsAreNotEchoed(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	oldSid := g.initialize20250326(t, tok)
	s, path := g.openLegacy(t, tok)

	n := strings.Repeat("7", 100_000)
	msg := func(method, params string) string {
		return `{"jsonrpc":"2.0","id":"n-1","method":"` + method + `","params":` + params + `}`
	}
	cases := []struct{ name, body string }{
		{"id", `{"jsonrpc":"2.0","id":` + n + `,"method":"ping"}`},
		{"id fraction", `{"jsonrpc":"2.0","id":1.` + n + `,"method":"ping"}`},
		{"tools/call name", msg("tools/call", `{"name":`+n+`,"arguments":{}}`)},
		{"tools/call arguments", msg("tools/call", `{"name":"identity.profile","arguments":`+n+`}`)},
		{"tools/call argument", msg("tools/call", `{"name":"identity.profile","arguments":{"x":`+n+`}}`)},
		{"tools/call argument 1e", msg("tools/call", `{"name":"identity.profile","arguments":{"x":1e`+n+`}}`)},
		{"prompts/get name", msg("prompts/get", `{"name":`+n+`}`)},
		{"prompts/get argument", msg("prompts/get", `{"name":"p","arguments":{"a":`+n+`}}`)},
		{"resources/read uri", msg("resources/read", `{"uri":`+n+`}`)},
		{"resources/subscribe uri", msg("resources/subscribe", `{"uri":`+n+`}`)},
		{"logging/setLevel level", msg("logging/setLevel", `{"level":`+n+`}`)},
		{"tools/list cursor", msg("tools/list", `{"cursor":`+n+`}`)},
		{"completion/complete", msg("completion/complete", `{"ref":{"type":"ref/prompt","name":`+n+`},"argument":{"name":"a","value":"v"}}`)},
		{"completion/complete value", msg("completion/complete", `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":`+n+`}}`)},
		{"progressToken", msg("tools/list", `{"_meta":{"progressToken":`+n+`}}`)},
		{"params", msg("tools/list", n)},
		{"_meta", msg("tools/list", `{"_meta":`+n+`}`)},
		{"task ttl", msg("tools/call", `{"name":"identity.profile","arguments":{},"task":{"ttl":`+n+`}}`)},
	}
	check := func(where, name string, status int, body []byte) {
		t.Helper()
		if len(body) > 2048 || strings.Contains(string(body), strings.Repeat("7", 300)) {
			t.Errorf("%s %s: the answer (HTTP %d, %d bytes) repeats the number: %.300s", where, name, status, len(body), body)
		}
	}
	for _, c := range cases {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: c.body})
		check("/mcp", c.name, r.Status, all(r))
		r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: oldSid, Body: "[" + c.body + `,{"jsonrpc":"2.0","id":2,"method":"ping"}]`})
		check("batch", c.name, r.Status, all(r))
		var answers []json.RawMessage
		if json.Unmarshal(r.Body, &answers) != nil && r.Status == http.StatusOK {
			t.Errorf("batch %s: %d %.300s", c.name, r.Status, r.Body)
		}
		// The stateless era, with its _meta where params is an object.
		stateless := strings.Replace(c.body, `"params":{`, `"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"1"}},`, 1)
		var env struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal([]byte(c.body), &env)
		r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": env.Method, "Mcp-Name": "x"}, Body: stateless})
		check("stateless", c.name, r.Status, all(r))
		r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c.body})
		check("/messages", c.name, r.Status, all(r))
		if r.Status == http.StatusAccepted {
			// Answered on the stream.
			e := s.next(response("n-1"))
			check("/sse stream", c.name, 200, []byte(e.Data))
		}
	}
}

func all(r *resp) []byte {
	if len(r.Events) == 0 {
		return r.Body
	}
	var b []string
	for _, e := range r.Events {
		b = append(b, e.Data)
	}
	return []byte(strings.Join(b, "\n"))
}
