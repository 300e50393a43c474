package oauth

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// TestLoginCookieName: the login cookie is __Host- (Secure) on an https
// issuer, and on a loopback one only with UPSTREAM_RESPONSE_MODE=form_post
// (SameSite=None must be Secure). Any other plain-http development issuer
// gets tollgate-login without Secure: a browser never sends a Secure
// cookie back over http to another host, and Safari (WebKit) does not keep
// one from http://localhost either, so make dev's sign-ins failed there.
func TestLoginCookieName(t *testing.T) {
	for _, mode := range []string{config.ResponseModeQuery, config.ResponseModeFormPost} {
		for issuer, want := range map[string]string{
			"https://auth.example.com":   "__Host-tollgate-login",
			"http://127.0.0.1:8080":      "tollgate-login",
			"http://[::1]:8080":          "tollgate-login",
			"http://localhost:8080":      "tollgate-login",
			"http://auth.dev.localhost":  "tollgate-login",
			"http://tunnel.test":         "tollgate-login",
			"http://localhost.evil.test": "tollgate-login",
		} {
			if mode == config.ResponseModeFormPost && issuer != "http://tunnel.test" && issuer != "http://localhost.evil.test" {
				want = "__Host-tollgate-login"
			}
			s := &Server{issuer: issuer}
			s.cfg.Upstream.ResponseMode = mode
			name, secure := s.loginCookie()
			if name != want || secure != (want == "__Host-tollgate-login") {
				t.Errorf("%s, %s: %s secure=%v, want %s", issuer, mode, name, secure, want)
			}
		}
	}
}

// TestErrorDescription: RFC 6749 §4.1.2.1's and §5.2's characters only,
// bounded when a limit is given.
func TestErrorDescription(t *testing.T) {
	for in, want := range map[string]string{
		`scope "x" is not supported now`:            `scope 'x' is not supported now`,
		"RFC 9700 §4.7.1":                           "RFC 9700 section 4.7.1",
		"a\r\nSet-Cookie: b\\c “d” é":               "a  Set-Cookie: b/c 'd' ?",
		"plain text (with) [brackets] & ~tilde~ !#": "plain text (with) [brackets] & ~tilde~ !#",
		"cut…, a – b — c":                           "cut..., a - b - c",
		"\x00\x7f\xff日":                             "????",
	} {
		if got := errorDescription(in, maxErrorDescription); got != want {
			t.Errorf("errorDescription(%q) = %q, want %q", in, got, want)
		}
	}
	if got := errorDescription(string(make([]byte, 4000)), maxErrorDescription); len(got) != maxErrorDescription {
		t.Errorf("a 4000-byte description became %d bytes, want %d", len(got), maxErrorDescription)
	}
	if got := errorDescription(strings.Repeat("z", 4000)+`"`, 0); len(got) != 4001 || !strings.HasSuffix(got, "'") {
		t.Errorf("with no limit a 4001-byte description became %d bytes, want it whole", len(got))
	}
}
