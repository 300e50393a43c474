package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// secretReq is a clientReq authenticating as id with secret sent by method
// (client_secret_basic: the Authorization header, both form-urlencoded
// first, RFC 6749 §2.3.1; client_secret_post: the body) from addr.
func secretReq(path, id, secret, method, addr string, form url.Values) clientReq {
	body := url.Values{}
	for k, v := range form {
		body[k] = v
	}
	c := clientReq{Path: path, Form: body, ForwardFor: addr}
	if method == "client_secret_basic" {
		c.BasicUser, c.BasicPass = url.QueryEscape(id), url.QueryEscape(secret)
	} else {
		body.Set("client_id", id)
		body.Set("client_secret", secret)
	}
	return c
}

// TestSecretClientsUseEitherSecretMethod: a client issued a secret —
// static or dynamically registered, registered with client_secret_basic or
// with client_secret_post — authenticates with either secret method at the
// token, revocation and introspection endpoints (RFC 6749 §2.3.1, OAuth
// 2.1 §2.4.1: the server MUST support HTTP Basic for clients issued a
// password; the MCP TypeScript SDK sends Basic, openid-client v6 the
// body). A wrong secret is 401 invalid_client by either method and spends
// the one failure back-off of (client, address); both methods at once stay
// 400 invalid_request (RFC 6749 §2.3); public and private_key_jwt clients
// accept no secret by either method.
func TestSecretClientsUseEitherSecretMethod(t *testing.T) {
	pkj, _ := keyJWTClient(t, "pkj-strict", "http://127.0.0.1:8979/pkj-strict-callback")
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.0/8", "CLIENT_AUTH_FAILURE_LIMIT": "3"}, pkj)

	type secretClient struct{ name, id, secret, registered string }
	all := []secretClient{
		{"static basic", "local-test", f.Clients["local-test"].ClientSecret, "client_secret_basic"},
		{"static post", "gpt-apps-mcp", f.Clients["gpt-apps-mcp"].ClientSecret, "client_secret_post"},
	}
	for _, m := range []string{"client_secret_basic", "client_secret_post"} {
		st, reg := register(t, f, fmt.Sprintf(`{"redirect_uris":["https://dcr.example/cb"],"client_name":"DCR %s","token_endpoint_auth_method":%q}`, m, m))
		id, _ := reg["client_id"].(string)
		secret, _ := reg["client_secret"].(string)
		if st != http.StatusCreated || id == "" || secret == "" || reg["token_endpoint_auth_method"] != m {
			t.Fatalf("register with %s: %d %v", m, st, reg)
		}
		all = append(all, secretClient{"dynamic " + strings.TrimPrefix(m, "client_secret_"), id, secret, m})
	}

	addr := 0
	next := func() string { addr++; return fmt.Sprintf("203.0.113.%d", addr) }
	for _, c := range all {
		for _, m := range []string{"client_secret_basic", "client_secret_post"} {
			what := fmt.Sprintf("%s client (%s) sending %s", c.name, c.registered, m)
			if r := f.clientCall(secretReq("/oauth/token", c.id, c.secret, m, next(), badRefresh())); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("%s: token: %d %s %s, want 400 invalid_grant (the client authenticated)", what, r.Status, r.Error, r.Description)
			}
			if r := f.clientCall(secretReq("/oauth/revoke", c.id, c.secret, m, next(), url.Values{"token": {"unknown"}})); r.Status != http.StatusOK {
				t.Errorf("%s: revoke: %d %s %s, want 200", what, r.Status, r.Error, r.Description)
			}
			if r := f.clientCall(secretReq("/oauth/introspect", c.id, c.secret, m, next(), url.Values{"token": {"unknown"}})); r.Status != http.StatusOK {
				t.Errorf("%s: introspect: %d %s %s, want 200", what, r.Status, r.Error, r.Description)
			}
			for _, path := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
				form := badRefresh()
				if path != "/oauth/token" {
					form = url.Values{"token": {"unknown"}}
				}
				if r := f.clientCall(secretReq(path, c.id, "wrong-"+c.secret, m, next(), form)); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
					t.Errorf("%s: wrong secret at %s: %d %s, want 401 invalid_client", what, path, r.Status, r.Error)
				}
			}
		}
	}

	t.Run("a code is exchanged and its token introspected by the other method", func(t *testing.T) {
		local := f.Clients["local-test"]
		local.AuthMethod = "client_secret_post" // registered client_secret_basic
		tr := f.fullFlow(local, newAuthRequest(local))
		r := f.clientCall(secretReq("/oauth/introspect", local.ClientID, local.ClientSecret, "client_secret_post", next(), url.Values{"token": {tr.AccessToken}}))
		if r.Status != http.StatusOK {
			t.Errorf("introspect: %d %s", r.Status, r.Error)
		}
		if rt := f.refresh(local, tr.RefreshToken); rt.Status != http.StatusOK || rt.AccessToken == "" {
			t.Errorf("refresh by client_secret_post: %d %s %s", rt.Status, rt.Error, rt.Description)
		}
	})

	t.Run("wrong secrets by both methods spend one back-off", func(t *testing.T) {
		apps := f.Clients["gpt-apps-mcp"]
		const from = "198.51.100.77"
		for i, m := range []string{"client_secret_basic", "client_secret_post", "client_secret_basic"} {
			if r := f.clientCall(secretReq("/oauth/token", apps.ClientID, "wrong", m, from, badRefresh())); r.Status != http.StatusUnauthorized {
				t.Fatalf("wrong secret %d by %s: %d %s, want 401", i+1, m, r.Status, r.Error)
			}
		}
		for _, m := range []string{"client_secret_post", "client_secret_basic"} {
			if r := f.clientCall(secretReq("/oauth/token", apps.ClientID, "wrong", m, from, badRefresh())); r.Status != http.StatusTooManyRequests {
				t.Errorf("4th wrong secret by %s: %d %s, want 429 (back-off shared by both methods)", m, r.Status, r.Error)
			}
		}
	})

	t.Run("both methods at once stay refused", func(t *testing.T) {
		apps := f.Clients["gpt-apps-mcp"]
		c := secretReq("/oauth/token", apps.ClientID, apps.ClientSecret, "client_secret_post", next(), badRefresh())
		c.BasicUser, c.BasicPass = apps.ClientID, url.QueryEscape(apps.ClientSecret)
		if r := f.clientCall(c); r.Status != http.StatusBadRequest || r.Error != "invalid_request" || !strings.Contains(r.Description, "more than one client authentication method") {
			t.Errorf("Basic and a body secret: %d %s %s, want 400 invalid_request", r.Status, r.Error, r.Description)
		}
	})

	t.Run("public and private_key_jwt clients accept no secret", func(t *testing.T) {
		for _, id := range []string{"test-public", "pkj-strict"} {
			for _, m := range []string{"client_secret_basic", "client_secret_post"} {
				for _, path := range []string{"/oauth/token", "/oauth/revoke"} {
					form := badRefresh()
					if path != "/oauth/token" {
						form = url.Values{"token": {"unknown"}}
					}
					if r := f.clientCall(secretReq(path, id, "some-secret", m, next(), form)); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
						t.Errorf("%s sending %s at %s: %d %s, want 401 invalid_client", id, m, path, r.Status, r.Error)
					}
				}
			}
		}
	})
}
