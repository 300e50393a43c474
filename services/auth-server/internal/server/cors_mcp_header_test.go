package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPreflightGrantsMCPProtocolVersion: the official TypeScript SDK (and
// so the MCP Inspector in a browser) fetches the authorization server's
// metadata with an MCP-Protocol-Version header, which the browser
// preflights (it is not a CORS-safelisted header). The auth-server's
// answer to an allowed origin named only Authorization and Content-Type,
// so the preflight failed and the SDK fetched again without the header.
// Every JSON endpoint's preflight from an allowed origin now grants it;
// another origin still gets no CORS header.
func TestPreflightGrantsMCPProtocolVersion(t *testing.T) {
	f := startFleet(t, map[string]string{"ALLOWED_ORIGINS": "https://inspector.example"})
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/oauth/jwks", "/oauth/token", "/oauth/register"} {
		for origin, allowed := range map[string]bool{"https://inspector.example": true, "https://evil.example": false} {
			req, _ := http.NewRequest(http.MethodOptions, f.Base+path, nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "accept,mcp-protocol-version")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			granted := map[string]bool{}
			for _, h := range strings.Split(resp.Header.Get("Access-Control-Allow-Headers"), ",") {
				granted[strings.ToLower(strings.TrimSpace(h))] = true
			}
			switch {
			case allowed && (resp.Header.Get("Access-Control-Allow-Origin") != origin || !granted["mcp-protocol-version"]):
				t.Errorf("%s preflight from %s: %d, Allow-Origin %q, Allow-Headers %q; want the origin and MCP-Protocol-Version",
					path, origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Headers"))
			case !allowed && resp.Header.Get("Access-Control-Allow-Origin") != "":
				t.Errorf("%s preflight from %s: Allow-Origin %q, want none", path, origin, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	}
}
