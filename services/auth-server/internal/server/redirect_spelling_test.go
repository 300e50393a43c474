package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestLoopbackRedirectSpellings: for local-test (registered
// http://127.0.0.1:8976/callback) the authorization endpoint refuses a
// redirect_uri with an empty fragment ("…/callback#": RFC 6749 §3.1.2, "#"
// starts a fragment even when empty, RFC 3986 §3.5), an empty port
// ("127.0.0.1:/callback") or a leading-zero port ("127.0.0.1:08976"):
// RFC 8252 §7.3 lets the port vary, not its spelling. The refusal is 400
// invalid_request on the error page, saying why, never a redirect (the URI
// is not verified), and audited. All three were accepted (fresh3): the
// "#" was dropped from the redirect and the token request had to repeat
// it. The token endpoint compares redirect_uri as a string (RFC 6749
// §4.1.3): these spellings of a code's URI are invalid_grant there and
// leave the code usable. Dynamic registration refuses them too (RFC 7591
// §3.2.2 invalid_redirect_uri). The port as registered, another port and
// no port still work.
func TestLoopbackRedirectSpellings(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	if c.RedirectURIs[0] != "http://127.0.0.1:8976/callback" {
		t.Fatalf("local-test's first redirect URI is %q", c.RedirectURIs[0])
	}
	for uri, why := range map[string]string{
		"http://127.0.0.1:8976/callback#":  "must not have a fragment, not even an empty '#' (RFC 6749 section 3.1.2)",
		"http://127.0.0.1:51234/callback#": "must not have a fragment",
		"http://127.0.0.1/callback#":       "must not have a fragment",
		"http://127.0.0.1:/callback":       "has an empty port",
		"http://127.0.0.1:08976/callback":  "port '08976' has a leading zero: write 8976",
		"http://127.0.0.1:051234/callback": "has a leading zero: write 51234",
	} {
		t.Run(uri, func(t *testing.T) {
			a := newAuthRequest(c)
			a.RedirectURI = uri
			p := newBrowser(t, "http://127.0.0.1:8976", "http://127.0.0.1:5", "http://127.0.0.1/", "http://127.0.0.1:0", "http://127.0.0.1:/").get(a.URL(f.Base))
			if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_request") {
				t.Errorf("%d %v, want 400 invalid_request without a redirect:\n%.600s", p.Status, p.Location, p.Body)
			}
			if st, code, desc := authorizeJSON(t, a.URL(f.Base), "", ""); st != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(desc, htmlUnescape(why)) {
				t.Errorf("JSON %d %s %q, want 400 invalid_request saying %q", st, code, desc, htmlUnescape(why))
			}
		})
	}
	events := auditEvents(t, f)
	if findEvent(events, map[string]any{"event": "authorization_request", "client_id": "local-test", "result": "invalid_request"}) == nil {
		t.Error("the refusal is not audited")
	}

	for _, uri := range []string{"http://127.0.0.1:8976/callback", "http://127.0.0.1:51234/callback", "http://127.0.0.1/callback"} {
		a := newAuthRequest(c)
		a.RedirectURI = uri
		code := f.authorize(a)
		for _, other := range []string{uri + "#", strings.Replace(uri, ":8976", ":08976", 1), strings.Replace(uri, "127.0.0.1/", "127.0.0.1:/", 1)} {
			if other == uri {
				continue
			}
			b := *a
			b.RedirectURI = other
			if tr := f.exchange(c, &b, code); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
				t.Errorf("code for %s exchanged with %s: %d %s, want 400 invalid_grant", uri, other, tr.Status, tr.Error)
			}
		}
		if tr := f.exchange(c, a, code); tr.Status != http.StatusOK || tr.AccessToken == "" {
			t.Errorf("%s: exchange %d %s %s", uri, tr.Status, tr.Error, tr.Description)
		}
	}

	for uri, want := range map[string]string{
		"http://127.0.0.1:/cb":      `redirect URI 'http://127.0.0.1:/cb': has an empty port: remove the ':' after the host, or give the port (RFC 3986 section 3.2.3, section 6.2.3)`,
		"https://app.example:/cb":   `redirect URI 'https://app.example:/cb': has an empty port: remove the ':' after the host, or give the port (RFC 3986 section 3.2.3, section 6.2.3)`,
		"http://127.0.0.1:08976/cb": `redirect URI 'http://127.0.0.1:08976/cb': port '08976' has a leading zero: write 8976`,
		"http://127.0.0.1:8976/cb#": `redirect URI 'http://127.0.0.1:8976/cb#': must not have a fragment`,
	} {
		st, got := register(t, f, `{"redirect_uris":[`+jsonString(uri)+`],"token_endpoint_auth_method":"none"}`)
		if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
			t.Errorf("register %s: %d %v\nwant 400 invalid_redirect_uri %q", uri, st, got, want)
		}
	}
}
