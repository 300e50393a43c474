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
