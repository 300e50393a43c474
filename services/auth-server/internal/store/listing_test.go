package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A code redemption whose listing under the subject fails while its script
// redeems the code still succeeds (code.go, redeem): answering 503 there
// would make the client's retry a replay that revokes the grant. The
// subject's index is made a string, so that its ZADD fails (WRONGTYPE) in
// the same pipeline as the script.
func TestRedemptionIsDecidedByItsScriptNotItsListing(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
	if err := rdb.Set(ctx, index, "not a sorted set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, index).Err(); err == nil {
		t.Fatal("the index accepted ZADD: the listing would not fail, the test would prove nothing")
	}

	req := request(t, s, "wl-1")
	if err := s.CreateAuthorizeCodeSession(ctx, "wl-1.c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, "wl-1.c", req, "wl-1.rt1"); err != nil {
		t.Fatalf("redemption with its listing failing: %v, want it redeemed (the script's answer decides)", err)
	}
	// The grant exists and refreshes.
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "wl-1.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the redeemed grant's refresh token: %v", err)
	}
	// The grant is listed again in the background once the key is fixed.
	if err := rdb.Del(ctx, index).Err(); err != nil {
		t.Fatal(err)
	}
	testharness.Eventually(t, 5*time.Second, "the grant whose listing failed listed again", func() (bool, string) {
		list, err := s.Grants(ctx, "user-1", func() fosite.Session { return oauth.NewSession() })
		if err != nil {
			return false, err.Error()
		}
		for _, g := range list {
			if g.ID == "wl-1" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("listed: %v", list)
	})
	// The code was redeemed once: using it again is a replay.
	if err := redeem(ctx, s, "wl-1.c", req, "wl-1.rt9"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) && !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("second redemption: %v, want a replay", err)
	}
}

// A listing that stays broken — the index keeps its wrong type past the
// background re-listing — leaves the redemption succeeded and its grant
// live: the re-listing never fails the request.
func TestRedemptionSucceedsWhenItsRelistingFails(t *testing.T) {
	ctx := context.Background()
	rdb := testharness.StartRedis(t).Client()
	s := newStoreOn(t, rdb, 2*time.Second)
	index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
	if err := rdb.Set(ctx, index, "not a sorted set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	req := request(t, s, "wl-2")
	if err := s.CreateAuthorizeCodeSession(ctx, "wl-2.c", req); err != nil {
		t.Fatal(err)
	}
	if err := redeem(ctx, s, "wl-2.c", req, "wl-2.rt1"); err != nil {
		t.Fatalf("redemption with its listing failing: %v, want it redeemed", err)
	}
	time.Sleep(2 * time.Second) // past the re-listing (1 s), which fails again
	if v, err := rdb.Get(ctx, index).Result(); err != nil || v != "not a sorted set" {
		t.Fatalf("the wrong-typed index: %q, %v; want it left as it was", v, err)
	}
	if _, err := s.GetRefreshTokenSession(store.WithRequestScope(ctx), "wl-2.rt1", oauth.NewSession()); err != nil {
		t.Fatalf("the redeemed grant's refresh token after its re-listing failed: %v", err)
	}
}
