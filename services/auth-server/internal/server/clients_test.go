package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func register(t *testing.T, f *fleet, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(f.Base+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// approvedTokens signs in through a, approves the consent page
// (consentFlow), and exchanges the code at f for c; the test fails
// (what names the step) unless a code and then tokens come back.
func approvedTokens(t *testing.T, f *fleet, c devClient, a *authRequest, what string) tokenResponse {
	t.Helper()
	p := consentFlow(t, f, a, "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("%s: sign-in and consent: %d %v", what, p.Status, p.Location)
	}
	tr := f.exchange(c, a, p.Location.Query().Get("code"))
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("%s: code exchange: %d %s: %s", what, tr.Status, tr.Error, tr.Description)
	}
	return tr
}

// consentFlow logs in and answers the consent page with decision; it
// returns the final page (redirect to the client).
func consentFlow(t *testing.T, f *fleet, a *authRequest, decision string, withCookie bool) *page {
	t.Helper()
	b := newBrowser(t, a.RedirectURI)
	p := f.login(b, a)
	if p.Location != nil || p.Status != 200 || !strings.Contains(p.Body, "Allow") {
		t.Fatalf("want the consent page, got %d %v\n%s", p.Status, p.Location, p.Body)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("consent page CSP %q lacks frame-ancestors 'none'", csp)
	}
	if !strings.Contains(p.Body, "127.0.0.1") {
		t.Error("consent page does not show the redirect URI's host")
	}
	cookies := (&http.Response{Header: p.Header}).Cookies()
	var csrf *http.Cookie
	for _, c := range cookies {
		if c.Name == "tollgate-consent" {
			csrf = c
		}
	}
	if csrf == nil || csrf.Secure || csrf.Path != "/" || csrf.Domain != "" || !csrf.HttpOnly {
		t.Fatalf("consent cookie %+v: want tollgate-consent (not Secure on this plain-http issuer, Path=/, no Domain, HttpOnly)", csrf)
	}
	b.client.Jar = nil // only the cookie given below reaches the form post
	if !withCookie {
		return b.submit(p, url.Values{"decision": {decision}})
	}
	return b.submit(p, url.Values{"decision": {decision}}, &http.Cookie{Name: csrf.Name, Value: csrf.Value})
}

// TestDynamicRegistration: RFC 7591 registration, consent, and the flow
// with the registered client_secret_post credentials.
func TestDynamicRegistration(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8977/dcr-callback"
	body := `{"redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"client_secret_post","client_name":"ChatGPT","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	st, reg := register(t, f, body)
	if st != http.StatusCreated || reg["token_endpoint_auth_method"] != "client_secret_post" || reg["client_secret"] == nil {
		t.Fatalf("register: %d %v", st, reg)
	}
	// RFC 7591 §3.2.1: the same metadata again is another client; the
	// first keeps its id and secret (no takeover by re-registration).
	st2, reg2 := register(t, f, body)
	if st2 != http.StatusCreated || reg2["client_id"] == reg["client_id"] || reg2["client_secret"] == reg["client_secret"] {
		t.Errorf("identical registration: %d %v, want a new client (first %v)", st2, reg2["client_id"], reg["client_id"])
	}
	if reg["registration_access_token"] != nil || reg["registration_client_uri"] != nil {
		t.Errorf("RFC 7592 management is not offered, got %v", reg)
	}
	for _, tc := range []struct{ name, body, code string }{
		{"http redirect off loopback", `{"redirect_uris":["http://example.com/cb"]}`, "invalid_redirect_uri"},
		{"no redirect", `{"client_name":"x"}`, "invalid_redirect_uri"},
		{"fragment", `{"redirect_uris":["https://a.example/cb#x"]}`, "invalid_redirect_uri"},
		{"auth method", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"grant", `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{"scope", `{"redirect_uris":["https://a.example/cb"],"scope":"openid admin"}`, "invalid_client_metadata"},
		{"not json", `redirect_uris=x`, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := register(t, f, tc.body)
			if st != http.StatusBadRequest || m["error"] != tc.code {
				t.Errorf("%d %v, want 400 %s", st, m, tc.code)
			}
		})
	}
	// The refusals say what is wrong (RFC 7591 §3.2.2 error_description).
	for body, want := range map[string]string{
		// A native app's private-use scheme is an absolute URI, just not accepted.
		`{"redirect_uris":["com.example.app:/oauth2redirect"]}`:                                          `redirect URI 'com.example.app:/oauth2redirect': scheme 'com.example.app' is not accepted: use https, or http on a loopback address with any port (RFC 8252 section 7.3)`,
		`{"redirect_uris":["/cb"]}`:                                                                      `redirect URI '/cb': must be an absolute URL`,
		`{"redirect_uris":"https://a.example/cb"}`:                                                       `redirect_uris must be an array of strings`,
		`{"redirect_uris":["https://a.example/cb"],"client_uri":"javascript:alert(1)"}`:                  `client_uri 'javascript:alert(1)': must be an http or https URL`,
		`{"redirect_uris":["https://a.example/cb"]} {}`:                                                  `the body must be one JSON object`,
		`{"redirect_uris":["https://a.example/cb"],"client_name":["x"]}`:                                 `client_name must be a string`,
		`{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("a", 70<<10) + `"}`: `the body is larger than 65536 bytes`,
	} {
		status := http.StatusBadRequest
		if strings.Contains(want, "larger than") {
			status = http.StatusRequestEntityTooLarge // RFC 9110 §15.5.14 (TestBodyOverTheLimitIs413)
		}
		if st, m := register(t, f, body); st != status || m["error_description"] != want {
			t.Errorf("register %.80s: %d %v, want %d %q", body, st, m, status, want)
		}
	}
	// client_uri is registered metadata: the response returns it (RFC 7591 §3.2.1).
	if st, m := register(t, f, `{"redirect_uris":["https://a.example/cb"],"client_uri":"https://a.example/about"}`); st != http.StatusCreated || m["client_uri"] != "https://a.example/about" {
		t.Errorf("register with client_uri: %d %v", st, m)
	}
	// One record, expiring unless used.
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	recs := rdb.Keys(context.Background(), "*as:dcr:*").Val()
	if len(recs) != 3 {
		t.Errorf("%d registration records (two identical registrations and one with client_uri), want 3", len(recs))
	}
	for _, k := range recs {
		if ttl := rdb.TTL(context.Background(), k).Val(); ttl <= 0 || ttl > 720*time.Hour {
			t.Errorf("registration record TTL %v, want DCR_UNUSED_TTL (720h)", ttl)
		}
	}
	// The first registration still works with its own secret.
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirect}, AuthMethod: "client_secret_post"}
	other := devClient{ClientID: reg2["client_id"].(string), ClientSecret: reg["client_secret"].(string), AuthMethod: "client_secret_post"}
	if tr := f.token(other, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}); tr.Status != http.StatusUnauthorized || tr.Error != "invalid_client" {
		t.Errorf("the first client's secret for the second client: %d %s, want 401 invalid_client", tr.Status, tr.Error)
	}
	a := newAuthRequest(c)
	a.Resource = f.Base + "/mcp"

	// Without the CSRF cookie the decision is refused.
	p := consentFlow(t, f, a, "approve", false)
	if p.Status != http.StatusForbidden {
		t.Fatalf("consent without cookie: %d, want 403", p.Status)
	}
	// Deny goes back as access_denied.
	a = newAuthRequest(c)
	// Both answers to the form's POST are 303 See Other (RFC 9110
	// §15.4.4, RFC 9700 §4.12): the denial was 302 (auth49 #5).
	p = consentFlow(t, f, a, "deny", true)
	if p.Location == nil || p.Location.Query().Get("error") != "access_denied" || p.Location.Query().Get("iss") != f.Base || p.Status != http.StatusSeeOther {
		t.Fatalf("deny: %d %v, want 303 See Other with access_denied and iss", p.Status, p.Location)
	}
	// Approve issues the code.
	a = newAuthRequest(c)
	p = consentFlow(t, f, a, "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" || p.Status != http.StatusSeeOther {
		t.Fatalf("approve: %d %v, want 303 See Other with the code\n%s", p.Status, p.Location, p.Body)
	}
	tr := f.exchange(c, a, p.Location.Query().Get("code"))
	if tr.Status != 200 {
		t.Fatalf("token with the registered credentials: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if _, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatal(err)
	}
	// The approval is remembered: the next login goes straight to the client.
	a = newAuthRequest(c)
	if code := f.authorize(a); code == "" {
		t.Fatal("no code on the second login")
	}
	// Revoking the approval brings the consent page back.
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/consent/revoke", strings.NewReader("client_id="+url.QueryEscape(c.ClientID)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("consent revocation: %d", resp.StatusCode)
	}
	a = newAuthRequest(c)
	if p := consentFlow(t, f, a, "approve", true); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("after revocation: %d %v", p.Status, p.Location)
	}
}

// TestClientMetadataDocument: an https client id (here http on loopback,
// allowed by CIMD_ALLOW_PRIVATE_NETWORKS in tests) is fetched and used;
// broken documents are refused before any redirect.
func TestClientMetadataDocument(t *testing.T) {
	var docs = map[string]string{}
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/client.json" {
			fetches.Add(1)
		}
		if r.URL.Path == "/redirecting.json" {
			http.Redirect(w, r, "/client.json", http.StatusFound)
			return
		}
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	defer srv.Close()
	redirect := "http://127.0.0.1:8978/cimd-callback"
	id := srv.URL + "/client.json"
	docs["/client.json"] = `{"client_id":"` + id + `","client_name":"CIMD test","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"none"}`
	docs["/wrong-id.json"] = `{"client_id":"https://elsewhere.example/c.json","redirect_uris":["` + redirect + `"]}`
	docs["/big.json"] = `{"client_id":"` + srv.URL + `/big.json","redirect_uris":["` + redirect + `"],"client_name":"` + strings.Repeat("x", 20000) + `"}`
	// A repeated member: encoding/json kept the last redirect_uris, so the
	// client was used with the URI another reader would not see.
	docs["/dupe.json"] = `{"client_id":"` + srv.URL + `/dupe.json","redirect_uris":["https://elsewhere.example/cb"],"redirect_uris":["` + redirect + `"]}`
	docs["/secret.json"] = `{"client_id":"` + srv.URL + `/secret.json","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"client_secret_post"}`

	f := startFleet(t, nil)
	c := devClient{ClientID: id, RedirectURIs: []string{redirect}, AuthMethod: "none"}
	a := newAuthRequest(c)
	p := consentFlow(t, f, a, "approve", true)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("approve: %d %v", p.Status, p.Location)
	}
	tr := f.exchange(c, a, p.Location.Query().Get("code"))
	if tr.Status != 200 {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	claims, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), tr.AccessToken)
	if err != nil || claims.ClientID != id {
		t.Fatalf("verify: %v %+v", err, claims)
	}
	// The document is cached in Redis: a second sign-in does not fetch it.
	// (A public client with a loopback redirect gets the consent page
	// each time, RFC 8252 §8.6.)
	before := fetches.Load()
	a = newAuthRequest(c)
	if p := consentFlow(t, f, a, "approve", true); p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("second sign-in: %d %v", p.Status, p.Location)
	}
	if fetches.Load() != before {
		t.Errorf("the metadata document was fetched again (%d → %d)", before, fetches.Load())
	}
	for _, path := range []string{"/wrong-id.json", "/big.json", "/secret.json", "/redirecting.json", "/missing.json", "/dupe.json"} {
		t.Run(path, func(t *testing.T) {
			bad := devClient{ClientID: srv.URL + path, RedirectURIs: []string{redirect}, AuthMethod: "none"}
			p := newBrowser(t, redirect).get(newAuthRequest(bad).URL(f.Base))
			if p.Location != nil || p.Status != 400 || !strings.Contains(p.Body, "invalid_client") {
				t.Errorf("%d %v %s", p.Status, p.Location, p.Body)
			}
			if _, _, desc := authorizeJSON(t, newAuthRequest(bad).URL(f.Base), "", ""); path == "/dupe.json" && !strings.Contains(desc, `member 'redirect_uris' appears more than once`) {
				t.Errorf("the refusal does not name the repeated member: %q", desc)
			}
		})
	}
}

// TestPrivateKeyJWT: client authentication with a signed assertion; the
// assertion's jti is single use and its audience is checked.
func TestPrivateKeyJWT(t *testing.T) {
	redirect := "http://127.0.0.1:8979/pkj-callback"
	registry, assertion := keyJWTClient(t, "pkj", redirect)
	f := startFleetWith(t, nil, registry)
	c := devClient{ClientID: "pkj", RedirectURIs: []string{redirect}, AuthMethod: "private_key_jwt"}
	exchange := func(a *authRequest, code, as string) tokenResponse {
		return f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
			"code_verifier": {a.Verifier}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {as}})
	}
	a := newAuthRequest(c)
	code := f.authorize(a)
	if r := exchange(a, code, assertion("https://wrong.example/token", rand.Text())); r.Status != 401 || r.Error != "invalid_client" {
		t.Errorf("wrong audience: %d %s", r.Status, r.Error)
	}
	jti := rand.Text()
	good := assertion(f.Base+"/oauth/token", jti)
	tr := exchange(a, code, good)
	if tr.Status != 200 {
		t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if _, err := f.Verifier(f.Base+"/actions").Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatal(err)
	}
	// Replaying the assertion is refused.
	r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {good}})
	if r.Status != 401 || r.Error != "invalid_client" {
		t.Errorf("replayed assertion: %d %s", r.Status, r.Error)
	}
	// private_key_jwt, as advertised for introspection, works there too.
	resp, body := f.post("/oauth/introspect", c, url.Values{"token": {tr.AccessToken},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(f.Base+"/oauth/token", rand.Text())}})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"active":true`) || !strings.Contains(string(body), `"client_id":"pkj"`) {
		t.Errorf("introspection with private_key_jwt: %d %s", resp.StatusCode, body)
	}
}

// A self-registered client cannot pass for one the operator registered:
// registration refuses a static client's name (as a user reads it: case,
// spacing, punctuation, fullwidth forms and look-alike letters folded), and the consent page
// marks every dynamically registered client as unverified with its
// redirect host — loudly when its name is a static client's anyway (a
// registration from before the operator named theirs so).
func TestConsentPageMarksSelfRegisteredClients(t *testing.T) {
	f := startFleetWith(t, nil, `- client_id: operator-app
  client_name: Operator App
  redirect_uris: ["http://127.0.0.1:8978/operator-callback"]
  token_endpoint_auth_method: none
  resources: ["BASE/mcp"]
`)
	for _, name := range []string{"Operator App", "operator-app", "OPERATOR  APP!", "Ｏｐｅｒａｔｏｒ Ａｐｐ", "Local test client",
		"\u041eperator \u0410pp" /* Cyrillic О, А */, "0perator App", "Operat\u03bfr A\u0440\u0440", /* Greek ο, Cyrillic р */
		"L\u0585cal test client" /* Armenian օ */, "Ch\u0251tGPT Apps (development)" /* Latin ɑ */} {
		st, m := register(t, f, `{"redirect_uris":["http://127.0.0.1:8977/cb"],"token_endpoint_auth_method":"none","client_name":"`+name+`"}`)
		// The description quotes the name in error_description's
		// characters: each non-ASCII letter is '?' (RFC 7591 §3.2.2,
		// RFC 6749 §5.2; TestErrorDescriptionsStayInRFC6749Set).
		asSent := strings.Map(func(r rune) rune {
			if r > 0x7e {
				return '?'
			}
			return r
		}, name)
		want := "client_name '" + asSent + "' is the name of an app registered by this server's operator; choose another name"
		if st != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || m["error_description"] != want {
			t.Errorf("register %q: %d %v, want 400 invalid_client_metadata %q", name, st, m, want)
		}
	}
	// A bidirectional override would show "ppA rotarepO" as "Operator App".
	for _, name := range []string{`\u202eppA rotarepO`, `Operator\u2066 App`, `Notes\u0007`} {
		st, m := register(t, f, `{"redirect_uris":["http://127.0.0.1:8977/cb"],"token_endpoint_auth_method":"none","client_name":"`+name+`"}`)
		want := "client_name must not contain control or bidirectional formatting characters"
		if st != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || m["error_description"] != want {
			t.Errorf("register %s: %d %v, want 400 invalid_client_metadata %q", name, st, m, want)
		}
	}
	// Localized names (RFC 7591 §2.2, "client_name#fr") and logo_uri are
	// neither kept nor shown: they cannot carry a static client's name to
	// the page.
	if st, m := register(t, f, `{"redirect_uris":["http://127.0.0.1:8977/cb"],"token_endpoint_auth_method":"none","client_name":"Notes",`+
		`"client_name#fr":"Operator App","client_name#en-US":"Operator App","logo_uri":"https://operator.example/logo.png"}`); st != http.StatusCreated ||
		m["client_name"] != "Notes" || m["client_name#fr"] != nil || m["client_name#en-US"] != nil || m["logo_uri"] != nil {
		t.Errorf("register with localized names: %d %v, want 201 with client_name Notes only", st, m)
	}
	consentPage := func(c devClient) string {
		t.Helper()
		a := newAuthRequest(c)
		a.Resource = f.Base + "/mcp"
		p := f.login(newBrowser(t, a.RedirectURI), a)
		if p.Location != nil || p.Status != 200 {
			t.Fatalf("%s: want the consent page, got %d %v\n%s", c.ClientID, p.Status, p.Location, p.Body)
		}
		return p.Body
	}

	// The operator's client: its name, no warning.
	body := consentPage(devClient{ClientID: "operator-app", RedirectURIs: []string{"http://127.0.0.1:8978/operator-callback"}, AuthMethod: "none"})
	if !strings.Contains(body, "<h1>Allow Operator App to access your account?</h1>") || strings.Contains(body, `class="unverified"`) || strings.Contains(body, `class="warning"`) {
		t.Errorf("static client's consent page: %q", body)
	}

	// A dynamically registered client: unverified, its redirect host shown.
	st, reg := register(t, f, `{"redirect_uris":["http://127.0.0.1:8977/cb"],"token_endpoint_auth_method":"none","client_name":"Notes <b>helper</b>"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	dyn := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{"http://127.0.0.1:8977/cb"}, AuthMethod: "none"}
	body = consentPage(dyn)
	for _, want := range []string{
		"<h1>Allow “Notes &lt;b&gt;helper&lt;/b&gt;”, an unverified app, to access your account?</h1>",
		`<p class="unverified"><strong>Unverified app:</strong> it registered itself, so this server has not checked who runs it or that its name is true.`,
		"<p>It will return to <strong>127.0.0.1:8977</strong>.</p>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dynamic client's consent page lacks %q:\n%s", want, body)
		}
	}

	// The same client, its record naming it as the operator's app.
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	ctx := context.Background()
	var keys []string // the record's key is a hash of the client id
	for _, k := range rdb.Keys(ctx, "*as:dcr:*").Val() {
		if strings.Contains(rdb.Get(ctx, k).Val(), `"client_id":"`+dyn.ClientID+`"`) {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("registration records of %s: %v", dyn.ClientID, keys)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(ctx, keys[0]).Val()), &rec); err != nil {
		t.Fatal(err)
	}
	rec["metadata"].(map[string]any)["client_name"] = "operator app"
	b, _ := json.Marshal(rec)
	if err := rdb.Set(ctx, keys[0], b, redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
	body = consentPage(dyn)
	for _, want := range []string{
		"<h1>Allow an unverified app to access your account?</h1>",
		`<p class="warning"><strong>It calls itself “operator app”, the name of an app this server knows, but it is not that app.</strong>`,
		"<strong>Unverified app:</strong>",
		"<p>It will return to <strong>127.0.0.1:8977</strong>.</p>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("impersonating client's consent page lacks %q:\n%s", want, body)
		}
	}

	// A name registration never checked (as a metadata document's) is
	// shown without bidirectional controls.
	rec["metadata"].(map[string]any)["client_name"] = "\u202eppA rotarepO\u202c"
	b, _ = json.Marshal(rec)
	if err := rdb.Set(ctx, keys[0], b, redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
	body = consentPage(dyn)
	if want := "<h1>Allow “ppA rotarepO”, an unverified app, to access your account?</h1>"; !strings.Contains(body, want) || strings.ContainsRune(body, '\u202e') {
		t.Errorf("consent page of a name with a right-to-left override lacks %q or keeps U+202E:\n%q", want, body)
	}
}
