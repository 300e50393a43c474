package tokens_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
