package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/devfleet"
)

// JSON-RPC and Streamable HTTP rules through the local ingress, with
// tokens from a real sign-in: a client's response is accepted (202, the
// session lives on), a list cursor the server never issued and a param of
// the wrong JSON type are -32602, a 2025-03-26 session's batch is answered
// as an array, and a token without a tool's scopes gets the step-up
// challenge: for ChatGPT in the answer's WWW-Authenticate and the result's
// _meta, for a standard client as a 403 with the challenge.
func TestMCPProtocolThroughTheIngress(t *testing.T) {
	tr, err := signIn(t, devfleet.SignInOptions{ClientID: "local-test", Resource: "mcp", Scope: "openid profile email"})
	if err != nil {
		t.Fatal(err)
	}
	s := openMCP(t, tr.AccessToken)
	post := func(body string, header ...string) (*http.Response, []byte) {
		t.Helper()
		return call(t, "POST", fleet.Origin+"/mcp", tr.AccessToken, strings.NewReader(body), append(s.headers(), header...)...)
	}
	if resp, body := post(`{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"not supported"}}`); resp.StatusCode != http.StatusAccepted || len(body) != 0 {
		t.Errorf("a client's error response: %d %s, want 202 and no body", resp.StatusCode, body)
	}
	if _, err := s.request("ping", map[string]any{}); err != nil {
		t.Errorf("ping after a client's response: %v", err)
	}
	if _, err := s.request("tools/list", map[string]any{"cursor": "eg=="}); err == nil || !strings.Contains(err.Error(), "-32602") {
		t.Errorf("tools/list with a cursor never issued: %v, want -32602", err)
	}
	if _, err := s.request("tools/call", map[string]any{"name": 5}); err == nil || !strings.Contains(err.Error(), "-32602 invalid params: params.name must be a JSON string") {
		t.Errorf("tools/call with a number name: %v, want -32602", err)
	}

	// A 2025-03-26 session (no MCP-Protocol-Version header in that
	// revision) answers a batch as an array.
	resp, body := call(t, "POST", fleet.Origin+"/mcp", tr.AccessToken, strings.NewReader(strings.Replace(initialize, "2025-11-25", "2025-03-26", 1)),
		"Accept", "application/json, text/event-stream", "Content-Type", "application/json")
	old := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || old == "" {
		t.Fatalf("2025-03-26 initialize: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "POST", fleet.Origin+"/mcp", tr.AccessToken,
		strings.NewReader(`[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}]`),
		"Accept", "application/json, text/event-stream", "Content-Type", "application/json", "Mcp-Session-Id", old)
	var answers []struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &answers) != nil || len(answers) != 2 ||
		string(answers[0].ID) != "1" || string(answers[1].ID) != "2" || !strings.Contains(string(answers[1].Result), `"structuredContent"`) {
		t.Errorf("batch in a 2025-03-26 session: %d %s", resp.StatusCode, body)
	}

	// A token with openid only: identity.profile answers the step-up
	// challenge; with ChatGPT's User-Agent, in the tool result
	// (SCOPE_CHALLENGE=auto; other clients get 403, TestScopeChallengeForms).
	weak, err := signIn(t, devfleet.SignInOptions{ClientID: "local-test", Resource: "mcp", Scope: "openid"})
	if err != nil {
		t.Fatal(err)
	}
	w := openMCP(t, weak.AccessToken)
	resp, body = call(t, "POST", fleet.Origin+"/mcp", weak.AccessToken,
		strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`),
		append(w.headers(), "User-Agent", "openai-mcp/1.0.0")...)
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusOK || !strings.Contains(challenge, `error="insufficient_scope"`) || !strings.Contains(challenge, `scope="openid profile email"`) ||
		!strings.Contains(string(body), `"isError":true`) || !strings.Contains(string(body), `mcp/www_authenticate`) {
		t.Errorf("identity.profile without its scopes: %d %q %s", resp.StatusCode, challenge, body)
	}
	// A standard client (no ChatGPT mark) in the 2025-11-25 session gets
	// the 403, its challenge and a JSON-RPC error with the call's id whose
	// data is the OAuth error, through the ingress (MCP 2025-11-25 Scope
	// Challenge Handling).
	resp, body = call(t, "POST", fleet.Origin+"/mcp", weak.AccessToken,
		strings.NewReader(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"identity.profile","arguments":{}}}`), w.headers()...)
	var refusal struct {
		ID    json.RawMessage `json:"id"`
		Error struct {
			Code int `json:"code"`
			Data struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			} `json:"data"`
		} `json:"error"`
	}
	challenge = resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(challenge, `Bearer error="insufficient_scope"`) ||
		!strings.Contains(challenge, `scope="openid profile email"`) || !strings.Contains(challenge, `resource_metadata="`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &refusal) != nil ||
		string(refusal.ID) != "10" || refusal.Error.Code != -32003 ||
		refusal.Error.Data.Error != "insufficient_scope" || !strings.Contains(refusal.Error.Data.Description, `lacks "profile email"`) {
		t.Errorf("identity.profile without its scopes, a standard client: %d %q %q %s, want 403, the challenge and an insufficient_scope body",
			resp.StatusCode, challenge, resp.Header.Get("Content-Type"), body)
	}
}
