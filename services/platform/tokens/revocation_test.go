package tokens_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRevokedGrantIsRefusedEvenWhenCached: a verified, cached token of a
// grant that is then revoked is refused like an expired one; tokens of
// other grants and tokens without a grant_id are not affected.
func TestRevokedGrantIsRefusedEvenWhenCached(t *testing.T) {
	r := testharness.StartRedis(t)
	set, err := revocation.New(revocation.Options{Redis: r.Client(), NoSubscribe: true, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iss := tokentest.Start(t, issuer)
	v := newVerifier(t, iss, tokens.VerifierOptions{Revocations: set})
	ctx := context.Background()
	revoked := iss.Mint(t, tokentest.Token{Audience: mcpAud, GrantID: "grant-a"})
	sibling := iss.Mint(t, tokentest.Token{Audience: mcpAud, GrantID: "grant-a", Scope: "openid"})
	other := iss.Mint(t, tokentest.Token{Audience: mcpAud, GrantID: "grant-b"})
	legacy := iss.Mint(t, tokentest.Token{Audience: mcpAud})
	c, err := v.Verify(ctx, revoked)
	if err != nil {
		t.Fatal(err)
	}
	if c.GrantID != "grant-a" {
		t.Fatalf("GrantID = %q", c.GrantID)
	}
	if err := revocation.NewRevoker(r.Client(), time.Hour, set).Revoke(ctx, "grant-a"); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"cached": revoked, "uncached sibling": sibling} {
		_, err := v.Verify(ctx, raw)
		if !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s token of a revoked grant: err = %v, want ErrInvalidToken (revoked)", name, err)
		}
	}
	for name, raw := range map[string]string{"other grant": other, "no grant_id": legacy} {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkVerifyCachedRevocationSet is BenchmarkVerifyCached with a
// revocation set of 10 000 revoked grants (an hour of heavy revoking): the
// added check is a map lookup, no Redis round trip.
func BenchmarkVerifyCachedRevocationSet(b *testing.B) {
	r := testharness.StartRedis(b)
	rdb := r.Client()
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	pipe := rdb.Pipeline()
	for i := range 10000 {
		pipe.ZAdd(context.Background(), rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: "grant-" + strconv.Itoa(i)})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		b.Fatal(err)
	}
	set, err := revocation.New(revocation.Options{Redis: rdb, NoSubscribe: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := set.Reload(context.Background()); err != nil || set.Len() != 10000 {
		b.Fatalf("reload: %v, %d grants", err, set.Len())
	}
	iss := tokentest.Start(b, issuer)
	raw := iss.Mint(b, tokentest.Token{Audience: mcpAud, GrantID: "grant-live"})
	v := newVerifier(b, iss, tokens.VerifierOptions{Revocations: set})
	if _, err := v.Verify(context.Background(), raw); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRemovedClientIsRefusedEvenWhenCached: once a client's removal is
// recorded, Verify (cached token or not) and Recheck refuse its tokens
// issued at or before the removal with ErrInvalidToken "client removed";
// a token it was issued after the removal (the client added back) and
// other clients' tokens are accepted.
func TestRemovedClientIsRefusedEvenWhenCached(t *testing.T) {
	r := testharness.StartRedis(t)
	set, err := revocation.New(revocation.Options{Redis: r.Client(), NoSubscribe: true, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iss := tokentest.Start(t, issuer)
	v := newVerifier(t, iss, tokens.VerifierOptions{Revocations: set})
	ctx := context.Background()
	removedAt := time.Now().Truncate(time.Second).Add(-time.Minute)
	cached := iss.Mint(t, tokentest.Token{Audience: mcpAud, ClientID: "gone", GrantID: "grant-a", IssuedAt: removedAt.Add(-time.Minute)})
	uncached := iss.Mint(t, tokentest.Token{Audience: mcpAud, ClientID: "gone", IssuedAt: removedAt})
	readded := iss.Mint(t, tokentest.Token{Audience: mcpAud, ClientID: "gone", IssuedAt: removedAt.Add(time.Second)})
	other := iss.Mint(t, tokentest.Token{Audience: mcpAud, ClientID: "kept", IssuedAt: removedAt.Add(-time.Minute)})
	held, err := v.Verify(ctx, cached)
	if err != nil {
		t.Fatal(err)
	}
	if err := revocation.NewRevoker(r.Client(), time.Hour, set).RemoveClients(ctx, removedAt, "gone"); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"cached": cached, "uncached, issued in the removal's second": uncached} {
		_, err := v.Verify(ctx, raw)
		if !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "client removed") {
			t.Errorf("%s token of a removed client: err = %v, want ErrInvalidToken (client removed)", name, err)
		}
	}
	if err := v.Recheck(held); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), "client removed") {
		t.Errorf("Recheck of a held token of a removed client: err = %v, want ErrInvalidToken (client removed)", err)
	}
	for name, raw := range map[string]string{"issued after the removal": readded, "another client": other} {
		c, err := v.Verify(ctx, raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := v.Recheck(c); err != nil {
			t.Errorf("Recheck, %s: %v", name, err)
		}
	}
}
