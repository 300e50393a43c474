package oauth

import "testing"

// TestConsentCookieName: the consent cookie is __Host- (Secure) wherever the
// login cookie is — an https issuer — and tollgate-consent without Secure on
// a plain-http development issuer, loopback included, whose browser would
// otherwise not send it back (any browser for another host, Safari for
// localhost too).
func TestConsentCookieName(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://auth.example.com":  "__Host-tollgate-consent",
		"https://tollgate.test":     "__Host-tollgate-consent",
		"http://127.0.0.1:8080":     "tollgate-consent",
		"http://[::1]:8080":         "tollgate-consent",
		"http://localhost:8080":     "tollgate-consent",
		"http://tollgate.test:8080": "tollgate-consent",
		"http://tunnel.test":        "tollgate-consent",
	} {
		name, secure := (&Server{issuer: issuer}).consentCookie()
		if name != want || secure != (want == "__Host-tollgate-consent") {
			t.Errorf("%s: %s secure=%v, want %s", issuer, name, secure, want)
		}
	}
}
