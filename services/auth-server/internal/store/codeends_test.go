package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// A user's disconnect of an app ends the app's codes for the user that
// are not redeemed yet (codes50 #2; store.EndCodes): each is refused at
// its read and at its redemption — also when the request read it before
// the disconnect — and creates no grant; a code redeemed before is left
// to the disconnect's revocation of the grants; another app's code, and
// a code issued after the disconnect, redeem. The index of a subject's
// codes lives no longer than its last code. In every Redis mode.
//
// Broken on purpose (redeemScript without its "ended" check) the code
// read before the disconnect redeems into a grant.
func TestEndCodes(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { endCodes(t, setup) })
	}
}

func endCodes(t *testing.T, setup testharness.RedisSetup) {
	ctx := context.Background()
	clk := newClock()
	s, rdb := newStore(t, setup, 0, store.WithClock(clk.now))
	create := func(id string, mod ...func(*fosite.Request)) (*fosite.Request, string) {
		t.Helper()
		req := request(t, s, id)
		for _, m := range mod {
			m(req)
		}
		_, sig := code(id, "c")
		if err := s.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
			t.Fatal(err)
		}
		return req, sig
	}
	otherClient := func(r *fosite.Request) { r.Client = &fosite.DefaultClient{ID: "c2"} }
	otherUser := func(r *fosite.Request) { r.Session.(*oauth.Session).Subject = "user-2" }

	pendingReq, pending := create("end-1")    // read, then ended, then redeemed
	_, unread := create("end-2")              // ended before any read
	redeemedReq, redeemed := create("end-3")  // redeemed before the disconnect
	create("end-4", otherClient)              // another app of the user
	_, otherSub := create("end-5", otherUser) // another user's code of the app
	if err := redeem(ctx, s, redeemed, redeemedReq, "end-3.rt1"); err != nil {
		t.Fatal(err)
	}
	rctx := readCode(t, ctx, s, pending)

	n, ids, err := s.EndCodes(ctx, "user-1", "c1")
	if err != nil || n != 2 || !slices.Equal(ids, []string{"end-3"}) {
		t.Fatalf("EndCodes: %d, %q, %v; want 2 ended and the redeemed code's grant end-3", n, ids, err)
	}
	if err := redeem(rctx, s, pending, pendingReq, "end-1.rt1"); !errors.Is(err, store.ErrCodeEnded) {
		t.Fatalf("redeeming a code read before the disconnect: %v, want ErrCodeEnded", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "end-1.rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("the ended code's grant: %v, want none", err)
	}
	for _, sig := range []string{pending, unread} {
		got, err := s.GetAuthorizeCodeSession(store.WithRequestScope(ctx), sig, oauth.NewSession())
		if !errors.Is(err, store.ErrCodeEnded) || got == nil {
			t.Errorf("reading ended code %s: %v %v, want its request and ErrCodeEnded", sig, got, err)
		}
	}
	// The redeemed code is not marked: its grant is the disconnect's to
	// revoke (EndCodes named it), and a replay of it is still a replay.
	if v := rdb.HGet(ctx, rdb.Key("as", "code", redisx.Tag("end-3"), "c"), "ended").Val(); v != "" {
		t.Errorf("the redeemed code was marked ended: %q", v)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, redeemed, oauth.NewSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Errorf("the redeemed code after the disconnect: %v, want ErrInvalidatedAuthorizeCode", err)
	}
	for _, id := range []string{"end-4", "end-5"} {
		if v := rdb.HGet(ctx, rdb.Key("as", "code", redisx.Tag(id), "c"), "ended").Val(); v != "" {
			t.Errorf("code %s of another app or user was marked ended: %q", id, v)
		}
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, otherSub, oauth.NewSession()); err != nil {
		t.Errorf("another user's code of the app after the disconnect: %v, want usable", err)
	}
	if n, ids, err := s.EndCodes(ctx, "user-1", "c1"); err != nil || n != 2 || !slices.Equal(ids, []string{"end-3"}) {
		t.Errorf("EndCodes again: %d, %q, %v; want the same 2 and end-3 (idempotent)", n, ids, err)
	}
	// Once the redeemed code's grant is revoked, it is not named again.
	if err := s.RevokeGrant(ctx, "end-3"); err != nil {
		t.Fatal(err)
	}
	if n, ids, err := s.EndCodes(ctx, "user-1", "c1"); err != nil || n != 2 || len(ids) != 0 {
		t.Errorf("EndCodes after the grant's revocation: %d, %q, %v; want 2 and no grant", n, ids, err)
	}
	if n, ids, err := s.EndCodes(ctx, "nobody", "c1"); err != nil || n != 0 || len(ids) != 0 {
		t.Errorf("EndCodes of a subject without codes: %d, %q, %v", n, ids, err)
	}

	// A code issued after the disconnect (the user links the app again).
	afterReq, after := create("end-6")
	if err := redeem(readCode(t, ctx, s, after), s, after, afterReq, "end-6.rt1"); err != nil {
		t.Fatalf("a code issued after the disconnect: %v", err)
	}

	// The index lives no longer than its codes (a minute here), and once
	// they expired it holds nothing to end.
	index := rdb.Key("as", "subject-codes", redisx.Hash("user-1"))
	if ttl := rdb.PTTL(ctx, index).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("the code index's TTL %v, want at most the code TTL (1m)", ttl)
	}
	if setup.Mode() == config.RedisCluster {
		t.Logf("code index in slot %d, a code in %d (separate scripts: no CROSSSLOT)",
			rdb.ClusterKeySlot(ctx, index).Val(), rdb.ClusterKeySlot(ctx, rdb.Key("as", "code", redisx.Tag("end-1"), "c")).Val())
	}
	// Past the codes' expiry (Redis drops them at their TTL: the test's
	// clock does not move Redis's, so they are deleted here), and past the
	// index's sweep margin of AUTH_CODE_TTL more.
	clk.add(2*time.Minute + time.Second)
	for _, id := range []string{"end-1", "end-2", "end-3", "end-4", "end-5", "end-6"} {
		rdb.Del(ctx, rdb.Key("as", "code", redisx.Tag(id), "c"))
	}
	if n, ids, err := s.EndCodes(ctx, "user-1", "c1"); err != nil || n != 0 || len(ids) != 0 {
		t.Errorf("EndCodes once the codes expired: %d, %q, %v; want 0", n, ids, err)
	}
	_, later := create("end-7")
	if got := rdb.ZRange(ctx, index, 0, -1).Val(); len(got) != 1 || got[0] != later+" c1" {
		t.Errorf("index after a new code past the others' expiry: %q, want only the new one", got)
	}
	if setup.Mode() == config.RedisStandalone {
		t.Logf("the code index with one member: %d bytes", rdb.MemoryUsage(ctx, index).Val())
	}
}
