package server_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
)

// TestRevokedGrantLivesUntilItsLastAccessToken: a grant whose latest
// access token an auth-server with ACCESS_TOKEN_TTL=10m issued (a
// refresh), revoked at a replica running 1m, is recorded until that
// token's own expiry, plus the grace window and the verifiers' margin:
// refused at a verifier whose clock is just before the token's expiry
// (RFC 7009 §2.2), and forgotten soon after it — not held for the
// longest lifetime the configuration allows (24 h). Real Redis, real
// tokens, two auth-servers.
func TestRevokedGrantLivesUntilItsLastAccessToken(t *testing.T) {
	f := startFleet(t, map[string]string{"ACCESS_TOKEN_TTL": "10m", "REFRESH_GRACE_PERIOD": "30s"})
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	r := f.refresh(c, tr.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Error)
	}
	claims, err := f.Verifier(f.Base+"/mcp").Verify(ctxT(t), r.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(claims.Expiry); life < 9*time.Minute {
		t.Fatalf("the refreshed access token expires in %s, want about 10m", life)
	}
	short := f.replica(map[string]string{"ACCESS_TOKEN_TTL": "1m"})
	resp, body := short.post("/oauth/revoke", c, url.Values{"token": {r.RefreshToken}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation at the 1m replica: %d %s", resp.StatusCode, body)
	}
	score, err := f.Redis.Client().ZScore(ctxT(t), "tollgate:revocation:grants", claims.GrantID).Result()
	if err != nil {
		t.Fatalf("the grant's revocation record: %v", err)
	}
	until := time.UnixMilli(int64(score))
	// The token's expiry, the grace window (30s), TokenMargin and the
	// second the store adds for fosite's rounding.
	if max := claims.Expiry.Add(30*time.Second + revocation.TokenMargin + 2*time.Second); until.After(max) {
		t.Errorf("the record lives until %s after the token's expiry, want at most %s (the token's own expiry + grace + margin)",
			until.Sub(claims.Expiry).Round(time.Second), max.Sub(claims.Expiry).Round(time.Second))
	}
	rdb, err := redisx.New(config.Redis{URL: f.Redis.URL(), KeyPrefix: "tollgate:"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	at := func(when time.Time) bool {
		s, err := revocation.New(revocation.Options{Redis: rdb, Now: func() time.Time { return when }})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return s.Revoked(claims.GrantID)
	}
	if !at(claims.Expiry.Add(-time.Second)) {
		t.Error("a second before the 10m token's expiry, its revoked grant is no longer refused (the 1m replica's retention)")
	}
	if at(until.Add(time.Second)) {
		t.Error("the grant is still refused once its record has expired")
	}
}
