package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestSignInBoundToTheBrowser: the auth-server's upstream state is bound to
// the browser that started the authorization by its login cookie
// (tollgate-login on this loopback http issuer, __Host-tollgate-login on
// https) (RFC 6749 §10.12, RFC 9700 §4.7.1), so a callback delivered to
// another browser is refused and consumed — in both directions of login
// CSRF: the attacker's signed-in callback opened by the victim (the
// victim's app would be linked to the attacker's account), and the
// attacker's IdP link signed in by the victim.
func TestSignInBoundToTheBrowser(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	callback := f.Base + "/oauth/callback"
	// Each refusal is audited as a code_issued invalid_request whose
	// reason says why (brk45a NIT: it had none, so it read as any other
	// invalid callback).
	refusals := 0
	refused := func(t *testing.T, p *page) {
		t.Helper()
		if p.Location != nil || p.Status != http.StatusBadRequest {
			t.Fatalf("callback in another browser: %d (location %v), want 400 without redirect\n%s", p.Status, p.Location, p.Body)
		}
		if !strings.Contains(p.Body, "not started in this browser") {
			t.Errorf("the page does not say why:\n%s", p.Body)
		}
		refusals++
		n := 0
		for _, e := range auditEvents(t, f) {
			if e["event"] == "code_issued" && e["result"] == "invalid_request" && e["client_id"] == c.ClientID &&
				e["reason"] == "callback from another browser than the one that started the sign-in (login CSRF, RFC 6749 §10.12, RFC 9700 §4.7.1); the sign-in is over" {
				n++
			}
		}
		if n != refusals {
			t.Errorf("%d code_issued records with the other-browser reason after %d refusals", n, refusals)
		}
	}
	// signedInCallback runs the attacker's sign-in up to the callback URL
	// the IdP sends the attacker's browser to, and returns it unvisited.
	signedInCallback := func(t *testing.T, a *authRequest) (string, *browser) {
		t.Helper()
		attacker := newBrowser(t, callback)
		p := f.login(attacker, a)
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), callback) || p.Location.Query().Get("code") == "" {
			t.Fatalf("no callback with an upstream code: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		return p.Location.String(), attacker
	}

	t.Run("the cookie", func(t *testing.T) {
		b := newBrowser(t, f.IdP.Issuer)
		p := b.get(newAuthRequest(c).URL(f.Base))
		var got *http.Cookie
		for _, ck := range (&http.Response{Header: p.Header}).Cookies() {
			if ck.Name == "tollgate-login" {
				got = ck
			}
		}
		// Not Secure over plain http: Safari keeps no Secure cookie from
		// http://localhost (TestConsentCookieFollowsTheIssuer, case "loopback issuer in Safari").
		if got == nil || got.Secure || !got.HttpOnly || got.Path != "/" || got.Domain != "" || got.SameSite != http.SameSiteLaxMode || got.MaxAge <= 0 || got.MaxAge > 3600 {
			t.Fatalf("login cookie %+v: want tollgate-login (not Secure on a plain-http issuer, Path=/, no Domain), HttpOnly, SameSite=Lax, Max-Age the login TTL", got)
		}
	})

	t.Run("attacker's callback opened by the victim", func(t *testing.T) {
		u, attacker := signedInCallback(t, newAuthRequest(c))
		refused(t, newBrowser(t, c.RedirectURIs[0]).get(u))
		// The state is consumed: not even the attacker's browser can use it now.
		attacker.stopAt = []string{c.RedirectURIs[0]}
		if p := attacker.get(u); p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
			t.Errorf("replayed callback: %d %v, want 400 unknown state\n%s", p.Status, p.Location, p.Body)
		}
	})

	t.Run("victim with a sign-in of its own", func(t *testing.T) {
		victim := newBrowser(t, f.IdP.Issuer)
		if p := victim.get(newAuthRequest(c).URL(f.Base)); p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		u, _ := signedInCallback(t, newAuthRequest(c))
		victim.stopAt = []string{c.RedirectURIs[0]}
		refused(t, victim.get(u))
	})

	t.Run("attacker's IdP link signed in by the victim", func(t *testing.T) {
		attacker := newBrowser(t, f.IdP.Issuer)
		p := attacker.get(newAuthRequest(c).URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		victim := newBrowser(t, callback)
		p = victim.get(p.Location.String())
		p = victim.submit(p, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), callback) {
			t.Fatalf("IdP login: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		victim.stopAt = []string{c.RedirectURIs[0]}
		refused(t, victim.get(p.Location.String()))
	})

	t.Run("a value not the server's is replaced", func(t *testing.T) {
		b := newBrowser(t, c.RedirectURIs[0])
		base, _ := url.Parse(f.Base)
		b.client.Jar.SetCookies(base, []*http.Cookie{{Name: "tollgate-login", Value: "chosen-by-someone", Path: "/"}})
		a := newAuthRequest(c)
		if p := f.login(b, a); p.Location == nil || p.Location.Query().Get("code") == "" {
			t.Fatalf("sign-in: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		for _, ck := range b.client.Jar.Cookies(base) {
			if ck.Name == "tollgate-login" && ck.Value == "chosen-by-someone" {
				t.Error("the request's own value was kept")
			}
		}
	})

	t.Run("two sign-ins in one browser both complete", func(t *testing.T) {
		b := newBrowser(t, callback)
		a1, a2 := newAuthRequest(c), newAuthRequest(c)
		p1 := f.login(b, a1)
		p2 := f.login(b, a2)
		b.stopAt = []string{c.RedirectURIs[0]}
		for i, p := range []*page{p1, p2} {
			if p.Location == nil {
				t.Fatalf("sign-in %d: %d\n%s", i+1, p.Status, p.Body)
			}
			end := b.get(p.Location.String())
			if end.Location == nil || end.Location.Query().Get("code") == "" || end.Location.Query().Get("state") != []*authRequest{a1, a2}[i].State {
				t.Errorf("sign-in %d: %d %v\n%s", i+1, end.Status, end.Location, end.Body)
			}
		}
	})
}

// TestAuthorizeRequestSizeBounded: an authorization request is stored in
// Redis until the user is back from the IdP, so its size is bounded (16 KiB
// of query): a larger one — a huge state, thousands of parameters, one byte
// over — is refused 414 URI Too Long (RFC 9110 §15.5.15) as a page or JSON
// (invalid_request, no redirect, the state not echoed) and nothing is
// stored. Without the bound net/http let a 1 MB query through into Redis
// for LOGIN_TTL. A query of exactly 16 KiB is a request like any other.
func TestAuthorizeRequestSizeBounded(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	pendingKeys := func() int {
		keys, err := rdb.Keys(context.Background(), "*pending*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	many := url.Values{}
	for i := range 3000 {
		many.Set(fmt.Sprintf("x%d", i), "1")
	}
	// padTo pads a's state so that its query is n bytes.
	padTo := func(a *authRequest, n int) {
		a.State = ""
		u, _ := url.Parse(a.URL(f.Base))
		a.State = strings.Repeat("s", n-len(u.RawQuery))
	}
	for name, mod := range map[string]func(a *authRequest){
		"one byte over 16 KiB":   func(a *authRequest) { padTo(a, 16<<10+1) },
		"state of 20 KiB":        func(a *authRequest) { a.State = strings.Repeat("s", 20<<10) },
		"nonce of 60 KB":         func(a *authRequest) { a.Nonce = strings.Repeat("n", 60<<10) },
		"3,000 parameters":       func(a *authRequest) { a.Extra = many },
		"scope padded to 17 KiB": func(a *authRequest) { a.Scope = "openid" + strings.Repeat(" ", 17<<10) },
	} {
		t.Run(name, func(t *testing.T) {
			a := newAuthRequest(c)
			mod(a)
			p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
			if p.Location != nil || p.Status != http.StatusRequestURITooLong || !strings.Contains(p.Body, "too long for this server") ||
				!strings.Contains(p.Body, "invalid_request") || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d (location %.200v), want a 414 page without redirect\n%.500s", p.Status, p.Location, p.Body)
			}
			if strings.Contains(p.Body, "sssssssss") || strings.Contains(p.Body, "nnnnnnnnn") {
				t.Error("the page echoes the request")
			}
			if st, _, desc := authorizeJSON(t, a.URL(f.Base), "", ""); st != http.StatusRequestURITooLong || !strings.Contains(desc, "larger than 16384 bytes") {
				t.Errorf("JSON %d %q, want 414 saying larger than 16384 bytes", st, desc)
			}
			if n := pendingKeys(); n != 0 {
				t.Errorf("%d pending requests stored, want none", n)
			}
		})
	}
	// The size is judged before the endpoint parses the query: an
	// oversized query that is also malformed, repeats client_id or holds
	// more parameters than url.ParseQuery takes (10,000) is a 414 too, not
	// the 400 of what parsing it found (review1). (An access_token in any
	// query is refused on every path before that, 400.)
	for name, suffix := range map[string]string{
		"a bad escape": "&x=%zz", "client_id repeated": "&client_id=other",
		"20,000 parameters": strings.Repeat("&a", 20000),
	} {
		a := newAuthRequest(c)
		a.State = strings.Repeat("s", 20<<10)
		p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base) + suffix)
		if p.Location != nil || p.Status != http.StatusRequestURITooLong || !strings.Contains(p.Body, "too long for this server") {
			t.Errorf("20 KiB with %s: %d (location %.200v), want the 414 page\n%.500s", name, p.Status, p.Location, p.Body)
		}
	}
	// Past the listener's bound on a request line and headers
	// (app.MaxHeaderBytes, 64 KiB), net/http answers 431 while reading the
	// request: nothing of it reaches the endpoint or is stored.
	a0 := newAuthRequest(c)
	a0.Nonce = strings.Repeat("n", 1<<20-4096)
	if p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a0.URL(f.Base)); p.Location != nil || p.Status != http.StatusRequestHeaderFieldsTooLarge || strings.Contains(p.Body, "nnnnnnnnn") {
		t.Errorf("nonce of 1 MB: %d (location %.200v), want 431 from net/http\n%.300s", p.Status, p.Location, p.Body)
	}
	if n := pendingKeys(); n != 0 {
		t.Errorf("%d pending requests stored, want none", n)
	}
	// A client that asks for JSON gets the 414 as JSON.
	a := newAuthRequest(c)
	a.State = strings.Repeat("s", 20<<10)
	resp, err := http.Get(a.URL(f.Base))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestURITooLong || body["error"] != "invalid_request" || !strings.Contains(body["error_description"], "larger than 16384 bytes") {
		t.Fatalf("JSON: %d %v, want 414 invalid_request", resp.StatusCode, body)
	}
	// A query of exactly 16 KiB is a request like any other.
	a = newAuthRequest(c)
	padTo(a, 16<<10)
	if u, _ := url.Parse(a.URL(f.Base)); len(u.RawQuery) != 16<<10 {
		t.Fatalf("query of %d bytes, want 16384", len(u.RawQuery))
	}
	if code := f.authorize(a); code == "" {
		t.Fatal("16 KiB query: no code")
	}
}

// TestErrorDescriptionCharset: an error sent to the client's redirect URI
// keeps error_description to RFC 6749 §4.1.2.1's characters (printable
// ASCII without '"' and '\'), at most 512 bytes, and names a section (§) in
// words. The upstream IdP's error parameter (here quotes, markup, CR LF,
// non-ASCII) is repeated only when it is a registered code; before, any
// value was quoted, cleaned, to the client.
func TestErrorDescriptionCharset(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	pub := f.Clients["test-public"]
	allowed := func(t *testing.T, p *page, code string) {
		t.Helper()
		if p.Location == nil {
			t.Fatalf("no redirect: %d\n%s", p.Status, p.Body)
		}
		q := p.Location.Query()
		d := q.Get("error_description")
		if q.Get("error") != code || q.Get("iss") != f.Base || d == "" || len(d) > 512 {
			t.Fatalf("redirect %s: want error=%s, iss and a description of at most 512 bytes", p.Location, code)
		}
		for _, r := range d {
			if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
				t.Fatalf("error_description %q has %q, outside RFC 6749 §4.1.2.1's set", d, r)
			}
		}
	}
	t.Run("upstream error quoted", func(t *testing.T) {
		a := newAuthRequest(c)
		b := newBrowser(t, f.IdP.Issuer)
		p := b.get(a.URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		state := p.Location.Query().Get("state")
		b.stopAt = []string{c.RedirectURIs[0]}
		evil := `x"><script>alert(1)</script>` + "\r\nSet-Cookie: a=b\\ §ü" + strings.Repeat("z", 2000)
		p = b.get(f.Base + "/oauth/callback?" + url.Values{"error": {evil}, "state": {state}}.Encode())
		allowed(t, p, "server_error")
		// RFC 6749 §4.1.2.1: a value that is no registered code is not
		// repeated to the client (it could be anyone's words); the log
		// has it.
		if d := p.Location.Query().Get("error_description"); d != "the identity provider returned an error (a code OAuth does not define; see the auth-server log)" {
			t.Errorf("error_description %q: want the IdP's unregistered error left out", d)
		}
		if !strings.Contains(f.AS.Logs.String(), "alert(1)") {
			t.Errorf("the upstream's error is not in the log:\n%s", f.AS.Logs.String())
		}
	})
	t.Run("registered upstream error named", func(t *testing.T) {
		a := newAuthRequest(c)
		b := newBrowser(t, f.IdP.Issuer)
		p := b.get(a.URL(f.Base))
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
			t.Fatalf("authorize: %d %v", p.Status, p.Location)
		}
		b.stopAt = []string{c.RedirectURIs[0]}
		p = b.get(f.Base + "/oauth/callback?" + url.Values{"error": {"invalid_scope"}, "state": {p.Location.Query().Get("state")}}.Encode())
		allowed(t, p, "server_error")
		if d := p.Location.Query().Get("error_description"); d != "the identity provider returned an error (invalid_scope)" {
			t.Errorf("error_description %q", d)
		}
	})
	t.Run("section sign", func(t *testing.T) {
		a := newAuthRequest(pub)
		a.Extra = url.Values{"request_uri": {"https://client.example/r.jwt"}}
		p := newBrowser(t, pub.RedirectURIs[0]).get(a.URL(f.Base))
		allowed(t, p, "request_uri_not_supported")
		if d := p.Location.Query().Get("error_description"); !strings.Contains(d, "OpenID Connect Core section 6") {
			t.Errorf("error_description %q", d)
		}
	})
}

// TestJSONErrorsNotSniffed: a JSON error that quotes the request (an
// unregistered redirect_uri with markup) carries X-Content-Type-Options:
// nosniff, so no browser renders it as HTML.
func TestJSONErrorsNotSniffed(t *testing.T) {
	f := startFleet(t, nil)
	a := newAuthRequest(f.Clients["local-test"])
	a.RedirectURI = "https://evil.example/<script>alert(1)</script>"
	resp, err := http.Get(a.URL(f.Base))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%d %v, want 400 application/json with nosniff", resp.StatusCode, resp.Header)
	}
}

// TestConsentPageCSPTakesOnlyAnOrigin: the consent page's form-action names
// the redirect URI's origin so that the answer's redirect may follow. A
// redirect URI whose host holds a ';' or ',' (RFC 3986's generic reg-name
// allows sub-delimiters) would end the directive and add one of the
// client's choosing ("sandbox"); registration refuses such hosts
// (TestRegistrationRefusesHostsThatAreNotHosts), and a registration stored
// before it did gets no consent page at all: the authorization request's
// redirect URI fails the same rule (a 400 page, no redirect).
func TestConsentPageCSPTakesOnlyAnOrigin(t *testing.T) {
	f := startFleet(t, nil)
	redirect := "http://127.0.0.1:8977/csp-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"CSP"}`)
	if st != http.StatusCreated {
		t.Fatalf("register %s: %d %v", redirect, st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	p := f.login(newBrowser(t, redirect), newAuthRequest(c))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "consent_id") {
		t.Fatalf("want the consent page: %d %v\n%s", p.Status, p.Location, p.Body)
	}
	want := "form-action 'self' http://127.0.0.1:8977"
	if csp := p.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; "+want) || strings.Count(csp, ";") != 4 {
		t.Errorf("CSP %q, want it to end with %q and hold five directives", csp, want)
	}
	for _, bad := range []string{"https://a.example;sandbox/cb", "https://b.example,script-src-elem/cb"} {
		st, reg := register(t, f, `{"redirect_uris":["https://ok.example/cb"],"token_endpoint_auth_method":"none","client_name":"CSP"}`)
		if st != http.StatusCreated {
			t.Fatalf("register: %d %v", st, reg)
		}
		id := reg["client_id"].(string)
		storeRedirectURIs(t, f, id, bad) // as registered before the rule
		c := devClient{ClientID: id, RedirectURIs: []string{bad}, AuthMethod: "none"}
		p := newBrowser(t, "https://").get(newAuthRequest(c).URL(f.Base))
		if p.Status != http.StatusBadRequest || p.Location != nil || strings.Contains(p.Body, "consent_id") {
			t.Errorf("%s: %d %v, want a 400 page without redirect or consent form\n%s", bad, p.Status, p.Location, p.Body)
		}
	}
}

// TestParkedAuthorizeRequestBounded: while the user signs in at the IdP
// the authorization request is parked in Redis for LOGIN_TTL, for anyone
// who asks. Parameters no standard defines are not kept (RFC 6749 §3.1:
// ignored), and the KiB an address parks draw on a per-address budget
// (RATE_LIMIT_AUTHORIZE_PER_MINUTE KiB a minute, a request of n KiB
// costing n): the fifth 15 KiB request within the minute is sent back
// temporarily_unavailable with its state and nothing is parked, while a
// usual request from the same address still signs in. Before, every
// request parked up to 16 KiB, junk included: 10 MB per address held for
// LOGIN_TTL at the default rate (brkexhaust).
func TestParkedAuthorizeRequestBounded(t *testing.T) {
	f := startFleet(t, map[string]string{"RATE_LIMIT_AUTHORIZE_PER_MINUTE": "60"}) // the default
	c := f.Clients["local-test"]
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", f.Redis.Port)})
	defer rdb.Close()
	parked := func() []string {
		keys, err := rdb.Keys(context.Background(), "*pending*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			v, err := rdb.Get(context.Background(), k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}

	// Junk parameters are not parked; the flow is unchanged.
	a := newAuthRequest(c)
	a.Extra = url.Values{"junk": {strings.Repeat("j", 3000)}, "x-custom": {"keep-me-not"}}
	p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
		t.Fatalf("authorize with junk parameters: %d %v\n%.300s", p.Status, p.Location, p.Body)
	}
	recs := parked()
	if len(recs) != 1 || strings.Contains(recs[0], "jjjj") || strings.Contains(recs[0], "keep-me-not") || !strings.Contains(recs[0], "code_challenge") {
		t.Fatalf("parked %d requests: %.400v, want one without the junk parameters", len(recs), recs)
	}
	if len(recs[0]) > 2048 {
		t.Errorf("parked request of %d bytes, want the usual request's few hundred", len(recs[0]))
	}
	if code := f.authorize(newAuthRequest(c)); code == "" {
		t.Fatal("a usual request: no code")
	}

	// 15 KiB states: 4 × 15 KiB fit the 60 KiB budget, the fifth does not.
	base := len(parked())
	for i := range 5 {
		a := newAuthRequest(c)
		a.State = fmt.Sprintf("%d-", i) + strings.Repeat("s", 15<<10)
		p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
		if p.Location == nil {
			t.Fatalf("large request %d: %d\n%.300s", i, p.Status, p.Body)
		}
		if i < 4 {
			if !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
				t.Fatalf("large request %d within the budget: sent to %.200v, want the IdP", i, p.Location)
			}
			continue
		}
		q := p.Location.Query()
		if q.Get("error") != "temporarily_unavailable" || q.Get("state") != a.State || !strings.Contains(q.Get("error_description"), "large authorization requests") {
			t.Fatalf("large request past the budget: %.300v, want temporarily_unavailable with its state", p.Location)
		}
	}
	if n := len(parked()) - base; n != 4 {
		t.Errorf("%d large requests parked, want 4", n)
	}
	// The budget is the address's large requests only.
	if code := f.authorize(newAuthRequest(c)); code == "" {
		t.Fatal("a usual request after the budget is spent: no code")
	}

	// With fewer than 16 requests a minute, a 15 KiB request still fits
	// an idle address's budget (review6: it could never be parked).
	small := startFleet(t, map[string]string{"RATE_LIMIT_AUTHORIZE_PER_MINUTE": "4"})
	a = newAuthRequest(c)
	a.State = strings.Repeat("s", 15<<10)
	if p := newBrowser(t, c.RedirectURIs[0], small.IdP.Issuer).get(a.URL(small.Base)); p.Location == nil || !strings.HasPrefix(p.Location.String(), small.IdP.Issuer) {
		t.Fatalf("15 KiB request with RATE_LIMIT_AUTHORIZE_PER_MINUTE=4: %d %.200v, want the IdP", p.Status, p.Location)
	}
}
