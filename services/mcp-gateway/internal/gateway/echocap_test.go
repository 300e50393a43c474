package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// mcp-go repeats a request's method, tool or prompt name and resource URI
// whole in its error answers ("tool '…' not found"): a 150 KB tool name
// came back as a ~900 KB answer (verify34). Longer than the bounds
// (MaxMethodBytes, MaxNameBytes, MaxURIBytes) they are refused before
// mcp-go sees them, by an answer that names the bound and not the value —
// on /mcp (a session, a 2025-03-26 batch, the stateless era), on legacy
// /messages and on /messages posted to a replica other than the stream's
// (relayed); so is a logging/setLevel params.level (MaxLevelBytes), which
// mcp-go repeats ("invalid logging level '…'"). A short unknown name or
// level still gets its answer (an unknown tool the gateway's "Unknown
// tool: …", a level mcp-go's), and a name at the bound is not refused for
// its length.
func TestEchoedValuesAreCapped(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	oldSid := a.initialize20250326(t, tok)
	_, path := a.openLegacy(t, tok)

	long := strings.Repeat("<", 150_000)
	type refused struct {
		name, body string
		code       int
		want       string // in the message
	}
	body := func(method, params string) string {
		return `{"jsonrpc":"2.0","id":"e-1","method":"` + method + `","params":` + params + `}`
	}
	cases := []refused{
		{"tools/call name", body("tools/call", `{"name":"`+long+`","arguments":{}}`), -32602, "params.name is 150000 bytes long: a name is at most 128 bytes"},
		{"tools/call name escaped", body("tools/call", `{"name":"`+strings.Repeat(`\u003c`, 200)+`"}`), -32602, "params.name is 200 bytes long"},
		{"prompts/get name", body("prompts/get", `{"name":"`+long+`"}`), -32602, "params.name is 150000 bytes long"},
		{"resources/read uri", body("resources/read", `{"uri":"ui://`+long+`"}`), -32602, "params.uri is 150005 bytes long: the gateway accepts resource URIs of at most 8192 bytes"},
		{"resources/subscribe uri", body("resources/subscribe", `{"uri":"ui://`+long+`"}`), -32602, "params.uri is 150005 bytes long"},
		{"resources/unsubscribe uri", body("resources/unsubscribe", `{"uri":"ui://`+long+`"}`), -32602, "params.uri is 150005 bytes long"},
		{"logging/setLevel level", body("logging/setLevel", `{"level":"`+long+`"}`), -32602, "params.level is 150000 bytes long: a logging level is one of the MCP LoggingLevel values"},
		{"logging/setLevel level escaped", body("logging/setLevel", `{"level":"`+strings.Repeat(`\u003c`, 33)+`"}`), -32602, "params.level is 33 bytes long"},
		{"method", `{"jsonrpc":"2.0","id":"e-1","method":"` + long + `"}`, -32601, "bytes long; no MCP method is longer than 256 bytes"},
	}
	check := func(t *testing.T, where string, c refused, status int, got []byte, m rpcMessage) {
		t.Helper()
		if m.Error == nil || m.Error.Code != c.code || !strings.Contains(m.Error.Message, c.want) || string(m.ID) != `"e-1"` {
			t.Errorf("%s %s: %d %.300s, want %d %q with id \"e-1\"", where, c.name, status, got, c.code, c.want)
		}
		if len(got) > 1024 || strings.Contains(string(got), "<<<") || strings.Contains(string(got), `\u003c\u003c`) {
			t.Errorf("%s %s: the answer (%d bytes) repeats the value: %.300s", where, c.name, len(got), got)
		}
	}
	meta := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "modern", "version": "1"},
	}
	for _, c := range cases {
		r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: c.body})
		status := http.StatusOK
		if c.code == -32601 {
			status = http.StatusBadRequest // refused with the envelope
		}
		if r.Status != status {
			t.Errorf("/mcp %s: HTTP %d, want %d", c.name, r.Status, status)
		}
		check(t, "/mcp", c, r.Status, r.Body, r.rpc(t))

		r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: oldSid, Body: "[" + c.body + `,{"jsonrpc":"2.0","id":2,"method":"ping"}]`})
		var answers []rpcMessage
		if err := json.Unmarshal(r.Body, &answers); err != nil || r.Status != 200 || len(answers) != 2 {
			t.Errorf("batch %s: %d %.300s", c.name, r.Status, r.Body)
		} else {
			check(t, "batch", c, r.Status, r.Body, answers[0])
		}

		// The stateless era: the same params, with its _meta.
		var msg map[string]any
		if err := json.Unmarshal([]byte(c.body), &msg); err != nil {
			t.Fatal(err)
		}
		if p, ok := msg["params"].(map[string]any); ok {
			p["_meta"] = meta
		} else {
			msg["params"] = map[string]any{"_meta": meta}
		}
		method, _ := msg["method"].(string)
		r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": method[:min(len(method), 64)], "Mcp-Name": "x"}, Body: msg})
		if method == "logging/setLevel" {
			// Removed in 2026-07-28: mcp-go's -32601, which names the
			// method, not the level.
			if m := r.rpc(t); r.Status != http.StatusNotFound || m.Error == nil || m.Error.Code != -32601 || len(r.Body) > 1024 {
				t.Errorf("stateless %s: %d %.300s, want 404 -32601 (removed in 2026-07-28)", c.name, r.Status, r.Body)
			}
		} else {
			check(t, "stateless", c, r.Status, r.Body, r.rpc(t))
		}

		for where, g := range map[string]*gw{"/messages": a, "/messages relayed": b} {
			r = g.do(t, req{Method: "POST", Path: path, Token: tok, Body: c.body})
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s %s: HTTP %d, want 400 (refused on the POST)", where, c.name, r.Status)
				continue
			}
			check(t, where, c, r.Status, r.Body, r.rpc(t))
		}
	}

	// Short unknown names get the gateway's answer, naming them
	// (toolNameError), and URIs mcp-go's; a name of exactly MaxNameBytes is
	// not refused for its length.
	for _, name := range []string{"nope", strings.Repeat("n", 128)} {
		r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: call("tools/call", map[string]any{"name": name, "arguments": map[string]any{}})})
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 || m.Error.Message != "Unknown tool: "+name {
			t.Errorf("tools/call %d-byte unknown name: %d %s, want -32602 Unknown tool", len(name), r.Status, r.Body)
		}
	}
	// A level of at most MaxLevelBytes that is not a level gets mcp-go's
	// answer.
	for _, level := range []string{"nope", strings.Repeat("l", 32)} {
		r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: call("logging/setLevel", map[string]any{"level": level})})
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "invalid logging level '"+level+"'") {
			t.Errorf("logging/setLevel %d-byte unknown level: %d %s, want mcp-go's invalid logging level", len(level), r.Status, r.Body)
		}
	}
	uri := "ui://" + strings.Repeat("u", 8192-5)
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Body: call("resources/read", map[string]any{"uri": uri})})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32002 || !strings.Contains(m.Error.Message, uri) {
		t.Errorf("resources/read of an unknown %d-byte URI: %d %.300s, want -32002 naming it", len(uri), r.Status, r.Body)
	}
	r = a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("no/such/method", nil)})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32601 || !strings.Contains(m.Error.Message, "no/such/method") {
		t.Errorf("unknown short method: %d %s, want mcp-go's -32601", r.Status, r.Body)
	}
}
