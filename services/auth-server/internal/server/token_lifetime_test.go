package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestTokenLifetimeIsExpiresIn: every token response's expires_in is its
// access token's exp - iat exactly (RFC 6749 §5.1: the lifetime; RFC 9068
// §2.2), and its ID token's exp - iat is ID_TOKEN_TTL — at the code
// exchange and at each of many refreshes. exp came from fosite's clock
// reading rounded to the second and iat from a later one truncated: about
// half the tokens said exp - iat = 3601 with expires_in 3600.
func TestTokenLifetimeIsExpiresIn(t *testing.T) {
	f := startFleet(t, map[string]string{"ACCESS_TOKEN_TTL": "1h", "ID_TOKEN_TTL": "30m"})
	c := f.Clients["local-test"]
	times := func(raw string) (iat, exp int64) {
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("not a JWS: %q", raw)
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		var claims struct{ Iat, Exp int64 }
		if err != nil || json.Unmarshal(b, &claims) != nil {
			t.Fatalf("claims of %q: %v %s", raw, err, b)
		}
		return claims.Iat, claims.Exp
	}
	check := func(name string, tr tokenResponse, idToken bool) {
		t.Helper()
		if tr.Status != http.StatusOK || tr.AccessToken == "" || idToken && tr.IDToken == "" {
			t.Fatalf("%s: %d %s: %s", name, tr.Status, tr.Error, tr.Description)
		}
		if iat, exp := times(tr.AccessToken); tr.ExpiresIn != 3600 || exp-iat != int64(tr.ExpiresIn) {
			t.Errorf("%s: access token exp - iat = %d - %d = %d s, expires_in %d s, want both 3600", name, exp, iat, exp-iat, tr.ExpiresIn)
		}
		if tr.IDToken == "" {
			return
		}
		if iat, exp := times(tr.IDToken); exp-iat != 1800 {
			t.Errorf("%s: ID token exp - iat = %d - %d = %d s, want 1800 (ID_TOKEN_TTL)", name, exp, iat, exp-iat)
		}
	}
	// A token whose clock reading fell in the second half of a second was
	// off by one: 40 access tokens all in the first half is 2^-40.
	for i := range 8 {
		tr := f.fullFlow(c, newAuthRequest(c))
		check(fmt.Sprintf("code exchange %d", i+1), tr, true)
		for j := range 4 {
			next := f.refresh(c, tr.RefreshToken)
			check(fmt.Sprintf("code exchange %d, refresh %d", i+1, j+1), next, false)
			tr = next
		}
	}
}
