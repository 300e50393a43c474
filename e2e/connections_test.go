package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var connectionScopes = []string{"openid", "profile", "email", "connections.read", "connections.revoke"}

type connection struct {
	GrantID  string   `json:"grant_id"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Current  bool     `json:"current"`
}

// mcpCall opens an MCP session with token and calls one tool; it returns
// the tool result.
func mcpCall(t *testing.T, token, tool string, args map[string]any) (result struct {
	IsError           bool            `json:"isError"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	Content           []struct {
		Text string `json:"text"`
	} `json:"content"`
}) {
	t.Helper()
	accept := []string{"Accept", "application/json, text/event-stream", "Content-Type", "application/json"}
	resp, body := call(t, "POST", fleet.Origin+"/mcp", token, strings.NewReader(initialize), accept...)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	hdr := append(accept, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	call(t, "POST", fleet.Origin+"/mcp", token, strings.NewReader(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), hdr...)
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}})
	resp, body = call(t, "POST", fleet.Origin+"/mcp", token, strings.NewReader(string(req)), hdr...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/call %s: %d %s", tool, resp.StatusCode, body)
	}
	if i := strings.Index(string(body), "data: "); strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") && i >= 0 {
		body = []byte(strings.TrimSpace(strings.SplitN(string(body)[i+len("data: "):], "\n", 2)[0]))
	}
	var rpc struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &rpc); err != nil || json.Unmarshal(rpc.Result, &result) != nil {
		t.Fatalf("tools/call %s: %s", tool, body)
	}
	return result
}

// TestConnectedAppsRevokeEverywhere: the user lists the connected apps
// through the Actions API and disconnects the ChatGPT app's grant with
// DELETE /actions/connections/{grant_id}; its access token is refused
// within 1 s on /mcp, /sse, capability-core and userinfo. Then, from MCP,
// connections.revoke disconnects the GPT Action: its token is refused
// within 1 s on /actions too.
func TestConnectedAppsRevokeEverywhere(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	actions, _ := fleet.Client("gpt-actions")
	appTok := link(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams)
	act, err := authorizeScopes(t, "gpt-actions", actions.Audience, oauth2.AuthStyleInParams, connectionScopes...).exchange()
	if err != nil {
		t.Fatal(err)
	}
	mcpChecks := mcpVerifiers(t, appTok.AccessToken)
	acceptedEverywhere(t, mcpChecks)

	resp, body := call(t, "GET", fleet.Origin+"/actions/connections", act.AccessToken, nil)
	var list struct{ Connections []connection }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /actions/connections: %d %s", resp.StatusCode, body)
	}
	// The app's grant is the one its token names (grant_id claim): other
	// tests of the shared fleet link gpt-apps-mcp too.
	appGrant, actGrant, listed := grantID(t, appTok.AccessToken), "", false
	for _, c := range list.Connections {
		switch {
		case c.Current:
			actGrant = c.GrantID
		case c.GrantID == appGrant:
			listed = c.ClientID == "gpt-apps-mcp"
		}
	}
	if !listed || actGrant == "" || actGrant != grantID(t, act.AccessToken) {
		t.Fatalf("connections %+v: want the app's grant %s and the current one", list.Connections, appGrant)
	}
	resp, body = call(t, "DELETE", fleet.Origin+"/actions/connections/"+appGrant, act.AccessToken, nil)
	revoked := time.Now()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"revoked":true`) {
		t.Fatalf("DELETE /actions/connections/%s: %d %s", appGrant, resp.StatusCode, body)
	}
	refusedEverywhereWithinPromise(t, mcpChecks, revoked)
	if resp, body := call(t, "DELETE", fleet.Origin+"/actions/connections/"+appGrant, act.AccessToken, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: %d %s, want 404", resp.StatusCode, body)
	}

	// From MCP: a new ChatGPT app grant disconnects the GPT Action.
	app2, err := authorizeScopes(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams, connectionScopes...).exchange()
	if err != nil {
		t.Fatal(err)
	}
	actChecks := actionsVerifiers(t, act.AccessToken)
	acceptedEverywhere(t, actChecks)
	res := mcpCall(t, app2.AccessToken, "connections.revoke", map[string]any{"grant_id": actGrant})
	revoked = time.Now()
	if res.IsError || !strings.Contains(string(res.StructuredContent), `"revoked":true`) {
		t.Fatalf("connections.revoke: %+v", res)
	}
	refusedEverywhereWithinPromise(t, actChecks, revoked)
	res = mcpCall(t, app2.AccessToken, "connections.list", nil)
	if res.IsError || strings.Contains(string(res.StructuredContent), actGrant) || strings.Contains(string(res.StructuredContent), appGrant) {
		t.Errorf("connections.list after both revocations: %+v", res)
	}
}

// TestRevokeWithoutItsScopeIsStepUp: ChatGPT links with `openid
// connections.read profile email` (connect-chatgpt-apps.md) and asks for
// connections.revoke only when the user first disconnects an app, so the
// connected-apps card's first revoke meets the step-up refusal. Over the
// real fleet, as ChatGPT: HTTP 200 with a tool error whose _meta carries
// the challenge (mcp/www_authenticate) and tollgate/stepUp with the
// scope's words from GrantsService's scope option — what the card shows
// as "More access needed" (the widgets module's stand-in answers the
// same) — and the grant is left alone.
func TestRevokeWithoutItsScopeIsStepUp(t *testing.T) {
	apps, _ := fleet.Client("gpt-apps-mcp")
	tok, err := authorizeScopes(t, "gpt-apps-mcp", apps.Audience, oauth2.AuthStyleInParams, "openid", "connections.read", "profile", "email").exchange()
	if err != nil {
		t.Fatal(err)
	}
	grant := grantID(t, tok.AccessToken)
	hdr := []string{"Accept", "application/json, text/event-stream", "Content-Type", "application/json", "User-Agent", "openai-mcp/1.0.0"}
	resp, body := call(t, "POST", fleet.Origin+"/mcp", tok.AccessToken, strings.NewReader(initialize), hdr...)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	hdr = append(hdr, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	call(t, "POST", fleet.Origin+"/mcp", tok.AccessToken, strings.NewReader(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), hdr...)
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
		"params": map[string]any{"name": "connections.revoke", "arguments": map[string]any{"grant_id": grant}}})
	resp, body = call(t, "POST", fleet.Origin+"/mcp", tok.AccessToken, strings.NewReader(string(req)), hdr...)
	if i := strings.Index(string(body), "data: "); strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") && i >= 0 {
		body = []byte(strings.TrimSpace(strings.SplitN(string(body)[i+len("data: "):], "\n", 2)[0]))
	}
	var rpc struct {
		Result struct {
			IsError bool `json:"isError"`
			Meta    struct {
				Challenge []string `json:"mcp/www_authenticate"`
				StepUp    struct {
					Missing []struct{ Scope, Description string } `json:"missing"`
				} `json:"tollgate/stepUp"`
			} `json:"_meta"`
		} `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rpc) != nil || !rpc.Result.IsError {
		t.Fatalf("connections.revoke without its scope: %d %s", resp.StatusCode, body)
	}
	m := rpc.Result.Meta
	if len(m.StepUp.Missing) != 1 || m.StepUp.Missing[0].Scope != "connections.revoke" || m.StepUp.Missing[0].Description != "Disconnect apps from your account" {
		t.Errorf("tollgate/stepUp %+v, want connections.revoke with its description", m.StepUp)
	}
	if len(m.Challenge) != 1 || !strings.Contains(m.Challenge[0], `error="insufficient_scope"`) || !strings.Contains(m.Challenge[0], ` connections.revoke"`) {
		// The challenge asks for what the token has plus what the tool needs.
		t.Errorf("mcp/www_authenticate %q, want the insufficient_scope challenge asking for connections.revoke", m.Challenge)
	}
	if res := mcpCall(t, tok.AccessToken, "connections.list", nil); res.IsError || !strings.Contains(string(res.StructuredContent), grant) {
		t.Errorf("connections.list after the refused revoke: %+v, want the grant %s still listed", res, grant)
	}
}
