package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Rules of JSON-RPC 2.0 and Streamable HTTP that held when tried by hand
// and had no test of their own: notifications get 202 and no body, an
// unknown method -32601 with the request's id, a chunked body over the
// limit 413, and another subject's token cannot use, stream or end
// someone's session.
func TestProtocolRulesThatHold(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)

	// Notifications (no id): 202, no body, whatever the method and Accept.
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
		`{"jsonrpc":"2.0","method":"notifications/no-such-thing","params":{"x":1}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99,"reason":"gone"}}`,
		`{"jsonrpc":"2.0","method":"tools/list"}`, // a request's method without an id is a notification
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"health.check","arguments":{}}}`,
	} {
		for _, accept := range []string{"application/json", "application/json, text/event-stream"} {
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: body, Header: map[string]string{"Accept": accept}})
			if r.Status != http.StatusAccepted || len(r.Body) != 0 || len(r.Events) != 0 {
				t.Errorf("notification %s (Accept %s): %d %q, want 202 and no body", body, accept, r.Status, r.Body)
			}
		}
	}

	// An unknown method: -32601 answering the request's id.
	for _, id := range []string{`17`, `"abc"`, `1.5`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: `{"jsonrpc":"2.0","id":` + id + `,"method":"no/such/method"}`})
		if m := r.rpc(t); r.Status != http.StatusOK || m.Error == nil || m.Error.Code != -32601 || string(m.ID) != id {
			t.Errorf("unknown method, id %s: %d %s", id, r.Status, r.Body)
		}
	}

	// A chunked body (no Content-Length) is bounded like any other.
	chunked := func(body []byte) (int, []byte) {
		t.Helper()
		hr, _ := http.NewRequest("POST", g.URL+"/mcp", io.MultiReader(bytes.NewReader(body))) // not a *bytes.Reader: no length
		hr.Header.Set("Authorization", "Bearer "+tok)
		hr.Header.Set("Content-Type", "application/json")
		hr.Header.Set("Accept", "application/json")
		hr.Header.Set("Mcp-Session-Id", sid)
		hr.Header.Set("Mcp-Protocol-Version", version)
		if hr.ContentLength != 0 {
			t.Fatalf("request has a length: %d", hr.ContentLength)
		}
		res, err := httpClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	big := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("a", 1<<20) + `"}}`)
	if status, b := chunked(big); status != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"code":-32600`) {
		t.Errorf("chunked body over 1 MiB: %d %s", status, b)
	}
	if status, b := chunked([]byte(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)); status != http.StatusOK || !strings.Contains(string(b), `"result":{}`) {
		t.Errorf("small chunked body: %d %s", status, b)
	}

	// Another subject holding the session id: 404 on every method, and the
	// session is not ended by its DELETE.
	other := f.Token("user-2", allScopes)
	for _, method := range []string{"GET", "DELETE", "POST"} {
		rr := req{Method: method, Path: "/mcp", Token: other, Session: sid, Version: version}
		if method == "POST" {
			rr.Body = call("tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}})
		}
		r := g.do(t, rr)
		var m rpcMessage
		if r.Status != http.StatusNotFound || json.Unmarshal(r.Body, &m) != nil || m.Error == nil {
			t.Errorf("%s with another subject's token: %d %s, want 404 with a JSON-RPC error", method, r.Status, r.Body)
		}
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile", "arguments": map[string]any{}}, &res)
	if res.IsError || res.StructuredContent["sub"] != "user-1" {
		t.Errorf("the owner's call after another subject's DELETE: %+v", res)
	}
}
