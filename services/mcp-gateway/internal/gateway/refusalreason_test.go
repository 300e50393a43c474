package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestRefusalReasonIsCutOnACharacter: the verifier's reason in a refused
// token's error_description is cut at 120 bytes on a character boundary
// (tokens.RefusalReason, as the Actions API cuts it): a kid of é's across
// byte 120 was cut inside one, and the body carried invalid UTF-8 (U+FFFD
// once decoded).
func TestRefusalReasonIsCutOnACharacter(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	enc := base64.RawURLEncoding.EncodeToString
	kid := strings.Repeat("k", 120-len(`unknown kid "`)-1) + strings.Repeat("é", 20)
	tok := enc([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"`+kid+`"}`)) + "." + enc([]byte(`{"sub":"u"}`)) + "." + enc([]byte("not a signature"))
	res := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{"protocolVersion": version})})
	var body struct {
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := "access token rejected: " + `unknown kid "` + strings.Repeat("k", 120-len(`unknown kid "`)-1) + "..."
	if res.Status != http.StatusUnauthorized || body.ErrorDescription != want || !utf8.ValidString(body.ErrorDescription) {
		t.Errorf("%d %q, want 401 %q", res.Status, body.ErrorDescription, want)
	}
	if ch := res.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tokens.ChallengeText(want)) {
		t.Errorf("WWW-Authenticate = %q, want error_description %q", ch, tokens.ChallengeText(want))
	}
}
