package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// scopeBody is the body of a 403 insufficient_scope answer.
type scopeBody struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Scope       string `json:"scope"`
		} `json:"data"`
	} `json:"error"`
}

// scopeError decodes a 403's body as a JSON-RPC error (-32003).
func scopeError(r *resp) (scopeBody, bool) {
	var b scopeBody
	ok := json.Unmarshal(r.Body, &b) == nil && b.JSONRPC == "2.0" && b.Error.Code == -32003 && b.Error.Message != ""
	return b, ok
}

// TestInsufficientScopeIsTheCallsError: the 403 insufficient_scope answer
// of a tools/call (MCP 2025-11-25 Scope Challenge Handling, RFC 6750 §3.1)
// is a JSON-RPC error carrying the call's id, besides the WWW-Authenticate
// challenge. Its body was the OAuth error alone ({"error":
// "insufficient_scope"}), which the Go MCP SDK (v1.8.0) could not tie to
// the call: it ended its session (brkgosdk F3). In a session, stateless,
// and on legacy /messages under SCOPE_CHALLENGE=http.
func TestInsufficientScopeIsTheCallsError(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SCOPE_CHALLENGE", "http")
	weak := f.Token("user-1", "openid")
	sid := g.initialize(t, weak)
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"go-sdk","version":"1.8.0"}}`
	_, path := g.openLegacy(t, weak)
	for _, c := range []struct {
		name string
		r    req
		id   string
	}{
		{"session", req{Method: "POST", Path: "/mcp", Token: weak, Session: sid, Version: version,
			Body: `{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`}, "41"},
		{"stateless", req{Method: "POST", Path: "/mcp", Token: weak, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "identity.profile"},
			Body:   `{"jsonrpc":"2.0","id":"s-42","method":"tools/call","params":{"name":"identity.profile","arguments":{},` + meta + `}}`}, `"s-42"`},
		{"legacy /messages", req{Method: "POST", Path: path, Token: weak,
			Body: `{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`}, "43"},
	} {
		r := g.do(t, c.r)
		b, ok := scopeError(r)
		if r.Status != http.StatusForbidden || !ok || string(b.ID) != c.id || b.Error.Data.Error != "insufficient_scope" ||
			b.Error.Data.Scope != "openid profile email" || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s, want 403 and a JSON-RPC error -32003 with id %s", c.name, r.Status, r.Body, c.id)
		}
	}
}
