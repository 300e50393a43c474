package server_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIntrospectionRefreshTokenExp: RFC 7662 §2.2 over real HTTP and
// Redis — an active refresh token introspected by its owner says when it
// dies: exp is its issue time plus REFRESH_TOKEN_TTL (here 7h, so neither
// the access token's 1h nor the default), and after a refresh the
// successor's exp is counted from the refresh; client_id, scope, sub and
// aud are the grant's, as the access token's answer says them (iat is the
// token's: TestIntrospectionIatIsTheTokens). Before,
// fosite's writer read only the access-token expiry, which a refresh
// token's grant does not hold: no exp at all.
func TestIntrospectionRefreshTokenExp(t *testing.T) {
	const ttl = 7 * time.Hour
	f := startFleetWith(t, map[string]string{"REFRESH_TOKEN_TTL": ttl.String()}, "")
	owner := f.Clients["local-test"]
	a := newAuthRequest(owner)
	a.Scope = "openid profile offline_access"
	issued := time.Now()
	tr := f.fullFlow(owner, a)
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	ask := func(token string) map[string]any {
		t.Helper()
		resp, b := f.post("/oauth/introspect", owner, url.Values{"token": {token}})
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("introspection: %d %s", resp.StatusCode, b)
		}
		return m
	}
	at := ask(tr.AccessToken)
	if at["active"] != true || at["sub"] == nil {
		t.Fatalf("access token: %v", at)
	}
	check := func(m map[string]any, from time.Time, what string) {
		t.Helper()
		if m["active"] != true || m["token_use"] != "refresh_token" {
			t.Fatalf("%s: %v, want an active refresh token", what, m)
		}
		exp, ok := m["exp"].(float64)
		if !ok {
			t.Fatalf("%s: %v, want exp", what, m)
		}
		// Issued between from and now; fosite rounds the expiry to a second.
		lo, hi := from.Add(ttl).Add(-time.Second).Unix(), time.Now().Add(ttl).Add(time.Second).Unix()
		if int64(exp) < lo || int64(exp) > hi || exp != math.Trunc(exp) {
			t.Errorf("%s: exp %v (%s), want within [%d, %d]: issued plus REFRESH_TOKEN_TTL %s", what, exp, time.Unix(int64(exp), 0).UTC(), lo, hi, ttl)
		}
		iat, _ := m["iat"].(float64)
		if iat == 0 || int64(iat) > time.Now().Unix() || int64(iat) < issued.Add(-time.Second).Unix() {
			t.Errorf("%s: iat %v, want the grant's issue time", what, m["iat"])
		}
		scope, _ := m["scope"].(string)
		if m["client_id"] != owner.ClientID || m["sub"] != at["sub"] || !slices.Contains(strings.Fields(scope), "offline_access") || !slices.Contains(strings.Fields(scope), "profile") {
			t.Errorf("%s: %v, want client_id %s, sub %v and the granted scope", what, m, owner.ClientID, at["sub"])
		}
		if aud, _ := json.Marshal(m["aud"]); m["aud"] == nil || string(aud) != mustJSON(at["aud"]) {
			t.Errorf("%s: aud %s, want the access token's %s", what, aud, mustJSON(at["aud"]))
		}
	}
	check(ask(tr.RefreshToken), issued, "refresh token")

	time.Sleep(1100 * time.Millisecond) // the successor's expiry is a later second
	refreshed := time.Now()
	next := f.refresh(owner, tr.RefreshToken)
	if next.Status != http.StatusOK || next.RefreshToken == "" {
		t.Fatalf("refresh: %d %s %s", next.Status, next.Error, next.Description)
	}
	check(ask(next.RefreshToken), refreshed, "successor")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
