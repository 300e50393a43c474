package gateway_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// TestFailedToolCallNamesItsBackend: a tool call that fails for a reason
// that is not the caller's is logged with the backend that serves the
// tool (backend=, the registry's Capability.Backend), at warn when the
// backend is unavailable and at error when it answered a server fault —
// never as capability-core's failure when another backend failed (brk45b:
// make dev's example backend stopped was logged "tool call failed:
// capability-core unavailable" while capability-core was healthy).
func TestFailedToolCallNamesItsBackend(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	g := f.Gateway("CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",notes="+notes.Addr)
	tok := f.Token("user-1", "openid notes.read")
	sid := g.initialize(t, tok)
	for _, tc := range []struct {
		code  codes.Code
		level string
		msg   string
	}{
		{codes.Unavailable, "WARN", `msg="tool call failed: backend unavailable"`},
		{codes.Internal, "ERROR", `msg="tool call failed"`},
	} {
		before := len(g.Logs.String())
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
			Body: call("tools/call", map[string]any{"name": "notes.list", "arguments": map[string]any{"text": registrytest.FailText(tc.code, "database down")}})})
		if r.Status != 200 {
			t.Fatalf("%v: HTTP %d: %s", tc.code, r.Status, r.Body)
		}
		found := false
		for _, l := range strings.Split(g.Logs.String()[before:], "\n") {
			if !strings.Contains(l, "tool call failed") || !strings.Contains(l, "tool=notes.list") {
				continue
			}
			found = true
			if strings.Contains(l, "capability-core") {
				t.Errorf("%v: the notes backend's failure names capability-core: %s", tc.code, l)
			}
			if !strings.Contains(l, "level="+tc.level) || !strings.Contains(l, tc.msg) || !strings.Contains(l, " backend=notes ") || !strings.Contains(l, "grpc_code="+tc.code.String()) {
				t.Errorf("%v: want level=%s %s backend=notes grpc_code=%s: %s", tc.code, tc.level, tc.msg, tc.code, l)
			}
		}
		if !found {
			t.Fatalf("%v: no tool call failed line:\n%s", tc.code, g.Logs)
		}
	}
}
