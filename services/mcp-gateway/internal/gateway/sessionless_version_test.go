package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Without a session the gateway serves the versions with Streamable HTTP
// and sessions, 2025-03-26 to 2025-11-25. 2024-11-05 has no Streamable
// HTTP (its transport is HTTP+SSE, /sse), and an unknown version is no
// version at all: either is 400 (MCP 2025-06-18 and 2025-11-25,
// Transports, "Protocol Version Header": an invalid or unsupported
// MCP-Protocol-Version is 400 Bad Request) with -32600 naming the
// versions served, the same for one message, a notification and a batch.
func TestSessionlessVersions(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	for _, v := range []string{"", "2025-03-26", "2025-06-18", "2025-11-25"} {
		if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Body: call("tools/list", nil)}); r.Status != http.StatusOK || r.rpc(t).Error != nil {
			t.Errorf("version %q: tools/list without a session: %d %s, want 200", v, r.Status, r.Body)
		}
	}
	const supported = "supported without a session: 2025-11-25, 2025-06-18, 2025-03-26"
	for _, v := range []string{"2024-11-05", "1999-01-01"} {
		for _, c := range []struct {
			name string
			body any
		}{
			{"tools/list", call("tools/list", nil)},
			{"notification", map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}},
			{"batch", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`},
		} {
			r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Body: c.body})
			m := r.rpc(t)
			if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 ||
				!strings.Contains(m.Error.Message, `"`+v+`"`) || !strings.Contains(m.Error.Message, supported) {
				t.Errorf("version %s, %s without a session: %d %s; want 400 -32600 naming %s and %q", v, c.name, r.Status, r.Body, v, supported)
			}
			if want := v == "2024-11-05"; m.Error != nil && strings.Contains(m.Error.Message, "/sse") != want {
				t.Errorf("version %s, %s: %q; want the HTTP+SSE endpoint named: %v", v, c.name, m.Error.Message, want)
			}
		}
	}
	if n := g.metric(t, `tollgate_mcp_requests_total{method="POST",result="unsupported_version",transport="streamable-http"}`); n != 2 {
		t.Errorf("%v batches counted unsupported_version, want 2", n)
	}
	if n := g.metric(t, `tollgate_mcp_requests_total{method="tools/list",result="unsupported_version",transport="streamable-http"}`); n != 2 {
		t.Errorf("%v tools/list counted unsupported_version, want 2", n)
	}
	// A value that is no version is refused as for one message
	// (TestVersionValuesAndParamHeadersAreNotRepeated), not as a batch,
	// naming the versions served without a session, not every version.
	for _, body := range []any{call("tools/list", nil), `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2025-11-25x", Body: body})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || !strings.Contains(m.Error.Message, "(11 bytes) is not a protocol version") ||
			!strings.HasSuffix(m.Error.Message, "; "+supported) {
			t.Errorf("version 2025-11-25x without a session, %v: %d %s, want 400 naming no version and only the versions %s", body, r.Status, r.Body, supported)
		}
	}
	// A version served without a session that has no batches keeps its
	// reason: batches were removed (2025-06-18).
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2025-11-25", Body: `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`})
	if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || !strings.Contains(m.Error.Message, "batches are not supported") {
		t.Errorf("2025-11-25 batch without a session: %d %s, want 400 batches not supported", r.Status, r.Body)
	}
}
