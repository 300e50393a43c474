package gateway_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// A stateless (2026-07-28) request's Mcp-Method and Mcp-Name headers must
// be the body's method and name (SEP-2243); mcp-go refuses a mismatch with
// 400 -32020 "header mismatch: …" repeating the header's value, which the
// listener lets be up to 64 KiB. A value longer than the body's value may
// be (MaxMethodBytes, MaxNameBytes, MaxURIBytes) is counted, not repeated,
// as on the notification path (notificationHeaderError); a short one still
// gets mcp-go's own answer.
func TestStatelessRequestHeaderMismatchIsBounded(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	body := func(method, params string) string {
		if params != "" {
			params += ","
		}
		return `{"jsonrpc":"2.0","id":"h-1","method":"` + method + `","params":{` + params + meta + `}}`
	}
	long := strings.Repeat("<", 40_000)
	b64 := "=?base64?" + base64.StdEncoding.EncodeToString([]byte(long)) + "?="
	for _, c := range []struct {
		name       string
		method, nm string // headers
		body       string
		want       string // the whole message
	}{
		{"long Mcp-Method", long, "", body("tools/list", ""),
			`header mismatch: Mcp-Method: header value (40000 bytes; no MCP method is longer than 256) does not match body value "tools/list"`},
		{"long Mcp-Method on tools/call", long, "identity.profile", body("tools/call", `"name":"identity.profile","arguments":{}`),
			`header mismatch: Mcp-Method: header value (40000 bytes; no MCP method is longer than 256) does not match body value "tools/call"`},
		{"long Mcp-Name", "tools/call", long, body("tools/call", `"name":"identity.profile","arguments":{}`),
			`header mismatch: Mcp-Name: header value (40000 bytes; a name is at most 128) does not match body value "identity.profile"`},
		{"long Base64 Mcp-Name", "prompts/get", b64, body("prompts/get", `"name":"p"`),
			`header mismatch: Mcp-Name: header value (40000 bytes decoded; a name is at most 128) does not match body value "p"`},
		{"long Mcp-Name on resources/read", "resources/read", "ui://" + long, body("resources/read", `"uri":"ui://x"`),
			`header mismatch: Mcp-Name: header value (40005 bytes; a resource URI is at most 8192) does not match body value "ui://x"`},
		// Short values: mcp-go's answers, unchanged.
		{"short Mcp-Method", "tools/lis", "", body("tools/list", ""),
			`header mismatch: Mcp-Method: header value "tools/lis" does not match body value "tools/list"`},
		{"short Mcp-Name", "tools/call", "identity.profil", body("tools/call", `"name":"identity.profile","arguments":{}`),
			`header mismatch: Mcp-Name: header value "identity.profil" does not match body value "identity.profile"`},
	} {
		h := map[string]string{"Mcp-Method": c.method}
		if c.nm != "" {
			h["Mcp-Name"] = c.nm
		}
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28", Header: h, Body: c.body})
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32020 || m.Error.Message != c.want || string(m.ID) != `"h-1"` {
			t.Errorf("%s: %d %.400s, want 400 -32020 %q with id \"h-1\"", c.name, r.Status, r.Body, c.want)
		}
		if len(r.Body) > 1024 || strings.Contains(string(r.Body), "<<<") || strings.Contains(string(r.Body), `\u003c\u003c`) {
			t.Errorf("%s: the answer (%d bytes) repeats the header: %.300s", c.name, len(r.Body), r.Body)
		}
	}
	// Matching headers are served.
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
		Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "identity.profile"},
		Body:   body("tools/call", `"name":"identity.profile","arguments":{}`)})
	if m := r.rpc(t); r.Status != 200 || m.Error != nil {
		t.Errorf("matching headers: %d %.300s", r.Status, r.Body)
	}
}
