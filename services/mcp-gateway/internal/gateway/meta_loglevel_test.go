package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// A stateless (2026-07-28) request's _meta io.modelcontextprotocol/logLevel
// is a LoggingLevel (RequestMetaObject); any other value is -32602 invalid
// params naming the field (MCP Logging, "Error Handling": an invalid log
// level is -32602), not read as "no level" — the request then silently got
// no log messages. The value is not repeated whole.
func TestStatelessInvalidMetaLogLevelIsInvalidParams(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	send := func(level string) *resp {
		t.Helper()
		meta := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"m","version":"1"}`
		if level != "" {
			meta += `,"io.modelcontextprotocol/logLevel":` + level
		}
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2026-07-28",
			Header: map[string]string{"Mcp-Method": "tools/list"},
			Body:   `{"jsonrpc":"2.0","id":"l-1","method":"tools/list","params":{"_meta":{` + meta + `}}}`})
	}
	const field = "invalid params: _meta io.modelcontextprotocol/logLevel must be a logging level (debug, info, notice, warning, error, critical, alert or emergency), not "
	for _, c := range []struct{ level, want string }{
		{`"loud"`, field + `"loud"`},
		{`"Debug"`, field + `"Debug"`},
		{`""`, field + `""`},
		{`42`, field + "a number"},
		// A number past MaxNumberBytes is refused as any such number is.
		{strings.Repeat("9", 100_000), "invalid params: params hold a number 100000 bytes long: the gateway accepts numbers of at most 256 bytes as written in the message, and the number is not repeated here"},
		{`true`, field + "a boolean"},
		{`["debug"]`, field + "an array"},
		{`{"level":"debug"}`, field + "an object"},
		{`"` + strings.Repeat("<", 100_000) + `"`, field + "a string of 100000 bytes"},
	} {
		r := send(c.level)
		m := r.rpc(t)
		if r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32602 || m.Error.Message != c.want || string(m.ID) != `"l-1"` {
			t.Errorf("logLevel %.40s: %d %.300s, want 400 -32602 %q", c.level, r.Status, r.Body, c.want)
		}
		if len(r.Body) > 1024 {
			t.Errorf("logLevel %.40s: the answer is %d bytes", c.level, len(r.Body))
		}
	}
	for _, level := range []string{"", `null`, `"debug"`, `"emergency"`} {
		if r := send(level); r.Status != http.StatusOK || r.rpc(t).Error != nil {
			t.Errorf("logLevel %s: %d %.300s, want 200", level, r.Status, r.Body)
		}
	}
}
