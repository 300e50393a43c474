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
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"revoked":true`) {
		t.Fatalf("DELETE /actions/connections/%s: %d %s", appGrant, resp.StatusCode, body)
	}
	refusedEverywhereWithin(t, mcpChecks, time.Second)
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
	if res.IsError || !strings.Contains(string(res.StructuredContent), `"revoked":true`) {
		t.Fatalf("connections.revoke: %+v", res)
	}
	refusedEverywhereWithin(t, actChecks, time.Second)
	res = mcpCall(t, app2.AccessToken, "connections.list", nil)
	if res.IsError || strings.Contains(string(res.StructuredContent), actGrant) || strings.Contains(string(res.StructuredContent), appGrant) {
		t.Errorf("connections.list after both revocations: %+v", res)
	}
}
