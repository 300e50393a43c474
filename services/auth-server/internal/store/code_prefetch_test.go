package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// A code read ahead (PrefetchCode) is only a read: what happens to the code
// between that read and the deferred redemption is the redemption
// script's to see. On standalone, Sentinel and Cluster:
//   - the code expires (its key gone) after the read: AwaitRedemption says
//     ErrCodeExpired, nothing is stored;
//   - another request redeems it after the read: AwaitRedemption says
//     ErrCodeReplayed and the other request's grant is revoked (OAuth 2.1
//     §4.1.3);
//   - the request's context is canceled before Commit: AwaitRedemption
//     returns an error (no tokens), and the code is still the client's.
func TestPrefetchedCodeChangesBeforeRedemption(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			s, rdb := newStore(t, setup, 0)

			// Expired between read and redemption.
			req := request(t, s, "pfx-1")
			code1, sig1 := code("pfx-1", "m1")
			if err := s.CreateAuthorizeCodeSession(ctx, sig1, req); err != nil {
				t.Fatal(err)
			}
			rctx := store.WithRequestScope(ctx)
			s.PrefetchCode(rctx, code1)
			if _, err := s.GetAuthorizeCodeSession(rctx, sig1, oauth.NewSession()); err != nil {
				t.Fatalf("read ahead: %v", err)
			}
			key := rdb.Key("as", "code", "{pfx-1}", "m1")
			if n := rdb.Del(ctx, key).Val(); n != 1 {
				t.Fatalf("DEL %s: %d keys (the code's key is not where the test thinks)", key, n)
			}
			store.DeferRedemption(rctx)
			if err := redeem(rctx, s, sig1, req, "pfx-1.rt"); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if err := store.AwaitRedemption(rctx); !errors.Is(err, store.ErrCodeExpired) {
				t.Fatalf("AwaitRedemption of a code expired after its read: %v, want ErrCodeExpired", err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "pfx-1.rt", oauth.NewSession()); err == nil {
				t.Fatal("a grant stored for an expired code")
			}

			// Redeemed by another request between read and redemption.
			req2 := request(t, s, "pfx-2")
			code2, sig2 := code("pfx-2", "m2")
			if err := s.CreateAuthorizeCodeSession(ctx, sig2, req2); err != nil {
				t.Fatal(err)
			}
			rctx = store.WithRequestScope(ctx)
			s.PrefetchCode(rctx, code2)
			if _, err := s.GetAuthorizeCodeSession(rctx, sig2, oauth.NewSession()); err != nil {
				t.Fatalf("read ahead: %v", err)
			}
			wctx := store.WithRequestScope(ctx)
			store.DeferRedemption(wctx)
			if err := redeem(wctx, s, sig2, request(t, s, "pfx-2"), "pfx-2.winner"); err != nil {
				t.Fatal(err)
			}
			if err := store.AwaitRedemption(wctx); err != nil {
				t.Fatalf("the other request's redemption: %v", err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "pfx-2.winner", oauth.NewSession()); err != nil {
				t.Fatalf("the winner's grant: %v", err)
			}
			store.DeferRedemption(rctx)
			if err := redeem(rctx, s, sig2, req2, "pfx-2.loser"); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if err := store.AwaitRedemption(rctx); !errors.Is(err, store.ErrCodeReplayed) {
				t.Fatalf("AwaitRedemption of a code redeemed after its read: %v, want ErrCodeReplayed", err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "pfx-2.winner", oauth.NewSession()); err == nil {
				t.Fatal("the winner's grant survives a replay of its code (OAuth 2.1 §4.1.3: revoke)")
			}

			// The request's context canceled before Commit.
			req3 := request(t, s, "pfx-3")
			code3, sig3 := code("pfx-3", "m3")
			if err := s.CreateAuthorizeCodeSession(ctx, sig3, req3); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			rctx = store.WithRequestScope(cctx)
			s.PrefetchCode(rctx, code3)
			if _, err := s.GetAuthorizeCodeSession(rctx, sig3, oauth.NewSession()); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("read ahead: %v", err)
			}
			cancel()
			store.DeferRedemption(rctx)
			if err := redeem(rctx, s, sig3, req3, "pfx-3.rt"); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if err := store.AwaitRedemption(rctx); err == nil {
				t.Fatal("AwaitRedemption with the request's context canceled: nil (tokens would be issued)")
			}
			if _, err := s.GetAuthorizeCodeSession(ctx, sig3, oauth.NewSession()); err != nil {
				t.Fatalf("the code after a canceled redemption: %v (burned)", err)
			}
			if err := redeem(ctx, s, sig3, request(t, s, "pfx-3"), "pfx-3.rt"); err != nil {
				t.Fatalf("the code redeemed after a canceled redemption: %v", err)
			}
		})
	}
}
