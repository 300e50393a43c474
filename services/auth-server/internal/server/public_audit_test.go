package server_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestPublicClientIsNotAuthenticatedInAudit: a public client (registered
// with token_endpoint_auth_method "none", as the MCP SDK registers) passes
// the token and revocation endpoints' client authentication by naming its
// id, which proves nothing (RFC 6749 §2.1, §10.1). Its grant, refresh and
// revocation records name it with client_authenticated:false; a
// confidential client's records (local-test, client_secret_basic) keep
// true.
func TestPublicClientIsNotAuthenticatedInAudit(t *testing.T) {
	f := startFleetWith(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, "")
	redirect := "http://127.0.0.1:8981/public-audit-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"public audit","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"scope":"openid profile email"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	id := reg["client_id"].(string)
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "none"}
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"
	b, p := consentPage(t, f, a)
	tr := f.exchange(c, a, approve(t, b, p))
	if tr.Status != http.StatusOK || tr.RefreshToken == "" {
		t.Fatalf("code grant: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	refreshed := f.clientCall(clientReq{ForwardFor: "198.51.100.81",
		Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {id}}})
	if refreshed.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s %s", refreshed.Status, refreshed.Error, refreshed.Description)
	}
	if r := f.clientCall(clientReq{Path: "/oauth/revoke", ForwardFor: "198.51.100.82",
		Form: url.Values{"token": {refreshed.RefreshToken}, "client_id": {id}}}); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s %s", r.Status, r.Error, r.Description)
	}
	if r := f.clientCall(clientReq{Path: "/oauth/revoke", ForwardFor: "198.51.100.83",
		Form: url.Values{"token": {"unknown-token"}, "client_id": {id}}}); r.Status != http.StatusOK {
		t.Fatalf("revoke of an unknown token: %d %s %s", r.Status, r.Error, r.Description)
	}
	conf := f.Clients["local-test"]
	f.fullFlow(conf, newAuthRequest(conf))

	events := auditEvents(t, f)
	for _, tc := range []struct {
		name string
		want map[string]any
		auth bool
	}{
		{"code grant", map[string]any{"event": "grant", "grant_type": "authorization_code", "result": "ok", "client_id": id}, false},
		{"refresh", map[string]any{"event": "grant", "grant_type": "refresh_token", "result": "ok", "client_id": id, "client_address": "198.51.100.81"}, false},
		{"revocation of its grant", map[string]any{"event": "revocation", "result": "ok", "client_id": id, "client_address": "198.51.100.82"}, false},
		{"revocation without an active grant", map[string]any{"event": "revocation", "result": "ok", "client_id": id, "client_address": "198.51.100.83"}, false},
		{"confidential client's code grant", map[string]any{"event": "grant", "grant_type": "authorization_code", "result": "ok", "client_id": "local-test"}, true},
	} {
		e := findEvent(events, tc.want)
		if e == nil {
			t.Errorf("%s: no audit record %v", tc.name, tc.want)
			continue
		}
		if e["client_authenticated"] != tc.auth {
			t.Errorf("%s: client_authenticated %v, want %v: %s", tc.name, e["client_authenticated"], tc.auth, e["_line"])
		}
	}
}
