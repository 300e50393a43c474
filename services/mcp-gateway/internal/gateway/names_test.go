package gateway_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// MCP_TOOL_NAME_STYLE=underscore: every tool name matches the strict
// pattern some clients enforce, the widget links and step-up challenges
// stay with the renamed tools, and the dotted names are gone.
func TestUnderscoreToolNames(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("MCP_TOOL_NAME_STYLE", "underscore")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	var list struct {
		Tools []listedTool `json:"tools"`
	}
	g.rpc(t, tok, sid, "tools/list", nil, &list)
	strict := regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	byName := map[string]listedTool{}
	for _, lt := range list.Tools {
		byName[lt.Name] = lt
		if !strict.MatchString(lt.Name) {
			t.Errorf("tool name %q does not match %s", lt.Name, strict)
		}
	}
	reg := loadRegistry(t)
	if len(list.Tools) != len(reg.Tools()) {
		t.Fatalf("listed %d tools, registry has %d", len(list.Tools), len(reg.Tools()))
	}
	for _, rt := range reg.Tools() {
		name := strings.ReplaceAll(rt.Name, ".", "_")
		lt, ok := byName[name]
		if !ok {
			t.Errorf("%s not listed as %s", rt.Name, name)
			continue
		}
		if rt.WidgetURI != "" {
			ui, _ := lt.Meta["ui"].(map[string]any)
			if lt.Meta["openai/outputTemplate"] != rt.WidgetURI || ui["resourceUri"] != rt.WidgetURI {
				t.Errorf("%s: widget links %v", name, lt.Meta)
			}
		}
	}
	// Calls by the new name work; the dotted name is unknown.
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity_profile_card", "arguments": map[string]any{}}, &res)
	if res.IsError || res.StructuredContent == nil {
		t.Errorf("identity_profile_card: %+v", res)
	}
	// The card's actions name tools as listed.
	actions, _ := res.Meta["tollgate/actions"].(map[string]any)
	if len(actions) == 0 {
		t.Errorf("identity_profile_card: no tollgate/actions in %v", res.Meta)
	}
	for role, name := range actions {
		if n, _ := name.(string); !strict.MatchString(n) || byName[n].Name == "" {
			t.Errorf("card action %s calls %v, not a listed tool", role, name)
		}
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/call", map[string]any{"name": "health.check"})})
	if m := r.rpc(t); m.Error == nil && !strings.Contains(string(m.Result), `"isError":true`) {
		t.Errorf("dotted name still callable: %s", m.Result)
	}
	// Step-up for the renamed tool.
	weak := f.Token("user-1", "openid")
	wsid := g.initialize(t, weak)
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: weak, Session: wsid, Version: version, Header: chatGPT, Body: call("tools/call", map[string]any{"name": "identity_profile"})})
	var step toolResult
	if err := json.Unmarshal(r.rpc(t).Result, &step); err != nil || !step.IsError || step.Meta["mcp/www_authenticate"] == nil ||
		!strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("identity_profile with openid only: %s %v", r.Body, r.Header)
	}
	// The instructions name the tools as listed.
	init := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}})})
	if s := string(init.rpc(t).Result); !strings.Contains(s, "identity_profile_card") || strings.Contains(s, "identity.profile_card") {
		t.Errorf("instructions: %s", s)
	}
}
