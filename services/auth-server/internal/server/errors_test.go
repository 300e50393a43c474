package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A JSON body (or any declared type but a form) at the form-only endpoints
// is refused with what to send instead, not with the missing-parameter
// error its ignored body would cause.
func TestFormOnlyEndpointsSayWhatToSend(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	cases := []struct {
		path, ct, want string
	}{
		{"/oauth/token", "application/json", `the token endpoint takes form parameters (RFC 6749 section 3.2), not 'application/json': send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/token", "application/json; charset=utf-8", `the token endpoint takes form parameters (RFC 6749 section 3.2), not 'application/json': send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/token", "text/plain", `the token endpoint takes form parameters (RFC 6749 section 3.2), not 'text/plain': send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/revoke", "application/json", `the revoke endpoint takes form parameters (RFC 7009 section 2.1), not 'application/json': send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/introspect", "application/json", `the introspect endpoint takes form parameters (RFC 7662 section 2.1), not 'application/json': send Content-Type: application/x-www-form-urlencoded`},
	}
	// A form body sent without any Content-Type (its parameters are not read).
	cases = append(cases, struct{ path, ct, want string }{"/oauth/token", "",
		`the token endpoint takes form parameters (RFC 6749 section 3.2) and the body has no Content-Type, so none were read: send Content-Type: application/x-www-form-urlencoded`})
	for _, tc := range cases {
		body := `{"grant_type":"client_credentials","client_id":"local-test","token":"x"}`
		if tc.ct == "" {
			body = "grant_type=refresh_token&refresh_token=x"
		}
		req, _ := http.NewRequest(http.MethodPost, f.Base+tc.path, strings.NewReader(body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		req.SetBasicAuth(c.ClientID, c.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error, ErrorDescription string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.Unmarshal(b, &struct {
			Error            *string `json:"error"`
			ErrorDescription *string `json:"error_description"`
		}{&e.Error, &e.ErrorDescription})
		if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_request" || e.ErrorDescription != tc.want {
			t.Errorf("%s as %s: %d %s, want 400 invalid_request %q", tc.path, tc.ct, resp.StatusCode, b, tc.want)
		}
	}
	// No body and no Content-Type: the parameter checks answer.
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", nil)
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "grant_type is required") {
			t.Errorf("empty POST: %d %s, want 400 grant_type is required", resp.StatusCode, b)
		}
	}
	// A form with a charset parameter is still a form.
	resp, b := f.post("/oauth/token", c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "invalid_grant") {
		t.Errorf("form request: %d %s", resp.StatusCode, b)
	}
}

// TestAuthorizeErrorPageSaysOnlyOurWords: the authorization endpoint's
// error page — shown when the error cannot go to a verified redirect URI
// (RFC 6749 §4.1.2.1) — is on this server's origin, and anyone can send a
// browser to it with a client_id, redirect_uri and scope of their choosing.
// Its description quotes them ("redirect_uri "…" is not registered for
// client "…""), so the page carried the sender's words under our name
// (reflected content, a phishing text). The page now says fixed words
// chosen by the error code and none of the request's text, for a GET and a
// POST authorization request; the description stays in the JSON answer,
// whole, and in the log.
func TestAuthorizeErrorPageSaysOnlyOurWords(t *testing.T) {
	f := startFleet(t, nil)
	const bait = "Your-account-is-locked-call-555-0100"
	c := f.Clients["local-test"]
	for _, tc := range []struct {
		name, clientID, redirect, code, text, json string
	}{
		{"a redirect_uri not registered", c.ClientID, "https://evil.example/" + bait + `?x=<b>"1"</b>`, "invalid_request",
			"The app&#39;s sign-in request was not valid, so this server cannot tell where to send you back.",
			// %q's \" quoted by the sanitizer: '"' is "'", '\' "/".
			`redirect_uri 'https://evil.example/` + bait + `?x=<b>/'1/'</b>' is not registered for client 'local-test': add exactly this URI`},
		{"a redirect_uri that is no URI", c.ClientID, "https://evil.example/" + bait + " now", "invalid_request",
			"The app&#39;s sign-in request was not valid, so this server cannot tell where to send you back.", bait},
		{"an unknown client_id", bait + " (support)", "https://evil.example/" + bait, "invalid_client",
			"The app that sent you here is not known to this server, or its registration could not be checked.", "unknown client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthRequest(devClient{ClientID: tc.clientID, RedirectURIs: []string{tc.redirect}})
			a.Scope = "openid " + bait
			pages := map[string]*page{"GET": newBrowser(t).get(a.URL(f.Base))}
			u, _ := url.Parse(a.URL(f.Base))
			req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/authorize", strings.NewReader(u.RawQuery))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			pages["POST"] = newBrowser(t).do(req)
			for method, p := range pages {
				if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, tc.text) || !strings.Contains(p.Body, "<code>"+tc.code+"</code>") {
					t.Errorf("%s: page %d %v:\n%s\nwant 400 saying %q and %s", method, p.Status, p.Location, p.Body, tc.text, tc.code)
				}
				for _, echoed := range []string{bait, "evil.example", "<b>", "&lt;b&gt;", "is not registered"} {
					if strings.Contains(p.Body, echoed) {
						t.Errorf("%s: the page repeats the request's text %q:\n%s", method, echoed, p.Body)
					}
				}
			}
			// A caller that does not ask for HTML gets the description.
			status, code, desc := authorizeJSON(t, a.URL(f.Base), "", "")
			if status != http.StatusBadRequest || code != tc.code || !strings.Contains(desc, tc.json) {
				t.Errorf("JSON %d %s %q, want %s with %q", status, code, desc, tc.code, tc.json)
			}
		})
	}
	if logs := f.AS.Logs.String(); !strings.Contains(logs, "authorization error shown on a page") || !strings.Contains(logs, "https://evil.example/"+bait) {
		t.Errorf("the description is not in the log:\n%s", logs)
	}
}

// A method an endpoint does not serve gets 405 with Allow and the RFC 6749
// §5.2 JSON error (invalid_request, naming the method to use), not
// net/http's plain text: GET on the POST-only endpoints, POST on the
// GET-only ones.
func TestWrongMethodIsAJSONError(t *testing.T) {
	f := startFleet(t, nil)
	cases := []struct{ method, path, allow string }{
		{http.MethodGet, "/oauth/token", "POST"},
		{http.MethodPut, "/oauth/token", "POST"},
		{http.MethodGet, "/oauth/revoke", "POST"},
		{http.MethodGet, "/oauth/introspect", "POST"},
		{http.MethodGet, "/oauth/register", "POST"},
		{http.MethodDelete, "/oauth/userinfo", "GET, POST, HEAD"},
		{http.MethodPost, "/oauth/jwks", "GET, HEAD"},
		{http.MethodPost, "/.well-known/openid-configuration", "GET, HEAD"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, f.Base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.Header.Get("Cache-Control") != "no-store" ||
			json.Unmarshal(b, &e) != nil || e.Error != "invalid_request" ||
			e.Description != "method not allowed: use "+strings.ReplaceAll(tc.allow, ", ", " or ") {
			t.Errorf("%s %s: %d Allow %q %s %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), b)
		}
	}
	// The served methods are unchanged: HEAD of a GET endpoint, POST of the token endpoint.
	if resp, err := http.Head(f.Base + "/oauth/jwks"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /oauth/jwks: %v %v", resp, err)
	}
	resp, b := f.post("/oauth/token", f.Clients["local-test"], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "invalid_grant") {
		t.Errorf("POST /oauth/token: %d %s", resp.StatusCode, b)
	}
}
