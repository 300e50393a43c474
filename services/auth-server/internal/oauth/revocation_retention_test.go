package oauth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/config"
	pconfig "github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestRevokedGrantOutlivesALoweredAccessTokenTTL: a token issued under
// ACCESS_TOKEN_TTL=10m, its grant revoked by an auth-server since
// restarted with 1m, stays refused past 1m + leeway, until the longest
// lifetime any token may have (RFC 7009 §2.2), through real Redis.
func TestRevokedGrantOutlivesALoweredAccessTokenTTL(t *testing.T) {
	rdb := testharness.StartRedis(t).Client()
	ctx := context.Background()
	rev := revocation.NewRevoker(rdb, RevocationRetention(time.Minute), nil)
	if err := rev.Revoke(ctx, "grant-10m"); err != nil {
		t.Fatal(err)
	}
	// A verifier loading the records as the 10-minute token nears its expiry.
	at := time.Now().Add(10 * time.Minute)
	s, err := revocation.New(revocation.Options{Redis: rdb, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Revoked("grant-10m") {
		t.Error("10 minutes after a revocation made with ACCESS_TOKEN_TTL=1m, the grant is no longer refused: a token issued under 10m works again")
	}
	for _, ttl := range []time.Duration{time.Minute, 10 * time.Minute, time.Hour, LongestAccessTokenTTL} {
		if got, want := RevocationRetention(ttl), LongestAccessTokenTTL+90*time.Second; got < want {
			t.Errorf("RevocationRetention(%s) = %s, want ≥ %s", ttl, got, want)
		}
	}
}

// TestLongestAccessTokenTTLIsConfigsBound ties LongestAccessTokenTTL to
// the configuration's upper bound of ACCESS_TOKEN_TTL.
func TestLongestAccessTokenTTLIsConfigsBound(t *testing.T) {
	// Other settings may have problems of their own here; only whether
	// ACCESS_TOKEN_TTL is among them counts.
	ttlRefused := func(ttl time.Duration) bool {
		env := map[string]string{"ACCESS_TOKEN_TTL": ttl.String(), "REFRESH_TOKEN_TTL": "720h"}
		_, err := config.Load(pconfig.MapEnv(env))
		return err != nil && strings.Contains(err.Error(), "ACCESS_TOKEN_TTL")
	}
	if ttlRefused(LongestAccessTokenTTL) {
		t.Fatalf("ACCESS_TOKEN_TTL=%s refused", LongestAccessTokenTTL)
	}
	if !ttlRefused(LongestAccessTokenTTL + time.Second) {
		t.Fatalf("ACCESS_TOKEN_TTL=%s accepted: LongestAccessTokenTTL is not the configuration's bound", LongestAccessTokenTTL+time.Second)
	}
}
