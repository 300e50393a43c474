package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// rawCall is a JSON-RPC request with the raw params text, so that a test
// can send what a map cannot hold: a member named twice, escaped names.
func rawCall(id int, method, params string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
}

// A member named twice in params, or in an object the MCP schema defines
// in them, was served: encoding/json, the gateway's and mcp-go's decoder,
// takes the last, so a tools/call with "name":"auth.session" and
// "n\u0061me":"health.check" ran health.check, for the scope check and the
// call alike, where a proxy, a WAF or a log reader that keeps the first
// (RFC 8259 §4 leaves repeated names to each parser) sees auth.session.
// Such a request is -32602 naming the path and the member (unescaped), with
// the request's id: HTTP 200 on /mcp, 400 on /messages; an initialize gets
// no session. Members named once, escaped or not, are served.
func TestRepeatedParamsMembersAreRefused(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true") // completions
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	ref := `{"type":"ref/prompt","name":"test_prompt_with_arguments"}`
	cases := []struct {
		method, params, want string
	}{
		{"tools/call", `{"name":"auth.session","n\u0061me":"health.check"}`, `params has "name" more than once`},
		{"tools/call", `{"name":"health.check","arguments":{},"name":"health.check"}`, `params has "name" more than once`},
		{"tools/call", `{"name":"health.check","_meta":{"progressToken":"a","progressToken":"b"}}`, `params._meta has "progressToken" more than once`},
		{"tools/call", `{"name":"health.check","_meta":{"io.example/x":1,"io.example/\u0078":2}}`, `params._meta has "io.example/x" more than once`},
		{"tools/call", `{"name":"health.check","hint":1,"hint":2}`, `params has "hint" more than once`},
		{"tools/call", `{"name":"health.check","task":{"ttl":1000,"ttl":1}}`, `params.task has "ttl" more than once`},
		{"completion/complete", `{"ref":` + ref + `,"argument":{"name":"arg1","value":"x","value":"y"}}`, `params.argument has "value" more than once`},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"nope","name":"test_prompt_with_arguments"},"argument":{"name":"arg1","value":"x"}}`,
			`params.ref has "name" more than once`},
		{"resources/read", `{"uri":"ui://widget/health-status-card-v1.html","uri":"ui://widget/profile-card-v1.html"}`, `params has "uri" more than once`},
	}
	served := []struct{ method, params string }{
		{"tools/call", `{"n\u0061me":"health.check"}`},
		// the escaped name is read on from the decoder, each member once
		{"tools/call", `{"arguments":{},"_meta":{"progressToken":"p"},"n\u0061me":"health.check"}`},
		{"tools/call", `{"name":"health.check","_meta":{"progressToken":"p","io.example/progressToken":"q"}}`},
		{"completion/complete", `{"ref":` + ref + `,"argument":{"name":"arg1","value":"x"},"context":{"arguments":{"a":"1","b":"2"}}}`},
	}

	post := func(path, session, body string) *resp {
		if session == "" {
			return g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		}
		return g.do(t, req{Method: "POST", Path: path, Token: tok, Session: session, Version: version, Body: body})
	}
	for i, c := range cases {
		r := post("/mcp", sid, rawCall(100+i, c.method, c.params))
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != fmt.Sprint(100+i) ||
			!strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/mcp %s %s: %d %s, want 200 -32602 %q with the id", c.method, c.params, r.Status, r.Body, c.want)
		}
	}
	for i, c := range served {
		r := post("/mcp", sid, rawCall(200+i, c.method, c.params))
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || len(m.Result) == 0 || strings.Contains(string(m.Result), `"isError":true`) {
			t.Errorf("/mcp %s %s: %d %s, want served", c.method, c.params, r.Status, r.Body)
		}
	}

	// initialize: refused before its members are looked up, no session.
	inits := []struct{ params, want string }{
		{`{"protocolVersion":"` + version + `","capabilities":{},"clientInfo":{"name":"t","version":"1","version":"2"}}`, `params.clientInfo has "version" more than once`},
		{`{"protocolVersion":"","capabilities":{},"clientInfo":{"name":"t","version":"1"},"protocolVersion":"` + version + `"}`, `params has "protocolVersion" more than once`},
		{`{"protocolVersion":"` + version + `","capabilities":{"roots":{"listChanged":true,"listChanged":false}},"clientInfo":{"name":"t","version":"1"}}`,
			`params.capabilities.roots has "listChanged" more than once`},
	}
	before := sessionKeys(t, f)
	for i, c := range inits {
		r := post("/mcp", "", rawCall(300+i, "initialize", c.params))
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != fmt.Sprint(300+i) ||
			r.Header.Get("Mcp-Session-Id") != "" || !strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/mcp initialize %s: %d %s, want 200 -32602 %q with the id and no session", c.params, r.Status, r.Body, c.want)
		}
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}
	if r := post("/mcp", "", rawCall(310, "initialize", `{"protocolV\u0065rsion":"`+version+`","capabilities":{"experimental":{"x":{}}},"clientInfo":{"name":"t","version":"1"}}`)); r.Status != http.StatusOK || r.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize with an escaped name, each member once: %d %s", r.Status, r.Body)
	}

	// /messages: 400, the same messages.
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	r := post(path, "", rawCall(400, "initialize", inits[0].params))
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, inits[0].want) {
		t.Errorf("/messages initialize %s: %d %s, want 400 -32602 %q", inits[0].params, r.Status, r.Body, inits[0].want)
	}
	legacyInit(t, s, g, tok, path)
	for i, c := range cases {
		r := post(path, "", rawCall(500+i, c.method, c.params))
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != fmt.Sprint(500+i) ||
			!strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/messages %s %s: %d %s, want 400 -32602 %q with the id", c.method, c.params, r.Status, r.Body, c.want)
		}
	}
	for i, c := range served {
		if r := post(path, "", rawCall(600+i, c.method, c.params)); r.Status != http.StatusAccepted {
			t.Errorf("/messages %s %s: %d %s, want 202", c.method, c.params, r.Status, r.Body)
			continue
		}
		if e := s.next(response(600 + i)); strings.Contains(e.Data, `"error"`) || strings.Contains(e.Data, `"isError":true`) {
			t.Errorf("/messages %s %s: answered %s, want served", c.method, c.params, e.Data)
		}
	}
}

// tools/call arguments are the tool's, not the schema's: the gateway does
// not look into them but hands them, as sent, to the backend's decoder
// (protojson), which refuses a field or map key named twice at any depth,
// after unescaping. So a repeated argument never reaches the backend: the
// call is a tool error naming it (isError, "invalid arguments: …
// duplicate …"), and only an observer of the request could read it
// otherwise. This pins the choice docs/reference/mcp.md describes.
func TestRepeatedArgumentNamesNeverReachTheBackend(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	for i, args := range []string{`{"text":"a","t\u0065xt":"b"}`, `{"text":"a","text":"b"}`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: rawCall(1000+i, "tools/call", `{"name":"notes.list","arguments":`+args+`}`)})
		var res toolResult
		if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil || !res.IsError || len(res.Content) == 0 ||
			!strings.Contains(res.Content[0].Text, "invalid arguments") || !strings.Contains(res.Content[0].Text, "duplicate") {
			t.Errorf("arguments %s: %d %s, want a tool error naming the duplicate", args, r.Status, r.Body)
		}
	}
	if c := notes.Calls(); len(c) != 0 {
		t.Errorf("the backend was called %d times: %+v", len(c), c)
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "notes.list", "arguments": map[string]any{"text": "hi"}}, &res)
	if res.IsError || res.StructuredContent["text"] != "hi" {
		t.Errorf("notes.list with each argument once: %+v", res)
	}
}
