package oauth

import (
	"testing"

	fjwt "github.com/ory/fosite/token/jwt"
)

// An ID token's header never carries a session's kid: the signing key's
// own kid names it (the session's may be of a key rotated out since).
func TestSigningKeyIDDropsTheSessionsKid(t *testing.T) {
	h := &fjwt.Headers{Extra: map[string]any{"kid": "old", "typ": "JWT"}}
	m := signingKeyID{h}.ToMap()
	if _, ok := m["kid"]; ok || m["typ"] != "JWT" {
		t.Fatalf("header %v: want typ kept and no kid", m)
	}
	if h.Extra["kid"] != "old" {
		t.Fatalf("the session's header changed: %v", h.Extra)
	}
}
