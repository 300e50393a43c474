package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// A protocol version value that is no version (a date, YYYY-MM-DD) is
// refused before anything repeats it: mcp-go's stateless checks quoted a
// long Mcp-Protocol-Version header, or _meta protocolVersion, whole in a
// ~40 KB answer ("header … does not match request …", "unsupported
// protocol version: %q"), and the gateway's own answers did too
// (initialize's unsupported header, a session's negotiated version). The
// answer is 400 with a JSON-RPC error naming the supported versions and
// the value's length: -32022 with data.supported on a stateless request,
// -32600 otherwise. An Mcp-Param-* header over MaxParamHeaderBytes on a
// stateless tools/call is refused the same way, -32020.
func TestVersionValuesAndParamHeadersAreNotRepeated(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	long := "2026-07-28" + strings.Repeat("<", 40_000)   // a stateless era's, by mcp-go's comparison
	long25 := "2025-11-25" + strings.Repeat("<", 40_000) // a session era's
	meta := func(v string) string {
		return `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + v + `","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	}
	stateless := func(v string) string {
		return `{"jsonrpc":"2.0","id":"v-1","method":"tools/list","params":{` + meta(v) + `}}`
	}
	h := map[string]string{"Mcp-Method": "tools/list"}
	for _, c := range []struct {
		name string
		r    req
		code int
		want string // in the message
	}{
		{"stateless: long header", req{Version: long, Header: h, Body: stateless("2026-07-28")}, -32022,
			"the Mcp-Protocol-Version header (40010 bytes) is not a protocol version"},
		{"stateless: long _meta", req{Version: "2026-07-28", Header: h, Body: stateless(long)}, -32022,
			"_meta io.modelcontextprotocol/protocolVersion (40010 bytes) is not a protocol version"},
		{"stateless: both long", req{Version: long, Header: h, Body: stateless(long)}, -32022,
			"the Mcp-Protocol-Version header (40010 bytes)"},
		{"stateless: short, not a date", req{Version: "2026-07-28", Header: h, Body: stateless("2026-07-28x")}, -32022,
			"(11 bytes) is not a protocol version"},
		{"initialize: long header", req{Version: long25, Body: call("initialize", map[string]any{"protocolVersion": version,
			"capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}})}, -32600,
			"the Mcp-Protocol-Version header (40010 bytes)"},
		{"session: long header", req{Session: sid, Version: long25, Body: call("tools/list", nil)}, -32600,
			"the Mcp-Protocol-Version header (40010 bytes)"},
		{"session: long header of the stateless era", req{Session: sid, Version: long, Body: call("tools/list", nil)}, -32022,
			"the Mcp-Protocol-Version header (40010 bytes)"},
		{"stateless tools/call: long Mcp-Param header", req{Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "identity.profile", "Mcp-Param-Region": strings.Repeat("<", 40_000)},
			Body:   `{"jsonrpc":"2.0","id":"v-1","method":"tools/call","params":{"name":"identity.profile","arguments":{},` + meta("2026-07-28") + `}}`}, -32020,
			"header mismatch: Mcp-Param-Region: header value (40000 bytes) is longer than a parameter header may be (8192 bytes)"},
	} {
		c.r.Method, c.r.Path, c.r.Token = "POST", "/mcp", tok
		r := g.do(t, c.r)
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != c.code || !strings.Contains(m.Error.Message, c.want) {
			t.Errorf("%s: %d %.400s; want 400 %d saying %q", c.name, r.Status, r.Body, c.code, c.want)
			continue
		}
		if c.code != -32020 && !strings.Contains(m.Error.Message, "supported: 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05") {
			t.Errorf("%s: %q names no supported version", c.name, m.Error.Message)
		}
		if c.code == -32022 && !strings.Contains(string(r.Body), `"data":{"supported":["2026-07-28",`) {
			t.Errorf("%s: no data.supported: %.400s", c.name, r.Body)
		}
		if len(r.Body) > 1024 || strings.Contains(string(r.Body), "<<") || strings.Contains(string(r.Body), `\u003c\u003c`) {
			t.Errorf("%s: the answer (%d bytes) repeats the value: %.300s", c.name, len(r.Body), r.Body)
		}
	}
	// Versions of the form pass on as before: served, or refused naming them.
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28", Header: h, Body: stateless("2026-07-28")}); r.Status != 200 {
		t.Errorf("stateless tools/list: %d %.300s", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: "1999-01-01", Body: call("tools/list", nil)}); r.Status != 400 ||
		!strings.Contains(string(r.Body), "1999-01-01") {
		t.Errorf("session with a version of the form it did not negotiate: %d %.300s", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
		Header: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "identity.profile", "Mcp-Param-Region": strings.Repeat("r", 8192)},
		Body:   `{"jsonrpc":"2.0","id":"v-2","method":"tools/call","params":{"name":"identity.profile","arguments":{},` + meta("2026-07-28") + `}}`}); r.Status != 200 {
		t.Errorf("stateless tools/call with an Mcp-Param header of 8192 bytes: %d %.300s", r.Status, r.Body)
	}
}
