package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// TestIntrospectionTokenKinds: RFC 7662 §2.2 over real HTTP and Redis —
// an active access token's answer says token_type "Bearer" (RFC 6749
// §7.1, the type the token response named) and token_use "access_token";
// a refresh token is no bearer credential (RFC 6750 §2, RFC 6749 §1.5):
// it is active only to the client it was issued to, whose answer says
// token_use "refresh_token" and carries no token_type (RFC 7662 §2.2's
// token_type is an access token type), and a resource_server client that
// is not its owner gets {"active":false} and nothing else, as any other
// client does, whatever token_type_hint says. Before, fosite's writer
// dropped token_type and a resource server got active:true for a refresh
// token, an answer indistinguishable from an access token's but for exp.
func TestIntrospectionTokenKinds(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	owner, rs, other := f.Clients["local-test"], cs["test-rs"], f.Clients["gpt-actions"]
	tr := f.fullFlow(owner, newAuthRequest(owner))
	if tr.TokenType != "bearer" && tr.TokenType != "Bearer" {
		t.Fatalf("token response token_type %q", tr.TokenType)
	}
	ask := func(c devClient, token, hint string) map[string]any {
		t.Helper()
		form := url.Values{"token": {token}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		resp, b := f.post("/oauth/introspect", c, form)
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("introspection by %s: %d %s", c.ClientID, resp.StatusCode, b)
		}
		return m
	}
	for _, hint := range []string{"", "access_token", "refresh_token"} {
		for _, c := range []devClient{owner, rs} {
			m := ask(c, tr.AccessToken, hint)
			if m["active"] != true || m["token_type"] != "Bearer" || m["token_use"] != "access_token" || m["client_id"] != owner.ClientID || m["exp"] == nil {
				t.Errorf("access token introspected by %s (hint %q): %v, want active, token_type Bearer, token_use access_token, exp", c.ClientID, hint, m)
			}
		}
		m := ask(owner, tr.RefreshToken, hint)
		if _, typed := m["token_type"]; m["active"] != true || typed || m["token_use"] != "refresh_token" || m["client_id"] != owner.ClientID {
			t.Errorf("refresh token introspected by its owner (hint %q): %v, want active, token_use refresh_token, no token_type", hint, m)
		}
		for _, c := range []devClient{rs, other} {
			if m := ask(c, tr.RefreshToken, hint); len(m) != 1 || m["active"] != false {
				t.Errorf("refresh token introspected by %s (hint %q): %v, want only active=false", c.ClientID, hint, m)
			}
		}
		if m := ask(other, tr.AccessToken, hint); len(m) != 1 || m["active"] != false {
			t.Errorf("access token introspected by %s (hint %q): %v, want only active=false", other.ClientID, hint, m)
		}
	}
}
