package gateway_test

import (
	"strings"
	"testing"
	"time"
)

// TestFixtureSamplingWithoutTheCapabilityAnswersAtOnce: the conformance
// fixture test_sampling, called with a progressToken (so through mcp-go's
// transport) by a client that declared no sampling capability, answers at
// once that the session does not support sampling, as it does without the
// token; it sent the client a sampling request and waited about 8 s
// (brkgosdk F4).
func TestFixtureSamplingWithoutTheCapabilityAnswersAtOnce(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok) // capabilities {}
	for _, meta := range []string{``, `,"_meta":{"progressToken":"p1"}`} {
		start := time.Now()
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}` + meta + `}}`})
		took := time.Since(start)
		if m := r.rpc(t); m.Error != nil || !strings.Contains(string(m.Result), "session does not support sampling") || took > 3*time.Second {
			t.Errorf("test_sampling%s: %d in %v: %s %+v, want at once \"session does not support sampling\"", meta, r.Status, took.Round(time.Millisecond), m.Result, m.Error)
		}
	}
}
