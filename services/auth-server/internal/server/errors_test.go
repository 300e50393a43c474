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
		{"/oauth/token", "application/json", `the token endpoint takes form parameters (RFC 6749 §3.2), not "application/json": send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/token", "application/json; charset=utf-8", `the token endpoint takes form parameters (RFC 6749 §3.2), not "application/json": send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/token", "text/plain", `the token endpoint takes form parameters (RFC 6749 §3.2), not "text/plain": send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/revoke", "application/json", `the revoke endpoint takes form parameters (RFC 7009 §2.1), not "application/json": send Content-Type: application/x-www-form-urlencoded`},
		{"/oauth/introspect", "application/json", `the introspect endpoint takes form parameters (RFC 7662 §2.1), not "application/json": send Content-Type: application/x-www-form-urlencoded`},
	}
	// A form body sent without any Content-Type (its parameters are not read).
	cases = append(cases, struct{ path, ct, want string }{"/oauth/token", "",
		`the token endpoint takes form parameters (RFC 6749 §3.2) and the body has no Content-Type, so none were read: send Content-Type: application/x-www-form-urlencoded`})
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

// The page for a redirect_uri that is not registered names the rejected
// URI, HTML-escaped, so whoever configures the client sees what to add.
func TestUnregisteredRedirectShowsTheURI(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.RedirectURI = `https://chatgpt.com/connector_platform_oauth_redirect?x=<b>"1"</b>&y=2`
	b := newBrowser(t)
	p := b.get(a.URL(f.Base))
	want := `redirect_uri &#34;https://chatgpt.com/connector_platform_oauth_redirect?x=&lt;b&gt;\&#34;1\&#34;&lt;/b&gt;&amp;y=2&#34; is not registered for client &#34;local-test&#34;: add exactly this URI to the client&#39;s redirect_uris (exact match required; any port only for http loopback IP literals and a port-less http://localhost, RFC 8252 §7.3)`
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, want) {
		t.Errorf("page %d:\n%s\nwant it to contain\n%s", p.Status, p.Body, want)
	}
	if strings.Contains(p.Body, "<b>") {
		t.Error("the rejected URI reached the page unescaped")
	}
	// The same text as JSON for a non-browser caller.
	req, _ := http.NewRequest(http.MethodGet, a.URL(f.Base), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	wantJSON := `redirect_uri "https://chatgpt.com/connector_platform_oauth_redirect?x=<b>\"1\"</b>&y=2" is not registered for client "local-test": add exactly this URI to the client's redirect_uris (exact match required; any port only for http loopback IP literals and a port-less http://localhost, RFC 8252 §7.3)`
	if e.Description != wantJSON {
		t.Errorf("JSON error_description %q, want %q", e.Description, wantJSON)
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
