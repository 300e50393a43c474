package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// Logging and resource subscriptions are offered by every gateway; prompts
// and completions only by the conformance fixture profile, which also adds
// the suite's tools, resources and prompts.
func TestUtilitiesAndFixtureProfile(t *testing.T) {
	f := newFleet(t)
	plain := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := plain.initialize(t, tok)
	plain.rpc(t, tok, sid, "logging/setLevel", map[string]any{"level": "warning"}, nil)
	plain.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, nil)
	plain.rpc(t, tok, sid, "resources/unsubscribe", map[string]any{"uri": "ui://widget/health-status-card-v1.html"}, nil)
	r := plain.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("logging/setLevel", map[string]any{"level": "loud"})})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 {
		t.Errorf("logging/setLevel loud: %s", r.Body)
	}
	for _, method := range []string{"prompts/list", "completion/complete"} {
		r := plain.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call(method, map[string]any{})})
		if m := r.rpc(t); m.Error == nil || m.Error.Code != -32601 {
			t.Errorf("%s without fixtures: %s %+v", method, m.Result, m.Error)
		}
	}
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	plain.rpc(t, tok, sid, "tools/list", nil, &list)
	for _, lt := range list.Tools {
		if strings.HasPrefix(lt.Name, "test_") {
			t.Errorf("fixture tool %s without the profile", lt.Name)
		}
	}

	fx := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true")
	fsid := fx.initialize(t, tok)
	var res toolResult
	fx.rpc(t, tok, fsid, "tools/call", map[string]any{"name": "test_simple_text"}, &res)
	if len(res.Content) != 1 || res.Content[0].Text != "This is a simple text response for testing." {
		t.Errorf("test_simple_text: %+v", res)
	}
	var prompts struct {
		Prompts []struct{ Name string } `json:"prompts"`
	}
	fx.rpc(t, tok, fsid, "prompts/list", nil, &prompts)
	if len(prompts.Prompts) != 4 {
		t.Errorf("prompts: %+v", prompts)
	}
	var read struct {
		Contents []struct{ URI, Text string } `json:"contents"`
	}
	fx.rpc(t, tok, fsid, "resources/read", map[string]any{"uri": "test://template/42/data"}, &read)
	if len(read.Contents) != 1 || !strings.Contains(read.Contents[0].Text, `"id":"42"`) {
		t.Errorf("template read: %+v", read)
	}
	// The registry's tools are still there.
	fx.rpc(t, tok, fsid, "tools/call", map[string]any{"name": "health.check"}, &res)
	if res.IsError {
		t.Errorf("health.check with fixtures: %+v", res)
	}
}

// The fixture profile's tools stay when the backends' tools change (the
// registry's tool set is replaced then), and the new tools are served next
// to them.
func TestFixtureToolsStayWhenBackendToolsChange(t *testing.T) {
	f := newFleet(t)
	late := registrytest.Start(t, "late", []registrytest.Service{notesService("todo")})
	late.Stop()
	g := f.Gateway("MCP_CONFORMANCE_FIXTURES", "true", "CAPABILITY_BACKENDS", "capability-core="+f.CoreAddr+",late="+late.Addr,
		"CAPABILITY_REFRESH_INTERVAL", "1s")
	tok := f.Token("user-1", "openid todo.read")
	sid := g.initialize(t, tok)
	late.Restart(t)
	testharness.Eventually(t, 30*time.Second, "todo.list served", func() (bool, string) {
		got := g.toolNames(t, tok, sid)
		return strings.Contains(got, "todo.list"), got
	})
	if got := g.toolNames(t, tok, sid); !strings.Contains(got, "test_simple_text") {
		t.Errorf("tools after the backend came up = %q", got)
	}
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "test_simple_text"}, &res)
	if len(res.Content) != 1 || res.Content[0].Text != "This is a simple text response for testing." {
		t.Errorf("test_simple_text: %+v", res)
	}
}
