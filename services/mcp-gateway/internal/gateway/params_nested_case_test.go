package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Members nested in params were not checked for letter case: a
// completion/complete whose argument had "Name", whose ref had "Type", a
// tools/call whose task had "TTL" or whose _meta had "ProgressToken", an
// initialize whose capabilities had "Sampling" or whose clientInfo had
// "Title" were served as if spelt right (encoding/json, and so mcp-go,
// matches names ignoring case) or, for _meta, without the member. Each
// member the MCP schema defines is case-sensitive at any depth: such a
// request is -32602 naming the path, the member as sent and as it is spelt,
// with the request's id (HTTP 200 on /mcp, 400 on /messages); an initialize
// gets no session. Exact spellings, unknown members, and the members of
// free-form objects (arguments, experimental, _meta's own keys) are served.
func TestNestedParamsMemberNamesAreCaseSensitive(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true") // prompts and completions
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	ref := map[string]any{"type": "ref/prompt", "name": "test_prompt_with_arguments"}
	arg := map[string]any{"name": "arg1", "value": "x"}
	cases := []struct {
		method string
		params map[string]any
		want   string
	}{
		{"completion/complete", map[string]any{"ref": ref, "argument": map[string]any{"Name": "arg1", "value": "x"}},
			`params.argument has "Name", which is not "name"; spell it "name"`},
		{"completion/complete", map[string]any{"ref": map[string]any{"Type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": arg},
			`params.ref has "Type", which is not "type"; spell it "type"`},
		{"completion/complete", map[string]any{"ref": ref, "argument": arg, "context": map[string]any{"ARGUMENTS": map[string]any{}}},
			`params.context has "ARGUMENTS", which is not "arguments"`},
		{"tools/call", map[string]any{"name": "health.check", "_meta": map[string]any{"ProgressToken": "p1"}},
			`params._meta has "ProgressToken", which is not "progressToken"`},
		{"tools/call", map[string]any{"name": "health.check", "task": map[string]any{"TTL": 1000}},
			`params.task has "TTL", which is not "ttl"`},
		{"resources/read", map[string]any{"uri": "ui://widget/health-status-card-v1.html", "_meta": map[string]any{"progresstoken": 1}},
			`params._meta has "progresstoken", which is not "progressToken"`},
	}
	for _, c := range cases {
		body := call(c.method, c.params)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			!strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/mcp %s %v: %d %s, want 200 -32602 %q with the id", c.method, c.params, r.Status, r.Body, c.want)
		}
	}

	// Spelt exactly, with unknown and free-form members in any case: served.
	var done struct {
		Completion struct{ Values []string } `json:"completion"`
	}
	g.rpc(t, tok, sid, "completion/complete", map[string]any{"ref": ref, "argument": arg,
		"context": map[string]any{"arguments": map[string]any{"ARG2": "y"}}, "Hint": "unknown"}, &done)
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check",
		"_meta": map[string]any{"progressToken": "p2", "progressTokens": 1, "io.example/ProgressToken": 2}}, &res)
	if res.IsError {
		t.Errorf("health.check spelt exactly: %+v", res)
	}

	// initialize: the nested members of capabilities and clientInfo.
	info := map[string]any{"name": "t", "version": "1"}
	inits := []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"protocolVersion": version, "capabilities": map[string]any{"Sampling": map[string]any{}}, "clientInfo": info},
			`params.capabilities has "Sampling", which is not "sampling"; spell it "sampling"`},
		{map[string]any{"protocolVersion": version, "capabilities": map[string]any{"roots": map[string]any{"ListChanged": true}}, "clientInfo": info},
			`params.capabilities.roots has "ListChanged", which is not "listChanged"`},
		{map[string]any{"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1", "Title": "T"}},
			`params.clientInfo has "Title", which is not "title"`},
		{map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "t", "version": "1", "icons": []any{map[string]any{"Src": "https://example.com/i.png"}}}},
			`params.clientInfo.icons[0] has "Src", which is not "src"`},
	}
	before := sessionKeys(t, f)
	for _, c := range inits {
		body := call("initialize", c.params)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			r.Header.Get("Mcp-Session-Id") != "" || !strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/mcp initialize %v: %d %v %s, want 200 -32602 %q with the id and no session", c.params, r.Status, r.Header, r.Body, c.want)
		}
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}
	full := call("initialize", map[string]any{"protocolVersion": version,
		"capabilities": map[string]any{"roots": map[string]any{"listChanged": true}, "sampling": map[string]any{}, "elicitation": map[string]any{"form": map[string]any{}},
			"experimental": map[string]any{"Sampling": map[string]any{}}},
		"clientInfo": map[string]any{"name": "t", "version": "1", "title": "T", "icons": []any{map[string]any{"src": "https://example.com/i.png", "sizes": []string{"any"}}}}})
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: full}); r.Status != http.StatusOK || r.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize spelt exactly: %d %s", r.Status, r.Body)
	}

	// /messages: 400, the same message.
	s := g.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	body := call("initialize", inits[0].params)
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, inits[0].want) {
		t.Errorf("/messages initialize %v: %d %s, want 400 -32602 %q", inits[0].params, r.Status, r.Body, inits[0].want)
	}
	legacyInit(t, s, g, tok, path)
	for _, c := range cases {
		body := call(c.method, c.params)
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || string(m.ID) != string(mustJSON(t, body["id"])) ||
			!strings.Contains(m.Error.Message, c.want) {
			t.Errorf("/messages %s %v: %d %s, want 400 -32602 %q with the id", c.method, c.params, r.Status, r.Body, c.want)
		}
	}
}
