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
		"https://app%2Eexample/cb":    `redirect URI 'https://app%2Eexample/cb': is not a URI (RFC 3986 section 3): invalid URL escape '%2E'`,
		"https://app example/cb":      `redirect URI 'https://app example/cb': is not a URI (RFC 3986 section 3): invalid character ' ' in host name`,
		"https://app.example/c\tb":    `redirect URI 'https://app.example/c/tb': is not a URI (RFC 3986 section 3): invalid control character in URL`,
		"https://app.example:+443/cb": `redirect URI 'https://app.example:+443/cb': is not a URI (RFC 3986 section 3): invalid port ':+443' after host`,
		"/cb":                         `redirect URI '/cb': must be an absolute URL`,
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
	want := `redirect URI 'https://user:xxxxx@app.example/cb': must not have user information before the host (RFC 3986 section 3.2.1): 'user@' goes to 'app.example'`
	if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
		t.Errorf("%d %v\nwant 400 invalid_redirect_uri %q", st, got, want)
	}
}

// TestRegistrationRefusesCharactersNoURIHas: a redirect URI with a
// character RFC 3986 §2 allows nowhere — a trailing space copied with it,
// a space or a "|" in its path or query — is invalid_redirect_uri (RFC 7591
// §3.2.2) naming the character and where it is; url.Parse took them and
// the registration stored a URI no client sends. An upper-case scheme is
// refused with the lowercase spelling to register (RFC 3986 §3.1), since
// the authorization request's comparison is exact. Loopback with a port
// and https with a path and query still register.
func TestRegistrationRefusesCharactersNoURIHas(t *testing.T) {
	f := startFleet(t, nil)
	const tail = "which RFC 3986 section 2 does not allow in a URI: remove it, or percent-encode it if it belongs to the path or query"
	for uri, want := range map[string]string{
		"https://app.example/cb ":      `redirect URI 'https://app.example/cb ': contains a space at its end, ` + tail,
		"https://app.example/c b":      `redirect URI 'https://app.example/c b': contains a space at byte 21, ` + tail,
		"https://app.example/cb?x=a b": `redirect URI 'https://app.example/cb?x=a b': contains a space at byte 26, ` + tail,
		"https://app.example/cb?x=1|2": `redirect URI 'https://app.example/cb?x=1|2': contains '|' at byte 26, ` + tail,
		"HTTPS://app.example/cb":       `redirect URI 'HTTPS://app.example/cb': scheme 'HTTPS' must be lowercase (RFC 3986 section 3.1): register 'https://app.example/cb'`,
	} {
		b, _ := json.Marshal(map[string]any{"redirect_uris": []string{uri}, "token_endpoint_auth_method": "none"})
		st, got := register(t, f, string(b))
		if st != http.StatusBadRequest || got["error"] != "invalid_redirect_uri" || got["error_description"] != want {
			t.Errorf("%q: %d %v\nwant 400 invalid_redirect_uri %q", uri, st, got, want)
		}
	}
	for _, uri := range []string{"http://127.0.0.1:51004/callback", "http://[::1]:8080/cb", "https://app.example/oauth/cb?tenant=a%20b&x=1"} {
		b, _ := json.Marshal(map[string]any{"redirect_uris": []string{uri}, "token_endpoint_auth_method": "none"})
		if st, got := register(t, f, string(b)); st != http.StatusCreated {
			t.Errorf("%q: %d %v, want 201", uri, st, got)
		}
	}
}
