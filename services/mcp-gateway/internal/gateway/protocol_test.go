package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// sessionKeys counts the session records in the test Redis.
func sessionKeys(t *testing.T, f *fleet) int {
	t.Helper()
	keys, err := f.Redis.Client().Keys(context.Background(), "test:*sess*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// A refused initialize leaves no session: no Mcp-Session-Id, nothing in
// Redis; an unsupported MCP-Protocol-Version on initialize is 400.
func TestRefusedInitializeLeavesNoSession(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	before := sessionKeys(t, f)
	bad := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{"roots": "invalid"},
		"clientInfo": map[string]any{"name": "t", "version": "1"}})
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: bad})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32600 ||
		m.Error.Message != "invalid initialize request: params.capabilities.roots must be a JSON object, not a string" {
		t.Fatalf("malformed initialize: %d %s", r.Status, r.Body)
	}
	// The refusal names the field in the client's terms, never Go types.
	for field, value := range map[string]any{"protocolVersion": 20251125, "clientInfo": "t", "capabilities": []string{"x"}} {
		params := map[string]any{"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}
		params[field] = value
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", params)})
		m := r.rpc(t)
		if m.Error == nil || !strings.Contains(m.Error.Message, "params."+field+" must be") ||
			strings.Contains(m.Error.Message, "Go ") || strings.Contains(m.Error.Message, "struct") || r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("initialize with %s=%v: %d %s", field, value, r.Status, r.Body)
		}
	}
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		t.Errorf("refused initialize returned a session %q", sid)
	}
	if n := sessionKeys(t, f); n != before {
		t.Errorf("refused initialize left %d session keys in Redis", n-before)
	}

	good := call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "t", "version": "1"}})
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "1999-01-01", Body: good})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "1999-01-01") {
		t.Errorf("unsupported MCP-Protocol-Version on initialize: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Mcp-Session-Id") != "" || sessionKeys(t, f) != before {
		t.Errorf("unsupported version opened a session")
	}
	// An unknown version in the body (no header) is negotiated, not
	// refused (MCP lifecycle, version negotiation): the answer names a
	// version the gateway supports, and the session works with it.
	unknown := call("initialize", map[string]any{"protocolVersion": "1999-01-01", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "t", "version": "1"}})
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: unknown})
	var negotiated struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || json.Unmarshal(m.Result, &negotiated) != nil || negotiated.ProtocolVersion == "" || negotiated.ProtocolVersion == "1999-01-01" {
		t.Errorf("initialize asking for 1999-01-01: %d %s, want a supported version", r.Status, r.Body)
	} else if p := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: r.Header.Get("Mcp-Session-Id"), Version: negotiated.ProtocolVersion,
		Body: call("ping", nil)}); p.Status != http.StatusOK {
		t.Errorf("ping with the negotiated version %s: %d %s", negotiated.ProtocolVersion, p.Status, p.Body)
	}
	// 2026-07-28 has no initialize handshake: an initialize asking for it
	// opens a session in the latest version that has one.
	modern := call("initialize", map[string]any{"protocolVersion": "2026-07-28", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "t", "version": "1"}})
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: modern})
	if m := r.rpc(t); m.Error != nil || json.Unmarshal(m.Result, &negotiated) != nil || negotiated.ProtocolVersion != "2025-11-25" {
		t.Errorf("initialize asking for 2026-07-28: %d %s, want 2025-11-25", r.Status, r.Body)
	}
	// A supported header, and none at all, still initialize.
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: good}); r.Status != 200 || r.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize with %s: %d %s", version, r.Status, r.Body)
	}
	g.initialize(t, tok)
}

// JSON-RPC envelopes mcp-go would mishandle get -32600 with HTTP 400, and
// ids come back byte for byte.
func TestJSONRPCEnvelope(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	for name, body := range map[string]string{
		"null id":         `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		"empty method":    `{"jsonrpc":"2.0","id":7,"method":""}`,
		"object id":       `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		"array id":        `{"jsonrpc":"2.0","id":[1],"method":"ping"}`,
		"boolean id":      `{"jsonrpc":"2.0","id":true,"method":"ping"}`,
		"batch":           `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`,
		"empty batch":     `[]`,
		"no method":       `{"jsonrpc":"2.0","id":8}`,
		"number method":   `{"jsonrpc":"2.0","id":9,"method":5}`,
		"wrong version":   `{"jsonrpc":"1.0","id":10,"method":"ping"}`,
		"scalar message":  `42`,
		"legacy batch":    `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		"null id on init": `{"jsonrpc":"2.0","id":null,"method":"initialize","params":{}}`,
	} {
		for _, path := range []string{"/mcp"} {
			r := g.do(t, req{Method: "POST", Path: path, Token: tok, Session: sid, Version: version, Body: body})
			m := r.rpc(t)
			if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 {
				t.Errorf("%s: %d %s, want 400 with -32600", name, r.Status, r.Body)
			}
		}
	}
	// Not JSON at all is a parse error (JSON-RPC 2.0 §5.1: 400, -32700, id
	// null), in a session and without one: a client whose initialize did
	// not parse was told "send initialize first". JSON nested deeper than
	// encoding/json reads (10,000 levels) is not JSON to the gateway.
	deep := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`
	for name, body := range map[string]string{"truncated": `{"jsonrpc":`, "nested too deep": deep, "not JSON": `hello`} {
		for _, session := range []string{sid, ""} {
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: session, Version: version, Body: body})
			if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32700 || string(m.ID) != "null" {
				t.Errorf("%s (session %q): %d %s, want 400 with -32700 and id null", name, session, r.Status, r.Body)
			}
		}
	}
	// Ids echoed exactly, as JSON and as an event stream.
	// 1e400 and a 256-digit integer (MaxIDBytes) are valid JSON numbers beyond float64:
	// echoed as sent, not a parse error.
	for _, id := range []string{`9007199254740993`, `-9007199254740993`, `1.5`, `1e2`, `"\u0041<b>"`, `"plain"`, `12`, `0`,
		`1e400`, `-1E+400`, strings.Repeat("9", 256)} {
		for _, accept := range []string{"application/json", "application/json, text/event-stream"} {
			body := `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/list"}`
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body, Header: map[string]string{"Accept": accept}})
			m := r.rpc(t)
			if string(m.ID) != id || m.Result == nil {
				t.Errorf("id %s (Accept %s): answered with id %s: %s", id, accept, m.ID, r.Body)
			}
		}
	}
	// A tool call with progress answers on an event stream: the id too.
	body := `{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"health.check","arguments":{},"_meta":{"progressToken":"p"}}}`
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body})
	if m := r.rpc(t); string(m.ID) != `9007199254740993` || m.Result == nil {
		t.Errorf("tools/call with a big id: %s %+v", m.ID, r.Events)
	}
}

// Legacy /messages: the same envelope rules, and exact ids on the stream.
func TestJSONRPCEnvelopeOverLegacySSE(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	s, path := g.openLegacy(t, tok)
	for name, body := range map[string]string{
		"null id":      `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		"empty method": `{"jsonrpc":"2.0","id":7,"method":""}`,
		"object id":    `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		"batch":        `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
	} {
		r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: body})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	big := `9007199254740993`
	if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","id":` + big + `,"method":"ping"}`}); r.Status != http.StatusAccepted {
		t.Fatalf("ping: %d %s", r.Status, r.Body)
	}
	e := s.next(func(e sseEvent) bool { return strings.Contains(e.Data, `"result"`) })
	var m rpcMessage
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil || string(m.ID) != big {
		t.Errorf("legacy ping with id %s answered %s", big, e.Data)
	}
}

// Over /sse a tool's step-up challenge names the /sse metadata (RFC 9728
// §3.3), as the 401 of /sse does: in ChatGPT's tool result here, in the
// 403 of other clients in TestScopeChallengeForms.
func TestLegacyStepUpNamesSSEMetadata(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	weak := f.Token("user-1", "openid")
	s, path := g.openLegacy(t, weak)
	c := call("tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}})
	if r := g.do(t, req{Method: "POST", Path: path, Token: weak, Header: chatGPT, Body: c}); r.Status != http.StatusAccepted {
		t.Fatalf("tools/call: %d", r.Status)
	}
	if e := s.next(response(c["id"])); !strings.Contains(e.Data, `"isError":true`) || !strings.Contains(e.Data, `resource_metadata=\"`+sseMetadataURL) {
		t.Errorf("legacy step-up: %s", e.Data)
	}
}

// Unknown HTTP methods share one metric label; event streams tell proxies
// not to buffer.
func TestMethodLabelsAndStreamHeaders(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	for _, m := range []string{"ANYTHING", "BREW", "PROPFIND"} {
		hr, _ := http.NewRequest(m, g.URL+"/mcp", nil)
		hr.Header.Set("Authorization", "Bearer "+tok)
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		hr, _ = http.NewRequest(m, g.URL+"/mcp", nil) // and without a token
		if res, err = httpClient.Do(hr); err == nil {
			res.Body.Close()
		}
	}
	res, err := httpClient.Get(g.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, m := range []string{"ANYTHING", "BREW", "PROPFIND"} {
		if strings.Contains(string(b), `"`+m+`"`) {
			t.Errorf("metric label %q exported", m)
		}
	}
	if !strings.Contains(string(b), `method="other"`) {
		t.Errorf("no method=\"other\" series")
	}

	sid := g.initialize(t, tok)
	s := g.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
	if h := s.res.Header.Get("X-Accel-Buffering"); h != "no" {
		t.Errorf("GET /mcp X-Accel-Buffering %q", h)
	}
	l := g.openStream(t, "/sse", tok, nil)
	if h := l.res.Header.Get("X-Accel-Buffering"); h != "no" {
		t.Errorf("GET /sse X-Accel-Buffering %q", h)
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"health.check","arguments":{},"_meta":{"progressToken":"p"}}}`})
	if len(r.Events) > 0 && r.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("POST answered as a stream without X-Accel-Buffering: %v", r.Header)
	}
}
