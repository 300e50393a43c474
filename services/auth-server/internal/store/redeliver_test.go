package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A redemption delivered twice by the client library — go-redis's cluster
// pipeline sends a batch again after a read timeout, and the first
// delivery may already have run — is one redemption: the script finds its
// own nonce in "used" and answers redeemed, so the grant it created is
// kept. Another call of the same code (another nonce) is still a replay
// that revokes the grant.
func TestRedemptionDeliveredTwiceIsOneRedemption(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	store.DeliverRedemptionTwice(s, false)

	req := request(t, s, "rd-1")
	if err := s.CreateAuthorizeCodeSession(ctx, "rd-1.c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, "rd-1.c", req, "rd-1.rt1"); err != nil {
		t.Fatalf("redemption delivered twice: %v, want it redeemed once", err)
	}
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "rd-1.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the grant of a redemption delivered twice: %v, want it live (not revoked)", err)
	}

	// A second call (the client's retry, a replay) has another nonce.
	s2 := newStoreOn(t, rdb, 2*time.Second)
	if err := redeem(ctx, s2, "rd-1.c", req, "rd-1.rt2"); !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("another redemption of the code: %v, want ErrCodeReplayed", err)
	}
	if _, err := s2.GetRefreshTokenSession(store.WithRequestScope(ctx), "rd-1.rt1", oauth.NewSession()); err == nil {
		t.Fatal("the replayed code's grant is live, want it revoked")
	}
}

// A redemption that finds the code redeemed by another call — another
// nonce, delivered just before it — is a replay, as before.
func TestRedemptionAfterAnotherCallIsAReplay(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	store.DeliverRedemptionTwice(s, true)

	req := request(t, s, "rd-2")
	if err := s.CreateAuthorizeCodeSession(ctx, "rd-2.c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, "rd-2.c", req, "rd-2.rt1"); !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("redemption after another call's: %v, want ErrCodeReplayed", err)
	}
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "rd-2.rt1", oauth.NewSession()); err == nil {
		t.Fatal("the replayed code's grant is live, want it revoked")
	}
}
