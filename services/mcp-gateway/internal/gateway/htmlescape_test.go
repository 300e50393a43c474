package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// The gateway's answers are JSON, never HTML: '<', '>' and '&' are
// written as themselves, not as encoding/json's six-byte \u003c, \u003e
// and \u0026, which made an answer repeating what a client sent six times
// its size (verify34). On every path: what the gateway encodes (direct
// answers, a tool's result on the hot path, refusals, batches) and what
// mcp-go encodes (its Streamable HTTP transport, the legacy stream).
func TestAnswersAreNotHTMLEscaped(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	const name = "<b>Ada</b> & <i>co</i>"
	tok := f.Issuer.Mint(t, tokentest.Token{Subject: "user-1", Audience: resource, Scope: allScopes,
		Profile: tokens.Profile{Name: name, Email: "ada@example.com", EmailVerified: true}})
	sid := g.initialize(t, tok)
	lt := strings.Repeat("<", 100)
	unescaped := func(t *testing.T, where string, answer []byte, want string, most int) {
		t.Helper()
		if s := string(answer); !strings.Contains(s, want) || strings.Contains(s, `\u003c`) || strings.Contains(s, `\u0026`) || len(s) > most {
			t.Errorf("%s: %d bytes, want at most %d holding %q unescaped: %.400s", where, len(s), most, want, s)
		}
	}
	body := func(r *resp) []byte {
		if len(r.Events) > 0 {
			var all []string
			for _, e := range r.Events {
				all = append(all, e.Data)
			}
			return []byte(strings.Join(all, "\n"))
		}
		return r.Body
	}

	// Answered by the gateway: its refusal of an unknown tool
	// (toolNameError), and mcp-go's of an unknown resource URI (direct).
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("tools/call", map[string]any{"name": lt, "arguments": map[string]any{}})})
	unescaped(t, "/mcp unknown tool", body(r), "Unknown tool: "+lt, 250)
	uri := "ui://" + strings.Repeat("<", 8000)
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("resources/read", map[string]any{"uri": uri})})
	unescaped(t, "/mcp unknown resource", body(r), uri, 8300)
	// A tool's result on the hot path (callTool): the profile's name.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}})})
	unescaped(t, "/mcp tool result", body(r), `"name":"`+name+`"`, 2000)
	// Where mcp-go's transport would answer: a request with a progress
	// token.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("tools/call", map[string]any{"name": lt, "arguments": map[string]any{}, "_meta": map[string]any{"progressToken": "p-1"}})})
	unescaped(t, "/mcp with a progress token", body(r), "Unknown tool: "+lt, 250)
	// The gateway's refusal of a subscription (resourceNotNamed).
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("resources/subscribe", map[string]any{"uri": "ui://" + lt})})
	unescaped(t, "/mcp subscription refused", body(r), "ui://"+lt, 400)

	// A 2025-03-26 batch.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": "2025-03-26", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "old", "version": "1"}})})
	old := r.Header.Get("Mcp-Session-Id")
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: old,
		Body: `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + lt + `"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}]`})
	var answers []json.RawMessage
	if json.Unmarshal(r.Body, &answers) != nil || len(answers) != 2 {
		t.Fatalf("batch: %d %s", r.Status, r.Body)
	}
	unescaped(t, "batch unknown tool", answers[0], "Unknown tool: "+lt, 250)
	unescaped(t, "batch tool result", answers[1], `"name":"`+name+`"`, 2000)

	// Legacy HTTP+SSE: an answer on the stream (mcp-go's), refusals on the
	// POST.
	s, path := g.openLegacy(t, tok)
	m := call("tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}})
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: m}); r.Status != http.StatusAccepted {
		t.Fatalf("legacy tool call: %d %s", r.Status, r.Body)
	}
	unescaped(t, "legacy tool result", []byte(s.next(response(m["id"])).Data), `"name":"`+name+`"`, 2000)
	r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("tools/call", map[string]any{"name": lt, "arguments": map[string]any{}})})
	unescaped(t, "legacy unknown tool refused on the POST", r.Body, "Unknown tool: "+lt, 250)
	r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("resources/subscribe", map[string]any{"uri": "ui://" + lt})})
	unescaped(t, "legacy subscription refused on the POST", r.Body, "ui://"+lt, 400)
}
