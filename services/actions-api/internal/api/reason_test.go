package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestRefusalReasonIsBounded: a token's refusal repeats the verifier's
// reason, parts of which come from the token — an unknown kid of
// tokens.MaxKeyIDLength bytes, quoted — and the API cuts it at 120 bytes
// marked "...", as the mcp-gateway does, in the body and in the
// WWW-Authenticate challenge alike (RFC 6750 §3 error_description); a
// multi-byte character is not split. Before, the whole kid was echoed.
func TestRefusalReasonIsBounded(t *testing.T) {
	f := start(t, nil)
	enc := base64.RawURLEncoding.EncodeToString
	forKID := func(kid string) string {
		return enc([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + enc([]byte(`{"sub":"u"}`)) + "." + enc([]byte("not a signature"))
	}
	for _, tc := range []struct{ name, kid, reason string }{
		{"ASCII", strings.Repeat("k", tokens.MaxKeyIDLength),
			`unknown kid "` + strings.Repeat("k", 120-len(`unknown kid "`)) + "..."},
		// é is two bytes: the cut falls between them, and goes before it.
		{"multi-byte", strings.Repeat("k", 120-len(`unknown kid "`)-1) + strings.Repeat("é", 20),
			`unknown kid "` + strings.Repeat("k", 120-len(`unknown kid "`)-1) + "..."},
		{"short", "kid-1", `unknown kid "kid-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, http.MethodGet, "/actions/profile", bearer(forKID(tc.kid)))
			want := "access token rejected: " + tc.reason
			if r.status != http.StatusUnauthorized || r.err.Error != "invalid_token" || r.err.Description != want {
				t.Fatalf("%d %s %q, want 401 invalid_token %q", r.status, r.err.Error, r.err.Description, want)
			}
			if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error_description="`+tokens.ChallengeText(want)+`"`) {
				t.Errorf("WWW-Authenticate = %q, want error_description %q", ch, tokens.ChallengeText(want))
			}
		})
	}
}
