package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate/tollgate/services/auth-server/internal/audit"
	"github.com/tollgate/tollgate/services/dev-idp/idptest"
	"github.com/tollgate/tollgate/services/platform/logging"
)

// standardsClients are extra registry entries: a confidential client that
// does not require PKCE, with loopback IP and localhost redirect URIs, and
// a resource server that may introspect every access token.
func standardsClients(t *testing.T) (string, map[string]devClient) {
	t.Helper()
	hash := func(s string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	yaml := `- client_id: test-nopkce
  client_name: Confidential client without PKCE
  client_secret_hash: "` + hash("nopkce-secret") + `"
  redirect_uris: ["http://127.0.0.1:8981/cb", "http://localhost:8981/cb"]
  token_endpoint_auth_method: client_secret_basic
  resources: ["BASE/mcp"]
  require_pkce: false
  skip_consent: true
- client_id: test-rs
  client_name: Resource server
  client_secret_hash: "` + hash("rs-secret") + `"
  redirect_uris: ["https://rs.example/cb"]
  token_endpoint_auth_method: client_secret_basic
  resources: ["BASE/mcp"]
  resource_server: true
`
	return yaml, map[string]devClient{
		"test-nopkce": {ClientID: "test-nopkce", ClientSecret: "nopkce-secret", RedirectURIs: []string{"http://127.0.0.1:8981/cb"}, AuthMethod: "client_secret_basic"},
		"test-rs":     {ClientID: "test-rs", ClientSecret: "rs-secret", RedirectURIs: []string{"https://rs.example/cb"}, AuthMethod: "client_secret_basic"},
	}
}

// TestStateOptionalWithPKCE: OAuth 2.1 §4.1.1 — state is optional; with
// PKCE a request without state gets a code and no state back; a state of
// any length is echoed; without PKCE state is required (invalid_request,
// never the non-standard invalid_state).
func TestStateOptionalWithPKCE(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	pub := f.Clients["test-public"]

	a := newAuthRequest(pub)
	a.State = ""
	p := f.loginApproving(newBrowser(t, a.RedirectURI), a)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("no state with PKCE: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	if p.Location.Query().Has("state") {
		t.Errorf("redirect %s carries a state the client did not send", p.Location)
	}
	if tr := f.exchange(pub, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s %s", tr.Status, tr.Error, tr.Description)
	}

	a = newAuthRequest(pub)
	a.State = "x" // no length rule in RFC 6749
	if code := f.authorize(a); code == "" {
		t.Fatal("short state: no code")
	}

	np := cs["test-nopkce"]
	a = newAuthRequest(np)
	a.Verifier, a.State = "", ""
	p = newBrowser(t, a.RedirectURI).get(a.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_request" || p.Location.Query().Has("state") || p.Location.Query().Get("iss") != f.Base {
		t.Fatalf("no state and no PKCE: %d %v, want a redirect with error=invalid_request", p.Status, p.Location)
	}
	a = newAuthRequest(np)
	a.Verifier = ""
	if code := f.authorize(a); code == "" {
		t.Fatal("state without PKCE: no code")
	}
	if strings.Contains(f.AS.Logs.String(), "invalid_state") {
		t.Error("invalid_state was answered")
	}
}

// TestLoopbackRedirectAnyPort: RFC 8252 §7.3 for loopback IP literals;
// exact matching for everything else (RFC 6749 §3.1.2.3).
func TestLoopbackRedirectAnyPort(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	pub := f.Clients["test-public"] // registered http://127.0.0.1:8976/public-callback
	a := newAuthRequest(pub)
	a.RedirectURI = "http://127.0.0.1:51234/public-callback"
	code := f.authorize(a)
	if tr := f.exchange(pub, a, code); tr.Status != http.StatusOK {
		t.Fatalf("exchange with the loopback redirect: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	// The token request must name the same redirect URI, port included.
	a = newAuthRequest(pub)
	a.RedirectURI = "http://127.0.0.1:51235/public-callback"
	code = f.authorize(a)
	a.RedirectURI = "http://127.0.0.1:8976/public-callback"
	if tr := f.exchange(pub, a, code); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("exchange with another port: %d %s, want 400 invalid_grant", tr.Status, tr.Error)
	}

	actions := f.Clients["gpt-actions"] // https://chatgpt.com/aip/g-dev/oauth/callback
	for name, tc := range map[string]struct {
		c   devClient
		uri string
	}{
		"explicit :443":     {actions, "https://chatgpt.com:443/aip/g-dev/oauth/callback"},
		"host case":         {actions, "https://ChatGPT.com/aip/g-dev/oauth/callback"},
		"path case":         {actions, "https://chatgpt.com/aip/g-dev/oauth/Callback"},
		"loopback path":     {pub, "http://127.0.0.1:51234/public-callback/x"},
		"loopback https":    {pub, "https://127.0.0.1:51234/public-callback"},
		"other loopback IP": {pub, "http://[::1]:51234/public-callback"},
		"localhost port":    {cs["test-nopkce"], "http://localhost:8982/cb"},
		// Only the port may change on a loopback IP literal.
		"loopback user info":              {pub, "http://u:p@127.0.0.1:51234/public-callback"},
		"loopback fragment":               {pub, "http://127.0.0.1:51234/public-callback#x"},
		"loopback query":                  {pub, "http://127.0.0.1:51234/public-callback?a=b"},
		"loopback encoded path":           {pub, "http://127.0.0.1:51234/public-%63allback"},
		"another loopback IPv4":           {pub, "http://127.0.0.2:8976/public-callback"},
		"loopback port 0":                 {pub, "http://127.0.0.1:0/public-callback"},
		"loopback port 99999":             {pub, "http://127.0.0.1:99999/public-callback"},
		"loopback port +80":               {pub, "http://127.0.0.1:+80/public-callback"},
		"IPv4-mapped IPv6":                {pub, "http://[::ffff:127.0.0.1]:51234/public-callback"},
		"loopback scheme case":            {pub, "HTTP://127.0.0.1:51234/public-callback"},
		"loopback scheme case, same port": {pub, "Http://127.0.0.1:8976/public-callback"},
	} {
		t.Run(name, func(t *testing.T) {
			a := newAuthRequest(tc.c)
			a.RedirectURI = tc.uri
			p := newBrowser(t, "https://", "http://127.0.0.1:5", "http://localhost", "http://[::1]").get(a.URL(f.Base))
			if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_request") {
				t.Errorf("%s: %d %v, want 400 invalid_request without a redirect", tc.uri, p.Status, p.Location)
			}
		})
	}
}

// TestEmptyParametersAndResourceCase: RFC 6749 §3.1 — empty parameters
// are omitted; RFC 3986 §6.2.2.1 — resource scheme and host compare
// case-insensitively, the token's aud is the configured form.
func TestEmptyParametersAndResourceCase(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.Scope = ""
	a.Extra = url.Values{"scope": {""}, "resource": {""}, "prompt": {""}}
	code := f.authorize(a)
	tr := f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "resource": {""}, "scope": {""}})
	if tr.Status != http.StatusOK {
		t.Fatalf("exchange with empty resource: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if tr.Scope != "openid profile email" {
		t.Errorf("scope %q, want the default scopes", tr.Scope)
	}
	if _, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Errorf("default resource: %v", err)
	}

	a = newAuthRequest(c)
	a.Resource = "HTTP://" + strings.TrimPrefix(f.Base, "http://") + "/actions"
	code = f.authorize(a)
	tr = f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "resource": {a.Resource}})
	if tr.Status != http.StatusOK {
		t.Fatalf("exchange with an upper-case scheme: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	claims, err := f.Verifier(f.Base+"/actions").Verify(ctxT(t), tr.AccessToken)
	if err != nil || len(claims.Audience) != 1 || claims.Audience[0] != f.Base+"/actions" {
		t.Fatalf("aud %v (%v), want the canonical %s", claims, err, f.Base+"/actions")
	}
	// The path stays case-sensitive.
	a = newAuthRequest(c)
	a.Resource = f.Base + "/MCP"
	p := newBrowser(t, a.RedirectURI).get(a.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_target" {
		t.Errorf("resource with another path case: %v, want invalid_target", p.Location)
	}
	// At the token endpoint a different resource is still invalid_target.
	a = newAuthRequest(c)
	code = f.authorize(a)
	tr = f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "resource": {f.Base + "/actions"}})
	if tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" {
		t.Errorf("token with another resource: %d %s, want invalid_target", tr.Status, tr.Error)
	}
}

func introspect(t *testing.T, f *fleet, c devClient, token string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, body := f.post("/oauth/introspect", c, url.Values{"token": {token}})
	m := map[string]any{}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("introspection answer %d is not JSON: %s", resp.StatusCode, body)
	}
	return resp.StatusCode, resp.Header, m
}

// TestIntrospectionAccess: RFC 7662 — own tokens and resource servers
// only; every advertised client authentication method works; errors
// match the token endpoint.
func TestIntrospectionAccess(t *testing.T) {
	extra, cs := standardsClients(t)
	f := startFleetWith(t, nil, extra)
	local, actions, rs, pub := f.Clients["local-test"], f.Clients["gpt-actions"], cs["test-rs"], f.Clients["test-public"]
	tr := f.fullFlow(local, newAuthRequest(local))

	st, _, m := introspect(t, f, local, tr.AccessToken)
	if st != 200 || m["active"] != true || m["client_id"] != "local-test" || m["sub"] != idptest.Subject {
		t.Errorf("own token: %d %v", st, m)
	}
	st, _, m = introspect(t, f, rs, tr.AccessToken)
	if st != 200 || m["active"] != true || m["client_id"] != "local-test" {
		t.Errorf("resource server: %d %v", st, m)
	}
	// Another client's refresh token is no bearer credential: inactive to
	// a resource server (TestIntrospectionTokenKinds).
	st, _, m = introspect(t, f, rs, tr.RefreshToken)
	if st != 200 || len(m) != 1 || m["active"] != false {
		t.Errorf("resource server, another client's refresh token: %d %v, want only active=false", st, m)
	}
	// Another client learns nothing (client_secret_post works, too).
	st, _, m = introspect(t, f, actions, tr.AccessToken)
	if st != 200 || len(m) != 1 || m["active"] != false {
		t.Errorf("another client's token: %d %v, want only active=false", st, m)
	}
	atr := f.fullFlow(actions, newAuthRequest(actions))
	st, _, m = introspect(t, f, actions, atr.AccessToken)
	if st != 200 || m["active"] != true || m["client_id"] != "gpt-actions" {
		t.Errorf("client_secret_post, own token: %d %v", st, m)
	}
	st, _, m = introspect(t, f, local, "not-a-token")
	if st != 200 || m["active"] != false {
		t.Errorf("unknown token: %d %v", st, m)
	}

	// Refusals.
	wrongBasic := local
	wrongBasic.ClientSecret = "wrong"
	st, h, m := introspect(t, f, wrongBasic, tr.AccessToken)
	if st != 401 || m["error"] != "invalid_client" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("wrong Basic secret: %d %v %q, want 401 invalid_client with WWW-Authenticate: Basic", st, m, h.Get("WWW-Authenticate"))
	}
	wrongPost := actions
	wrongPost.ClientSecret = "wrong"
	st, h, m = introspect(t, f, wrongPost, atr.AccessToken)
	if st != 401 || m["error"] != "invalid_client" || h.Get("WWW-Authenticate") != "" {
		t.Errorf("wrong post secret: %d %v %q, want 401 invalid_client", st, m, h.Get("WWW-Authenticate"))
	}
	st, _, m = introspect(t, f, pub, tr.AccessToken)
	if st != 401 || m["error"] != "invalid_client" {
		t.Errorf("public client: %d %v, want 401 invalid_client", st, m)
	}
	resp, body := f.post("/oauth/introspect", local, url.Values{})
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"invalid_request"`) {
		t.Errorf("no token: %d %s, want 400 invalid_request", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/introspect", strings.NewReader("token="+url.QueryEscape(atr.AccessToken)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 401 {
		t.Errorf("bearer token as introspection credentials: %d, want 401", r.StatusCode)
	}

	// RFC 6750 §3.1: no bearer token (here Basic) is a challenge without
	// an error code.
	ureq, _ := http.NewRequest(http.MethodGet, f.Base+"/oauth/userinfo", nil)
	ureq.SetBasicAuth("local-test", "x")
	ur, err := http.DefaultClient.Do(ureq)
	if err != nil {
		t.Fatal(err)
	}
	ur.Body.Close()
	if ch := ur.Header.Get("WWW-Authenticate"); ur.StatusCode != 401 || !strings.HasPrefix(ch, "Bearer") || strings.Contains(ch, "error=") {
		t.Errorf("userinfo with Basic credentials: %d %q, want 401 and a Bearer challenge without error", ur.StatusCode, ch)
	}

	var md map[string]any
	dr, err := http.Get(f.Base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(dr.Body).Decode(&md)
	dr.Body.Close()
	if got, _ := json.Marshal(md["introspection_endpoint_auth_methods_supported"]); string(got) != `["client_secret_basic","client_secret_post","private_key_jwt"]` {
		t.Errorf("advertised introspection auth methods %s", got)
	}
}

// auditEvents are the audit lines of the service log.
func auditEvents(t *testing.T, f *fleet) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"log.type":"audit"`) {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v\n%s", err, line)
		}
		m["_line"] = line
		out = append(out, m)
	}
	return out
}

func findEvent(events []map[string]any, want map[string]any) map[string]any {
	for _, e := range events {
		ok := true
		for k, v := range want {
			if e[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return e
		}
	}
	return nil
}

// TestAuditLog: one JSON event per step, with hashed subject and client
// address, never a secret, code or token.
func TestAuditLog(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "0s"})
	redirect := "http://127.0.0.1:8983/audit-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Audit"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_basic"}
	a := newAuthRequest(c)
	a.Scope = "openid offline_access"
	p := consentFlow(t, f, a, "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("approve: %d %v", p.Status, p.Location)
	}
	code := p.Location.Query().Get("code")
	tr := f.exchange(c, a, code)
	if tr.Status != 200 || tr.RefreshToken == "" {
		t.Fatalf("exchange: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	tr2 := f.refresh(c, tr.RefreshToken)
	if tr2.Status != 200 {
		t.Fatalf("refresh: %d %s", tr2.Status, tr2.Error)
	}
	if reuse := f.refresh(c, tr.RefreshToken); reuse.Status != 400 {
		t.Fatalf("refresh reuse: %d %s", reuse.Status, reuse.Error)
	}
	wrong := c
	wrong.ClientSecret = "wrong-secret-value"
	if r := f.refresh(wrong, tr2.RefreshToken); r.Status != 401 {
		t.Fatalf("wrong secret: %d", r.Status)
	}
	resp, _ := f.post("/oauth/revoke", c, url.Values{"token": {tr2.RefreshToken}}) // already revoked by the reuse
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	a2 := newAuthRequest(c) // consent is remembered: straight to a code
	a2.Scope = a.Scope
	tr3 := f.exchange(c, a2, f.authorize(a2))
	if resp, _ := f.post("/oauth/revoke", c, url.Values{"token": {tr3.AccessToken}}); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	bad := newAuthRequest(c)
	bad.Resource = "https://elsewhere.example/api"
	newBrowser(t, redirect).get(bad.URL(f.Base))

	events := auditEvents(t, f)
	sub := audit.HashSubject(idptest.Subject)
	id := c.ClientID
	for _, want := range []map[string]any{
		{"event": "registration", "result": "ok", "client_id": id, "client_address": "127.0.0.1"},
		{"event": "authorization_request", "result": "ok", "client_id": id, "client_authenticated": false, "client_address": "127.0.0.1"},
		{"event": "authorization_request", "result": "invalid_target", "client_id": id},
		// Which upstream IdP vouched for the user: the verified iss of its ID token.
		{"event": "consent", "result": "ok", "client_id": id, "subject_hash": sub, "upstream_issuer": f.IdP.Issuer},
		{"event": "code_issued", "result": "ok", "client_id": id, "subject_hash": sub, "upstream_issuer": f.IdP.Issuer},
		{"event": "grant", "result": "ok", "grant_type": "authorization_code", "client_id": id, "client_authenticated": true, "subject_hash": sub},
		{"event": "grant", "result": "ok", "grant_type": "refresh_token", "client_id": id, "subject_hash": sub},
		{"event": "refresh_reuse_detected", "result": "invalid_grant", "client_id": id},
		{"event": "client_authentication_failure", "result": "invalid_client", "client_id": id, "client_authenticated": false, "endpoint": "token"},
		{"event": "revocation", "result": "ok", "client_id": id, "endpoint": "token", "reason": "rotated refresh token reused (RFC 9700 §4.14.2)"},
		{"event": "revocation", "result": "ok", "client_id": id, "endpoint": "revoke", "reason": "no active grant for the token (RFC 7009 §2.2: answered 200)"},
		// The revoked grant's user (brk45a NIT: follow grant_id back to code_issued no more).
		{"event": "revocation", "result": "ok", "client_id": id, "endpoint": "revoke", "reason": "revocation request (RFC 7009)", "subject_hash": sub},
	} {
		e := findEvent(events, want)
		if e == nil {
			t.Errorf("no audit event %v", want)
			continue
		}
		if e["time"] == nil || e["service"] != "auth-server" {
			t.Errorf("event %v lacks time or service", e["_line"])
		}
	}
	// Where the registered client's codes go (brk45a NIT: an unused
	// registration's record in Redis expires, its audit record stays).
	if e := findEvent(events, map[string]any{"event": "registration", "result": "ok", "client_id": id}); e != nil {
		if got, _ := json.Marshal(e["redirect_uris"]); string(got) != `["`+redirect+`"]` {
			t.Errorf("registration record's redirect_uris %s, want [%q]\n%s", got, redirect, e["_line"])
		}
	}
	issued := findEvent(events, map[string]any{"event": "code_issued"})
	granted := findEvent(events, map[string]any{"event": "grant", "grant_type": "authorization_code"})
	refreshed := findEvent(events, map[string]any{"event": "grant", "grant_type": "refresh_token"})
	if issued == nil || granted == nil || refreshed == nil || issued["grant_id"] == nil || issued["grant_id"] != granted["grant_id"] || granted["grant_id"] != refreshed["grant_id"] {
		t.Errorf("grant ids differ along one grant: %v / %v / %v", issued, granted, refreshed)
	}
	reused := findEvent(events, map[string]any{"event": "refresh_reuse_detected"})
	revokedByReuse := findEvent(events, map[string]any{"event": "revocation", "endpoint": "token"})
	if reused == nil || revokedByReuse == nil || reused["grant_id"] != issued["grant_id"] || revokedByReuse["grant_id"] != issued["grant_id"] {
		t.Errorf("refresh reuse and its revocation must name the grant %v: %v / %v", issued["grant_id"], reused, revokedByReuse)
	}
	var byReuse, byRequest int
	for _, e := range events {
		if e["event"] == "revocation" && e["endpoint"] == "token" {
			byReuse++
		}
		if e["event"] == "revocation" && e["reason"] == "revocation request (RFC 7009)" {
			byRequest++
			if e["grant_id"] == nil || e["grant_id"] == issued["grant_id"] {
				t.Errorf("the revocation request's event names grant %v, want the second grant's", e["grant_id"])
			}
		}
	}
	if byReuse != 1 || byRequest != 1 {
		t.Errorf("%d revocation events for the reuse and %d for the request, want one each", byReuse, byRequest)
	}
	for _, e := range events {
		line := e["_line"].(string)
		for _, secret := range []string{c.ClientSecret, wrong.ClientSecret, code, tr.AccessToken, tr.RefreshToken, tr2.AccessToken, tr2.RefreshToken, tr.IDToken, tr3.AccessToken, tr3.RefreshToken, a.Verifier, a.State, idptest.Subject, idptest.Password} {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("audit line carries a secret or the raw subject: %s", line)
			}
		}
	}
	// The service log names the claimed client of a failed authentication.
	if !strings.Contains(f.AS.Logs.String(), "client_id="+id+" client_authenticated=false error=invalid_client") {
		t.Error("the refused token request is not logged with the claimed client id")
	}
}

// TestRegistrationLimitedPerAddress: RATE_LIMIT_REGISTER_PER_MINUTE counts
// per client address, whatever client credentials a request claims; the
// refusals of the guard are audited like the handlers' own.
func TestRegistrationLimitedPerAddress(t *testing.T) {
	f := startFleet(t, map[string]string{"RATE_LIMIT_REGISTER_PER_MINUTE": "2"})
	body := `{"redirect_uris":["http://127.0.0.1:8984/cb"],"token_endpoint_auth_method":"none"}`
	var statuses []int
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("claimed-client-"+string(rune('a'+i)), "x") // a claim, not an identity
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != http.StatusCreated || statuses[1] != http.StatusCreated || statuses[2] != http.StatusTooManyRequests {
		t.Errorf("statuses %v, want 201 201 429", statuses)
	}
	pub := f.Clients["test-public"]
	a := newAuthRequest(pub)
	newBrowser(t, a.RedirectURI).get(a.URL(f.Base) + "&scope=openid")

	events := auditEvents(t, f)
	if findEvent(events, map[string]any{"event": "registration", "result": "rate_limited", "client_address": "127.0.0.1"}) == nil {
		t.Error("no registration event for the refused registration")
	}
	if findEvent(events, map[string]any{"event": "authorization_request", "result": "invalid_request", "client_id": "test-public"}) == nil {
		t.Error("no authorization_request event for the request with a repeated parameter")
	}
}

// TestCIMDAllowedHosts: with CIMD_ALLOWED_HOSTS, a Client ID Metadata
// Document on another host is an unknown client (400 invalid_client,
// before any redirect) and is not fetched; a listed host works.
func TestCIMDAllowedHosts(t *testing.T) {
	var fetches atomic.Int32
	redirect := "http://127.0.0.1:8985/cimd-callback"
	var id string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":"` + id + `","client_name":"CIMD","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"none"}`))
	}))
	defer srv.Close()
	id = srv.URL + "/client.json"
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "none"}

	f := startFleet(t, map[string]string{"CIMD_ALLOWED_HOSTS": "clients.example,*.apps.example"})
	p := newBrowser(t, redirect).get(newAuthRequest(c).URL(f.Base))
	if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_client") {
		t.Errorf("client id on an unlisted host: %d %v %s", p.Status, p.Location, p.Body)
	}
	if st, code, desc := authorizeJSON(t, newAuthRequest(c).URL(f.Base), "", ""); st != http.StatusBadRequest || code != "invalid_client" || !strings.Contains(desc, "CIMD_ALLOWED_HOSTS") {
		t.Errorf("client id on an unlisted host, JSON: %d %s %q", st, code, desc)
	}
	if fetches.Load() != 0 {
		t.Errorf("the document of an unlisted host was fetched %d times", fetches.Load())
	}

	f = startFleet(t, map[string]string{"CIMD_ALLOWED_HOSTS": strings.TrimPrefix(srv.URL, "http://")})
	p = consentFlow(t, f, newAuthRequest(c), "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Errorf("client id on a listed host: %d %v", p.Status, p.Location)
	}
}

// TestLogLinesBoundedWhateverTheRequest: a request never decides how large
// a log line gets. A 200 KB client id in HTTP Basic, in the body, and at the
// authorization endpoint used to be written whole to the service log and
// to the audit log (two 200 KB lines per request, ~600 requests/min per
// address). Every value is cut to logging.MaxValueBytes and says its length.
func TestLogLinesBoundedWhateverTheRequest(t *testing.T) {
	f := startFleet(t, nil)
	huge := strings.Repeat("a", 200<<10)
	// 40 KiB in the Basic header (53 KiB base64): more would pass the
	// listener's 64 KiB bound on a request's line and headers, which
	// net/http answers 431 before the endpoint (app.MaxHeaderBytes).
	if r := f.clientCall(clientReq{BasicUser: huge[:40<<10], BasicPass: "x", Form: badRefresh()}); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Fatalf("huge Basic client id: %d %s", r.Status, r.Error)
	}
	form := badRefresh()
	form.Set("client_id", huge[:60<<10])
	form.Set("client_secret", "x")
	if r := f.clientCall(clientReq{Form: form}); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Fatalf("huge body client id: %d %s", r.Status, r.Error)
	}
	resp, err := http.Get(f.Base + "/oauth/authorize?response_type=code&client_id=" + huge[:30<<10])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cut := map[string]bool{}
	for _, n := range []int{40 << 10, 60 << 10, 30 << 10} {
		cut[fmt.Sprintf("…[%d bytes]", n)] = true
	}
	var named int
	for _, e := range auditEvents(t, f) {
		if id, _ := e["client_id"].(string); strings.HasPrefix(id, "aaaa") {
			named++
			if i := strings.LastIndex(id, "…"); i < 0 || !cut[id[i:]] {
				t.Errorf("audit client_id not cut with its length: …%s", id[max(0, len(id)-30):])
			}
		}
	}
	if named < 3 {
		t.Errorf("%d audit events name the huge client ids, want 3", named)
	}
	for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
		if len(line) > 2*logging.MaxValueBytes {
			t.Errorf("log line of %d bytes (limit per value %d): %.200s…", len(line), logging.MaxValueBytes, line)
		}
	}
}
