package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestRegistrationSaysWhyARedirectURIIsNoURL: a redirect URI that does not
// parse (RFC 3986) is refused with the reason — a percent-encoded ASCII
// character or a space in the host, a tab, a port that is not digits —
// not "must be an absolute URL", which it is, and which sent the
// developer looking for a missing scheme.
func TestRegistrationSaysWhyARedirectURIIsNoURL(t *testing.T) {
	f := startFleet(t, nil)
	for uri, want := range map[string]string{
		"https://app%2Eexample/cb":    `redirect URI "https://app%2Eexample/cb": is not a URI (RFC 3986 §3): invalid URL escape "%2E"`,
		"https://app example/cb":      `redirect URI "https://app example/cb": is not a URI (RFC 3986 §3): invalid character " " in host name`,
		"https://app.example/c\tb":    `redirect URI "https://app.example/c\tb": is not a URI (RFC 3986 §3): invalid control character in URL`,
		"https://app.example:+443/cb": `redirect URI "https://app.example:+443/cb": is not a URI (RFC 3986 §3): invalid port ":+443" after host`,
		"/cb":                         `redirect URI "/cb": must be an absolute URL`,
	} {
		b, _ := json.Marshal(map[string]any{"redirect_uris": []string{uri}, "token_endpoint_auth_method": "none"})
		st, got := register(t, f, string(b))
		if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
			t.Errorf("%q: %d %v\nwant 400 invalid_redirect_uri %q", uri, st, got, want)
		}
	}
}

// TestRegistrationDoesNotRepeatARedirectURIPassword: a redirect URI with
// a password in its user information is refused, and the description
// quotes it with the password replaced (as net/url's Redacted does) — the
// rule's text promised "the password part is never repeated", while the
// quoted URI repeated it.
func TestRegistrationDoesNotRepeatARedirectURIPassword(t *testing.T) {
	f := startFleet(t, nil)
	st, got := register(t, f, `{"redirect_uris":["https://user:s3cr3t@app.example/cb"],"token_endpoint_auth_method":"none"}`)
	want := `redirect URI "https://user:xxxxx@app.example/cb": must not have user information before the host (RFC 3986 §3.2.1): "user@" goes to "app.example"`
	if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
		t.Errorf("%d %v\nwant 400 invalid_redirect_uri %q", st, got, want)
	}
}
