package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestIntrospectionIatIsTheTokens: RFC 7662 §2.2's iat is when the
// introspected token was issued, over real HTTP and Redis. After a
// refresh_token grant, the new access token's answer has the token's own
// iat (its JWT iat claim) and the new refresh token's the time of the
// refresh, not the grant's sign-in. Before, both answered the grant's
// original time (the time fosite's writer reads: the request the grant
// was created with).
func TestIntrospectionIatIsTheTokens(t *testing.T) {
	f := startFleet(t, nil)
	owner := f.Clients["local-test"]
	a := newAuthRequest(owner)
	a.Scope = "openid profile offline_access"
	tr := f.fullFlow(owner, a)
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	ask := func(token string) map[string]any {
		t.Helper()
		resp, b := f.post("/oauth/introspect", owner, url.Values{"token": {token}})
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != http.StatusOK || m["active"] != true {
			t.Fatalf("introspection: %d %s, want an active token", resp.StatusCode, b)
		}
		return m
	}
	iat := func(m map[string]any, what string) int64 {
		t.Helper()
		v, ok := m["iat"].(float64)
		if !ok {
			t.Fatalf("%s: %v, want iat", what, m)
		}
		return int64(v)
	}
	signIn := jwtIat(t, tr.AccessToken)
	if got := iat(ask(tr.AccessToken), "access token"); got != signIn {
		t.Errorf("access token: iat %d, want its JWT iat %d", got, signIn)
	}
	if got := iat(ask(tr.RefreshToken), "refresh token"); got < signIn-1 || got > time.Now().Unix() {
		t.Errorf("refresh token: iat %d, want the sign-in (%d)", got, signIn)
	}

	// The refresh is in a later second than the sign-in (bounded: ~2 s).
	for i := 0; i < 40 && time.Now().Unix() <= signIn; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	refreshed := time.Now().Unix()
	if refreshed <= signIn {
		t.Fatalf("clock did not pass %d", signIn)
	}
	next := f.refresh(owner, tr.RefreshToken)
	if next.Status != http.StatusOK || next.RefreshToken == "" || next.AccessToken == "" {
		t.Fatalf("refresh: %d %s %s", next.Status, next.Error, next.Description)
	}
	own := jwtIat(t, next.AccessToken)
	if own < refreshed {
		t.Fatalf("new access token's JWT iat %d is before the refresh (%d)", own, refreshed)
	}
	if got := iat(ask(next.AccessToken), "new access token"); got != own {
		t.Errorf("new access token: iat %d, want its JWT iat %d (the grant's sign-in was %d)", got, own, signIn)
	}
	if got := iat(ask(next.RefreshToken), "new refresh token"); got < refreshed || got > time.Now().Unix() {
		t.Errorf("new refresh token: iat %d, want the refresh's time, within [%d, now] (the grant's sign-in was %d)", got, refreshed, signIn)
	}
	// The token issued at sign-in still answers its own time.
	if got := iat(ask(tr.AccessToken), "first access token"); got != signIn {
		t.Errorf("first access token after the refresh: iat %d, want %d", got, signIn)
	}
}

// jwtIat is the iat claim of a JWT, read without verifying it.
func jwtIat(t *testing.T, tok string) int64 {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iat int64 `json:"iat"`
	}
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Iat == 0 {
		t.Fatalf("JWT payload %s: %v, want iat", b, err)
	}
	return c.Iat
}
