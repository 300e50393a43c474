package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// chatGPT is the User-Agent ChatGPT's MCP client sends: requests with it
// get the tool-result form of a scope refusal under SCOPE_CHALLENGE=auto.
var chatGPT = map[string]string{"User-Agent": "openai-mcp/1.0.0"}

// stepUpChallenge is the exact challenge of identity.profile (openid profile
// email) for an openid-only token on /mcp.
const stepUpChallenge = `Bearer error="insufficient_scope", resource_metadata="` + metadataURL +
	`", scope="openid profile email", error_description="the tool needs more scopes than the access token grants"`

// wantForbidden checks the MCP 2025-11-25 Scope Challenge Handling answer:
// 403, the exact challenge, and a JSON-RPC error with the request's id
// whose data is the OAuth error (scopeError).
func wantForbidden(t *testing.T, what string, r *resp, challenge string) {
	t.Helper()
	body, ok := scopeError(r)
	if r.Status != http.StatusForbidden || r.Header.Get("WWW-Authenticate") != challenge || !ok || string(body.ID) == "null" ||
		body.Error.Data.Error != "insufficient_scope" || body.Error.Data.Scope != "openid profile email" ||
		!strings.HasPrefix(body.Error.Data.Description, `This tool needs the scopes "openid profile email"; the current authorization lacks "profile email".`) {
		t.Errorf("%s: %d %q %s\nwant 403 %q and an insufficient_scope body", what, r.Status, r.Header.Get("WWW-Authenticate"), r.Body, challenge)
	}
}

// wantToolResult checks the OpenAI Apps SDK form: 200, a tool error result
// with the challenge in _meta["mcp/www_authenticate"] and the header.
func wantToolResult(t *testing.T, what string, r *resp, challenge string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Errorf("%s: HTTP %d %s, want 200 and a tool result", what, r.Status, r.Body)
		return
	}
	var res toolResult
	if err := json.Unmarshal(r.rpc(t).Result, &res); err != nil {
		t.Fatal(err)
	}
	ch, _ := res.Meta["mcp/www_authenticate"].([]any)
	if !res.IsError || len(ch) != 1 || ch[0] != challenge || r.Header.Get("WWW-Authenticate") != challenge {
		t.Errorf("%s: %+v %q, want the challenge %q in _meta and the header", what, res, r.Header.Get("WWW-Authenticate"), challenge)
	}
}

// A tools/call without the tool's scopes is answered 403 with the
// insufficient_scope challenge (MCP 2025-11-25, Scope Challenge Handling),
// which the official TypeScript SDK re-authorizes on; a request that bears
// one of ChatGPT's marks (User-Agent, clientInfo.name, an openai/ _meta key)
// gets the tool result ChatGPT shows its linking UI from. SCOPE_CHALLENGE
// forces either form. Access is refused every time.
func TestScopeChallengeForms(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	weak := f.Token("user-1", "openid")
	profile := func(sid string, header map[string]string, params map[string]any) *resp {
		if params == nil {
			params = map[string]any{}
		}
		params["name"] = "identity.profile"
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: sid, Version: version, Header: header, Body: call("tools/call", params)})
	}

	sid := g.initialize(t, weak)
	wantForbidden(t, "a standard client", profile(sid, nil, nil), stepUpChallenge)
	// The session lives on, and a tool within the token's scopes answers.
	var ok toolResult
	g.rpc(t, weak, sid, "tools/call", map[string]any{"name": "auth.session"}, &ok)
	if ok.IsError {
		t.Errorf("auth.session with openid after a 403: %+v", ok)
	}
	if v := g.metric(t, `tollgate_mcp_tool_calls_total{result="insufficient_scope",tool="identity.profile"}`); v != 1 {
		t.Errorf("insufficient_scope calls = %v, want 1", v)
	}

	// ChatGPT's marks.
	wantToolResult(t, "User-Agent openai-mcp", profile(sid, chatGPT, nil), stepUpChallenge)
	wantToolResult(t, "an openai/ _meta key", profile(sid, nil, map[string]any{"_meta": map[string]any{"openai/locale": "en-US"}}), stepUpChallenge)
	init := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "openai-mcp", "version": "1.0.0"}})})
	chat := init.Header.Get("Mcp-Session-Id")
	if init.Status != 200 || chat == "" {
		t.Fatalf("initialize as openai-mcp: %d %s", init.Status, init.Body)
	}
	wantToolResult(t, "clientInfo openai-mcp", profile(chat, nil, nil), stepUpChallenge)

	// A stateless (2026-07-28) request: no session, the same rule.
	stateless := func(clientName string) *resp {
		meta := map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": clientName, "version": "1"},
		}
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "identity.profile"},
			Body:   map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": map[string]any{"name": "identity.profile", "arguments": map[string]any{}, "_meta": meta}}})
	}
	wantForbidden(t, "a stateless standard client", stateless("modern"), stepUpChallenge)
	wantToolResult(t, "a stateless openai-mcp", stateless("openai-mcp"), stepUpChallenge)

	// Under auto the 403 goes only to a client that negotiated a revision
	// specifying step-up (2025-11-25): a session at an earlier one gets
	// the tool result.
	for _, v := range []string{"2025-06-18", "2025-03-26"} {
		sid := g.initializeAs(t, weak, "claude-code", v)
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: sid, Version: v, Body: call("tools/call", map[string]any{"name": "identity.profile"})})
		wantToolResult(t, "a standard client in a "+v+" session", r, stepUpChallenge)
	}

	// Legacy /messages (2024-11-05 SSE clients act on a 401 only): the
	// tool result, on the stream.
	legacyCall := func(g *gw) (*resp, *stream, map[string]any) {
		l := g.openStream(t, "/sse", weak, nil)
		t.Cleanup(l.Close)
		path := l.endpoint()
		legacyInit(t, l, g, weak, path)
		c := call("tools/call", map[string]any{"name": "identity.profile"})
		return g.do(t, req{Method: "POST", Path: path, Token: weak, Body: c}), l, c
	}
	r, l, c := legacyCall(g)
	if r.Status != http.StatusAccepted {
		t.Errorf("legacy /messages: %d %s, want 202", r.Status, r.Body)
	} else if e := l.next(response(c["id"])); !strings.Contains(e.Data, `"isError":true`) || !strings.Contains(e.Data, `mcp/www_authenticate`) {
		t.Errorf("legacy /messages: %s, want the tool result", e.Data)
	}

	// The form chosen is counted: the standard client and the stateless
	// one got the 403; the four ChatGPT-marked calls, the two earlier
	// revisions' and the batch member below the tool result, and the
	// legacy call.
	defer func() {
		for series, want := range map[string]float64{
			`tollgate_mcp_scope_challenges_total{form="http_403",transport="streamable-http"}`:    2,
			`tollgate_mcp_scope_challenges_total{form="tool_result",transport="streamable-http"}`: 7,
			`tollgate_mcp_scope_challenges_total{form="tool_result",transport="sse"}`:             1,
			`tollgate_mcp_scope_challenges_total{form="http_403",transport="sse"}`:                0,
		} {
			if v := g.metric(t, series); v != want {
				t.Errorf("%s = %v, want %v", series, v, want)
			}
		}
	}()

	// In a 2025-03-26 session's batch the refusal is the member's answer
	// (the tool result): a 403 would refuse the batch's other messages.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Body: call("initialize", map[string]any{
		"protocolVersion": "2025-03-26", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "old", "version": "1"}})})
	old := r.Header.Get("Mcp-Session-Id")
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: old,
		Body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}]`})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"isError":true`) || !strings.Contains(string(r.Body), `mcp/www_authenticate`) ||
		r.Header.Get("WWW-Authenticate") != stepUpChallenge {
		t.Errorf("a batch with a refused call: %d %q %s", r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
	}

	// SCOPE_CHALLENGE forces a form.
	h := f.Gateway("SCOPE_CHALLENGE", "http")
	hsid := h.initialize(t, weak)
	r = h.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: hsid, Version: version, Header: chatGPT, Body: call("tools/call", map[string]any{"name": "identity.profile"})})
	wantForbidden(t, "SCOPE_CHALLENGE=http, ChatGPT's User-Agent", r, stepUpChallenge)
	old = h.initializeAs(t, weak, "claude-code", "2025-06-18")
	r = h.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: old, Version: "2025-06-18", Body: call("tools/call", map[string]any{"name": "identity.profile"})})
	wantForbidden(t, "SCOPE_CHALLENGE=http, a 2025-06-18 session", r, stepUpChallenge)
	// Legacy /messages: refused on the POST, before the message is
	// accepted, with the /sse metadata.
	r, _, _ = legacyCall(h)
	wantForbidden(t, "SCOPE_CHALLENGE=http, legacy /messages", r, strings.Replace(stepUpChallenge, metadataURL, sseMetadataURL, 1))
	if v := h.metric(t, `tollgate_mcp_scope_challenges_total{form="http_403",transport="sse"}`); v != 1 {
		t.Errorf("SCOPE_CHALLENGE=http: sse http_403 = %v, want 1", v)
	}
	tr := f.Gateway("SCOPE_CHALLENGE", "tool-result")
	tsid := tr.initialize(t, weak)
	r = tr.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: tsid, Version: version, Body: call("tools/call", map[string]any{"name": "identity.profile"})})
	wantToolResult(t, "SCOPE_CHALLENGE=tool-result, a standard client", r, stepUpChallenge)

	// A token with the scopes is served whatever the form.
	full := f.Token("user-1", allScopes)
	fsid := h.initialize(t, full)
	var res toolResult
	h.rpc(t, full, fsid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
	if res.IsError {
		t.Errorf("identity.profile with its scopes: %+v", res)
	}
}

// initializeAs opens a session as the client named name, with the
// notifications/initialized a real client sends next (the first request
// that reads the session record back, filling the replica's memory).
func (g *gw) initializeAs(t *testing.T, token, name, protocolVersion string) string {
	t.Helper()
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Body: call("initialize", map[string]any{
		"protocolVersion": protocolVersion, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": name, "version": "1.0.0"}})})
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != http.StatusOK || sid == "" {
		t.Fatalf("initialize as %s: %d %s", name, r.Status, r.Body)
	}
	if n := g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Session: sid, Version: protocolVersion,
		Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}}); n.Status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %s", n.Status, n.Body)
	}
	return sid
}

// A session whose only ChatGPT mark is its clientInfo.name keeps the
// tool-result form for its whole life, on every replica: the replicas
// admit it from memory after its first request (Store.Admit), which keeps
// the client's name.
func TestScopeChallengeClientInfoMarkLastsTheSession(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	weak := f.Token("user-1", "openid")
	sid := a.initializeAs(t, weak, "openai-mcp", version)
	for i, g := range []*gw{a, a, b, b} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: sid, Version: version, Body: call("tools/call", map[string]any{"name": "identity.profile"})})
		wantToolResult(t, fmt.Sprintf("call %d (replica %c) of a session initialized as openai-mcp", i+1, "aabb"[i]), r, stepUpChallenge)
	}
	// A standard client's session on the same replicas still gets the 403.
	std := a.initializeAs(t, weak, "claude-code", version)
	for i, g := range []*gw{a, a, b, b} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: std, Version: version, Body: call("tools/call", map[string]any{"name": "identity.profile"})})
		wantForbidden(t, fmt.Sprintf("call %d (replica %c) of a standard client", i+1, "aabb"[i]), r, stepUpChallenge)
	}
}
