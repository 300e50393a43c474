package store_test

import (
	"context"
	"errors"
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
	rdb, err := redisx.New(testharness.StartRedis(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
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
	// The code was redeemed once: using it again is a replay.
	if err := redeem(ctx, s, "wl-1.c", req, "wl-1.rt9"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) && !errors.Is(err, store.ErrCodeReplayed) {
		t.Fatalf("second redemption: %v, want a replay", err)
	}
}
