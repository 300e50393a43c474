package oauth

import "testing"

// TestLoginCookieName: the login cookie is __Host- (Secure) on https and
// loopback issuers; only a plain-http development issuer elsewhere (a
// PUBLIC_URL tunnel) gets one without Secure, which its browser would
// otherwise never send back.
func TestLoginCookieName(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://auth.example.com":   "__Host-tollgate-login",
		"http://127.0.0.1:8080":      "__Host-tollgate-login",
		"http://[::1]:8080":          "__Host-tollgate-login",
		"http://localhost:8080":      "__Host-tollgate-login",
		"http://auth.dev.localhost":  "__Host-tollgate-login",
		"http://tunnel.test":         "tollgate-login",
		"http://localhost.evil.test": "tollgate-login",
	} {
		name, secure := (&Server{issuer: issuer}).loginCookie()
		if name != want || secure != (want == "__Host-tollgate-login") {
			t.Errorf("%s: %s secure=%v, want %s", issuer, name, secure, want)
		}
	}
}

// TestErrorDescription: RFC 6749 §4.1.2.1's characters only, bounded.
func TestErrorDescription(t *testing.T) {
	for in, want := range map[string]string{
		`scope "x" is not supported now`:            `scope 'x' is not supported now`,
		"RFC 9700 §4.7.1":                           "RFC 9700 section 4.7.1",
		"a\r\nSet-Cookie: b\\c “d” é":               "a  Set-Cookie: b/c 'd' ?",
		"plain text (with) [brackets] & ~tilde~ !#": "plain text (with) [brackets] & ~tilde~ !#",
	} {
		if got := errorDescription(in); got != want {
			t.Errorf("errorDescription(%q) = %q, want %q", in, got, want)
		}
	}
	if got := errorDescription(string(make([]byte, 4000))); len(got) != maxErrorDescription {
		t.Errorf("a 4000-byte description became %d bytes, want %d", len(got), maxErrorDescription)
	}
}
