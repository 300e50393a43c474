package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// A tools/call whose arguments are not a JSON object fails MCP's
// CallToolRequest schema: a JSON-RPC -32602 error naming the tool, what
// was sent and what to send, on both transports. null and absent
// arguments are a call without inputs, and still work.
func TestNonObjectArguments(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	want := func(kind string) string {
		return fmt.Sprintf(`invalid params: arguments of tool "health.check" must be a JSON object of the tool's input fields (its inputSchema in tools/list), not %s; send {} for a tool without inputs`, kind)
	}
	cases := []struct {
		args any
		kind string
	}{{[]any{1}, "an array"}, {"x", "a string"}, {5, "a number"}, {true, "a boolean"}}
	for _, c := range cases {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: call("tools/call", map[string]any{"name": "health.check", "arguments": c.args})})
		m := r.rpc(t)
		if r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want(c.kind) {
			t.Errorf("/mcp arguments %v: %d %s, want -32602 %q", c.args, r.Status, r.Body, want(c.kind))
		}
	}
	for _, args := range []any{nil, map[string]any{}} {
		var res toolResult
		g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check", "arguments": args}, &res)
		if res.IsError {
			t.Errorf("arguments %v: %+v", args, res)
		}
	}

	s := g.openStream(t, "/sse", tok, nil)
	defer s.Close()
	path := s.endpoint()
	legacyInit(t, s, g, tok, path)
	r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: call("tools/call", map[string]any{"name": "health.check", "arguments": []any{}})})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != want("an array") {
		t.Errorf("/messages array arguments: %d %s", r.Status, r.Body)
	}
}

// "/mcp/" is the MCP endpoint too (not a redirect: see Handler); deeper
// paths are not.
func TestTrailingSlashIsTheEndpoint(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	r := g.do(t, req{Method: "POST", Path: "/mcp/", Token: tok, Session: sid, Version: version, Body: call("tools/list", nil)})
	if m := r.rpc(t); r.Status != http.StatusOK || m.Error != nil || len(m.Result) == 0 {
		t.Errorf("POST /mcp/: %d %s", r.Status, r.Body)
	}
	// Unauthenticated, it challenges like /mcp.
	if r := g.do(t, req{Method: "POST", Path: "/mcp/", Body: call("ping", nil)}); r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != noCredentialsChallenge {
		t.Errorf("POST /mcp/ without a token: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	// Deeper paths, and any path the gateway does not serve, are the
	// gateway's JSON 404 (not net/http's plain-text "404 page not found"),
	// with or without a token.
	for _, r := range []req{
		{Method: "POST", Path: "/mcp/x", Token: tok, Session: sid, Body: call("ping", nil)},
		{Method: "POST", Path: "/mcp/x", Body: "{}"},
		{Method: "GET", Path: "/mcpx"},
		{Method: "DELETE", Path: "/"},
		{Method: "GET", Path: "/sse/x"},
	} {
		a := g.do(t, r)
		var e struct {
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		if a.Status != http.StatusNotFound || a.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(a.Body, &e) != nil || e.Error != "not_found" || e.ErrorDescription != "no such path here; the MCP endpoint is "+resource {
			t.Errorf("%s %s: %d %q %s, want the JSON 404", r.Method, r.Path, a.Status, a.Header.Get("Content-Type"), a.Body)
		}
	}
	// The latency histogram's route label is the mux pattern matched (the
	// gateway names it, telemetry.SetRoute), an unknown path's "other".
	for _, series := range []string{
		`tollgate_http_request_duration_seconds_count{code="2xx",method="POST",route="/mcp"}`,
		`tollgate_http_request_duration_seconds_count{code="2xx",method="POST",route="/mcp/{$}"}`,
		`tollgate_http_request_duration_seconds_count{code="4xx",method="POST",route="/mcp/{$}"}`,
		`tollgate_http_request_duration_seconds_count{code="4xx",method="POST",route="other"}`,
	} {
		if g.metric(t, series) < 1 {
			t.Errorf("no %s", series)
		}
	}
	// The catch-all's pattern "/" is no label: the unmatched path is "other".
	for _, method := range []string{"GET", "POST", "DELETE"} {
		if series := `tollgate_http_request_duration_seconds_count{code="4xx",method="` + method + `",route="/"}`; g.metric(t, series) != 0 {
			t.Errorf("%s: the catch-all's pattern is a label", series)
		}
	}
}
