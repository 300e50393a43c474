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
