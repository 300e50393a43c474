package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

type getter struct{ s *clients.Static }

func (g getter) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, err := g.s.Get(id)
	if err != nil {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

// clock is a settable test clock.
type clock struct{ ms atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ms.Store(time.Now().UnixMilli()); return c }
func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// setups are the shared standalone, Sentinel and Cluster deployments the
// contract runs against (TestMain).
var setups testharness.RedisSetups

func TestMain(m *testing.M) { testharness.MainWithRedisSetups(m, &setups) }

func newStore(t *testing.T, setup testharness.RedisSetup, grace time.Duration, opts ...store.Option) (*store.Store, *redisx.Client) {
	t.Helper()
	rdb, err := redisx.New(setup.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()); err != nil {
		t.Fatalf("redis ping (%s): %v", setup.Mode(), err)
	}
	return newStoreOn(t, rdb, grace, opts...), rdb
}

func newStoreOn(t *testing.T, rdb *redisx.Client, grace time.Duration, opts ...store.Option) *store.Store {
	t.Helper()
	reg, problems := clients.Parse([]byte(`clients:
- client_id: c1
  redirect_uris: ["https://c1.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://api.example/mcp"]
`), clients.Rules{Resources: []string{"https://api.example/mcp"}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return store.New(rdb, getter{reg}, store.TTLs{Code: time.Minute, Access: time.Hour, Refresh: 24 * time.Hour, Grace: grace}, opts...)
}

func request(t *testing.T, s *store.Store, id string) *fosite.Request {
	t.Helper()
	c, err := s.GetClient(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	sess := oauth.NewSession()
	sess.Subject = "user-1"
	sess.Profile.Email = "u@example.com"
	r := fosite.NewRequest()
	r.ID, r.Client, r.Session = id, c, sess
	r.GrantScope("openid")
	r.GrantAudience("https://api.example/mcp")
	return r
}

// redeem is fosite's code redemption: the code is marked used and the
// grant created in one transaction.
func redeem(ctx context.Context, s *store.Store, codeSig string, r fosite.Requester, refresh string) error {
	ctx, _ = s.BeginTX(ctx)
	if err := s.InvalidateAuthorizeCodeSession(ctx, codeSig); err != nil {
		return err
	}
	if err := s.CreateAccessTokenSession(ctx, "", r); err != nil {
		return err
	}
	if refresh != "" {
		if err := s.CreateRefreshTokenSession(ctx, refresh, "", r); err != nil {
			return err
		}
	}
	return s.Commit(ctx)
}

// rotate is fosite's refresh: rotation and the successor in one transaction.
func rotate(ctx context.Context, s *store.Store, r fosite.Requester, from, to string) error {
	ctx, _ = s.BeginTX(ctx)
	if err := s.RotateRefreshToken(ctx, r.GetID(), from); err != nil {
		return err
	}
	if err := s.CreateAccessTokenSession(ctx, "", r); err != nil {
		return err
	}
	if err := s.CreateRefreshTokenSession(ctx, to, "", r); err != nil {
		return err
	}
	return s.Commit(ctx)
}

// grantBytes is the Redis memory of every key the store holds but the
// sweep mark.
func grantBytes(t *testing.T, rdb *redisx.Client) (keys int, bytes int64) {
	t.Helper()
	ctx := context.Background()
	for _, k := range testharness.RedisKeys(t, rdb) {
		if strings.Contains(k, ":as:subject-sweep:") {
			continue // the interval's sweep mark (subjects.go): the subject's, for a minute, not the grant's
		}
		n, err := rdb.MemoryUsage(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		keys++
		bytes += n
	}
	return keys, bytes
}

// code returns an authorization code of grant id in the oauth package's
// format and its store handle.
func code(id, mac string) (string, string) {
	key := append([]byte{byte(len(id))}, id...)
	key = append(key, make([]byte, 32)...)
	return store.CodePrefix + base64.RawURLEncoding.EncodeToString(key) + "." + mac, id + "." + mac
}

// The store contract, against a real standalone Redis, Sentinel setup and Cluster.
func TestStoreContract(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) { storeContract(t, setup) })
	}
}

func storeContract(t *testing.T, setup testharness.RedisSetup) {
	ctx := context.Background()
	t.Run("one code hash read once per request; single use under concurrency", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		req := request(t, s, "req-1")
		code, sig1 := code("req-1", "sig1")
		if err := s.CreateAuthorizeCodeSession(ctx, sig1, req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePKCERequestSession(ctx, sig1, req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOpenIDConnectSession(ctx, code, req); err != nil {
			t.Fatal(err)
		}
		// One hash, beside the subject's index of outstanding codes
		// (codeends.go), which all the subject's codes share.
		if keys := testharness.RedisKeys(t, rdb); len(keys) != 2 || !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, ":as:subject-codes:") }) {
			t.Fatalf("a code is keys %q, want its hash and the subject's code index", keys)
		}
		// Within a request scope the code is read from Redis once: with the
		// key deleted after the first read, the other parts still resolve.
		rctx := store.WithRequestScope(ctx)
		got, err := s.GetAuthorizeCodeSession(rctx, sig1, oauth.NewSession())
		if err != nil || got.GetID() != "req-1" || got.GetSession().(*oauth.Session).Profile.Email != "u@example.com" {
			t.Fatalf("get: %v %+v", err, got)
		}
		codeKey := rdb.Key("as", "code", "{req-1}", "sig1")
		dump := rdb.Dump(ctx, codeKey).Val()
		rdb.Del(ctx, codeKey)
		if _, err := s.GetPKCERequestSession(rctx, sig1, oauth.NewSession()); err != nil {
			t.Errorf("PKCE within the scope: %v", err)
		}
		if _, err := s.GetOpenIDConnectSession(rctx, code, fosite.NewAccessRequest(oauth.NewSession())); err != nil {
			t.Errorf("OIDC within the scope: %v", err)
		}
		if _, err := s.GetPKCERequestSession(ctx, sig1, oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("PKCE outside the scope after delete: %v", err)
		}
		rdb.Restore(ctx, codeKey, time.Minute, dump)

		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := redeem(ctx, s, sig1, req, "req-1.mac1"); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrCodeReplayed) {
					t.Errorf("redeem: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d redemptions won, want 1", wins.Load())
		}
		got, err = s.GetAuthorizeCodeSession(ctx, sig1, oauth.NewSession())
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || got == nil || got.GetID() != "req-1" {
			t.Fatalf("get after use: %v %v (fosite needs the request with the error)", err, got)
		}
		// The 49 others used the code too: they revoked the winner's grant
		// (OAuth 2.1 §4.1.3), whether they read the code before its commit
		// or after.
		if _, err := s.GetRefreshTokenSession(ctx, "req-1.mac1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("the winner's refresh token after 49 other redemptions: %v, want not found (revoked)", err)
		}
		for _, h := range []string{"nope", "req-1.nope", ""} {
			if _, err := s.GetAuthorizeCodeSession(ctx, h, oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("unknown code %q: %v", h, err)
			}
		}
		if err := redeem(ctx, s, "req-1.nope", req, ""); !errors.Is(err, store.ErrCodeExpired) {
			t.Errorf("redeeming an unknown code: %v", err)
		}
		for _, k := range testharness.RedisKeys(t, rdb) {
			if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 {
				t.Errorf("%s has no TTL", k)
			}
		}
	})
	// A used code's read answers ErrInvalidatedAuthorizeCode with its
	// request and revokes nothing: whether the second use revokes depends
	// on who presents the code, which the oauth package's code handler
	// checks after the read (codes50 #1). RevokeReplayedCode revokes the
	// grant and marks the code, so a later call revokes nothing again.
	// Broken on purpose (the revocation back in the read) the grant is
	// gone after the read.
	t.Run("a used code's read revokes nothing; RevokeReplayedCode revokes once", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		req := request(t, s, "rr-1")
		_, sig := code("rr-1", "c")
		if err := s.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
			t.Fatal(err)
		}
		if err := redeem(ctx, s, sig, req, "rr-1.rt1"); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAuthorizeCodeSession(store.WithRequestScope(ctx), sig, oauth.NewSession())
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || got == nil || got.GetID() != "rr-1" {
			t.Fatalf("read of the used code: %v %v, want its request and ErrInvalidatedAuthorizeCode", err, got)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rr-1.rt1", oauth.NewSession()); err != nil {
			t.Fatalf("the grant after a read of its used code: %v, want live", err)
		}
		rctx := store.WithRequestScope(ctx)
		if _, err := s.GetAuthorizeCodeSession(rctx, sig, oauth.NewSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatal(err)
		}
		if err := s.RevokeReplayedCode(rctx, sig); err != nil {
			t.Fatalf("RevokeReplayedCode: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rr-1.rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("the grant after RevokeReplayedCode: %v, want not found (revoked)", err)
		}
		codeKey := rdb.Key("as", "code", "{rr-1}", "c")
		if v := rdb.HGet(ctx, codeKey, "revoked").Val(); v != "1" {
			t.Fatalf("the code's revoked mark: %q, want 1", v)
		}
		// Marked: a later replay's revocation is not sent (no
		// announcement, no record), one round trip: the code's read.
		counter := countRoundTrips(rdb)
		if err := s.RevokeReplayedCode(store.WithRequestScope(ctx), sig); err != nil || counter.n.Load() != 1 {
			t.Errorf("RevokeReplayedCode of a marked code: %v after %d round trips, want nil after 1 (the read)", err, counter.n.Load())
		}
		for _, h := range []string{"", "nope", "rr-1"} {
			if err := s.RevokeReplayedCode(ctx, h); err != nil {
				t.Errorf("RevokeReplayedCode(%q): %v, want nil (no grant named)", h, err)
			}
		}
	})
	t.Run("a code read ahead is the request's one read", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		req := request(t, s, "pre-1")
		code, sig := code("pre-1", "sig1")
		if err := s.CreateAuthorizeCodeSession(ctx, sig, req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOpenIDConnectSession(ctx, code, req); err != nil {
			t.Fatal(err)
		}
		counter := countRoundTrips(rdb)
		rctx := store.WithRequestScope(ctx)
		s.PrefetchCode(rctx, code)
		s.PrefetchCode(rctx, code) // a second call starts nothing
		got, err := s.GetAuthorizeCodeSession(rctx, sig, oauth.NewSession())
		if err != nil || got.GetID() != "pre-1" {
			t.Fatalf("get after PrefetchCode: %v %+v", err, got)
		}
		if _, err := s.GetOpenIDConnectSession(rctx, code, fosite.NewAccessRequest(oauth.NewSession())); err != nil {
			t.Fatalf("OIDC part after PrefetchCode: %v", err)
		}
		if n := counter.n.Load(); n != 1 {
			t.Fatalf("%d round trips for a prefetched code and two reads, want 1", n)
		}
		// Not a code of ours, or no request scope: nothing is read.
		s.PrefetchCode(store.WithRequestScope(ctx), "not-a-code")
		s.PrefetchCode(ctx, code)
		if n := counter.n.Load(); n != 1 {
			t.Fatalf("%d round trips after PrefetchCode of a foreign code and without a scope, want 1", n)
		}
		// Once redeemed, a read ahead sees it like any read (fosite:
		// invalid_grant, the grant revoked).
		if err := redeem(ctx, s, sig, req, ""); err != nil {
			t.Fatal(err)
		}
		rctx = store.WithRequestScope(ctx)
		s.PrefetchCode(rctx, code)
		if _, err := s.GetAuthorizeCodeSession(rctx, sig, oauth.NewSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("prefetched read of a redeemed code: %v, want ErrInvalidatedAuthorizeCode", err)
		}
	})
	t.Run("deferred redemption: Commit returns at once, the outcome comes at AwaitRedemption", func(t *testing.T) {
		s, _ := newStore(t, setup, 0)
		req := request(t, s, "dfr-1")
		if err := s.CreateAuthorizeCodeSession(ctx, "dfr-1.c", req); err != nil {
			t.Fatal(err)
		}
		rctx := store.WithRequestScope(ctx)
		store.DeferRedemption(rctx)
		if err := redeem(rctx, s, "dfr-1.c", req, "dfr-1.mac1"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		// fosite goes on to change the session (the ID token's claims)
		// while the round trip runs: the record is the session at Commit.
		req.GetSession().(*oauth.Session).Profile.Email = "changed@example.com"
		if err := store.AwaitRedemption(rctx); err != nil {
			t.Fatalf("AwaitRedemption: %v", err)
		}
		if err := store.AwaitRedemption(rctx); err != nil {
			t.Fatalf("a second AwaitRedemption: %v, want nil (nothing pending)", err)
		}
		got, err := s.GetRefreshTokenSession(ctx, "dfr-1.mac1", oauth.NewSession())
		if err != nil || got.GetSession().(*oauth.Session).Profile.Email != "u@example.com" {
			t.Fatalf("the grant after a deferred redemption: %v %+v", err, got)
		}

		// A code that expired before its redemption: Commit still returns
		// nil, the outcome is the error.
		rctx = store.WithRequestScope(ctx)
		store.DeferRedemption(rctx)
		if err := redeem(rctx, s, "dfr-9.c", request(t, s, "dfr-9"), ""); err != nil {
			t.Fatalf("Commit of an expired code: %v", err)
		}
		if err := store.AwaitRedemption(rctx); !errors.Is(err, store.ErrCodeExpired) {
			t.Fatalf("AwaitRedemption of an expired code: %v, want ErrCodeExpired", err)
		}

		// Concurrent deferred redemptions of one code: exactly one wins.
		if err := s.CreateAuthorizeCodeSession(ctx, "dfr-2.c", request(t, s, "dfr-2")); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				rctx := store.WithRequestScope(ctx)
				store.DeferRedemption(rctx)
				if err := redeem(rctx, s, "dfr-2.c", request(t, s, "dfr-2"), "dfr-2.mac1"); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				switch err := store.AwaitRedemption(rctx); {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, store.ErrCodeReplayed):
					t.Errorf("AwaitRedemption: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d deferred redemptions won, want 1", wins.Load())
		}
	})
	t.Run("PKCE survives a delete until the code expires", func(t *testing.T) {
		s, _ := newStore(t, setup, 0)
		req := request(t, s, "req-2")
		// The request part first, as fosite writes a code (its session is
		// the PKCE part's: TestCodeSessionStoredOnce).
		if err := s.CreateAuthorizeCodeSession(ctx, "req-2.sig2", req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePKCERequestSession(ctx, "req-2.sig2", req); err != nil {
			t.Fatal(err)
		}
		_ = s.DeletePKCERequestSession(ctx, "req-2.sig2")
		if _, err := s.GetPKCERequestSession(ctx, "req-2.sig2", oauth.NewSession()); err != nil {
			t.Fatalf("PKCE session gone after a delete: %v", err)
		}
	})
	t.Run("rotation rule", func(t *testing.T) {
		clk := newClock()
		s, _ := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		req := request(t, s, "fam-1")
		if err := redeem(ctx, s, "fam-1.c", req, "fam-1.rt1"); !errors.Is(err, store.ErrCodeExpired) {
			t.Fatalf("redeeming a code never issued: %v", err)
		}
		_ = s.CreateAuthorizeCodeSession(ctx, "fam-1.c", req)
		if err := redeem(ctx, s, "other.c", req, "fam-1.rt1"); err == nil {
			t.Fatal("a code of another grant redeemed for fam-1")
		}
		if err := redeem(ctx, s, "fam-1.c", req, "fam-1.rt1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "fam-1.1900000000", oauth.NewSession()); err != nil {
			t.Fatalf("access token of the grant: %v", err)
		}
		if err := rotate(ctx, s, req, "fam-1.rt1", "fam-1.rt2"); err != nil {
			t.Fatal(err)
		}
		// Within the grace window the rotated token still reads, and a
		// concurrent rotation to the same successor succeeds without change;
		// a different successor would be a second branch: refused.
		clk.add(29 * time.Second)
		if _, err := s.GetRefreshTokenSession(ctx, "fam-1.rt1", oauth.NewSession()); err != nil {
			t.Fatalf("rotated token within grace: %v", err)
		}
		if err := rotate(ctx, s, req, "fam-1.rt1", "fam-1.rt2"); err != nil {
			t.Fatalf("concurrent rotation within grace: %v", err)
		}
		if err := rotate(ctx, s, req, "fam-1.rt1", "fam-1.other"); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("rotation to another successor: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "fam-1.rt2", oauth.NewSession()); err != nil {
			t.Fatalf("successor: %v", err)
		}
		// After the window the rotated token is reuse; the current one works.
		clk.add(2 * time.Second)
		got, err := s.GetRefreshTokenSession(ctx, "fam-1.rt1", oauth.NewSession())
		if !errors.Is(err, fosite.ErrInactiveToken) || got == nil || got.GetID() != "fam-1" {
			t.Fatalf("rotated token after grace: %v %v (fosite needs the request to revoke the grant)", err, got)
		}
		if err := rotate(ctx, s, req, "fam-1.rt1", "fam-1.rt2"); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("rotating a rotated token after grace: %v", err)
		}
		if err := rotate(ctx, s, req, "fam-1.rt2", "fam-1.rt3"); err != nil {
			t.Fatal(err)
		}
		// A token two rotations old is reuse even within the window.
		if _, err := s.GetRefreshTokenSession(ctx, "fam-1.rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("token two rotations old: %v", err)
		}
		// Revoking the grant ends every token of it, in one transaction.
		tctx, _ := s.BeginTX(ctx)
		_ = s.RevokeRefreshToken(tctx, "fam-1")
		_ = s.RevokeAccessToken(tctx, "fam-1")
		if _, err := s.GetRefreshTokenSession(ctx, "fam-1.rt3", oauth.NewSession()); err != nil {
			t.Fatalf("revocation applied before commit: %v", err)
		}
		if err := s.Commit(tctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "fam-1.rt3", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("refresh token after revocation: %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "fam-1.1900000000", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("access token after revocation: %v", err)
		}
		// A rotation racing the revocation does not bring the grant back.
		if err := rotate(ctx, s, req, "fam-1.rt3", "fam-1.rt4"); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("rotation of a revoked grant: %v", err)
		}
		for _, h := range []string{"", "no-mac", "fam-1.", ".mac"} {
			if _, err := s.GetRefreshTokenSession(ctx, h, oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("handle %q: %v", h, err)
			}
		}
	})
	t.Run("a refresh is one round trip, a code grant two; refused requests change nothing", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		req := request(t, s, "rt-1")
		req.GrantScope("profile")
		req.Session.SetExpiresAt(fosite.RefreshToken, clk.now().Add(24*time.Hour))
		codeTok, codeSig := code("rt-1", "c")
		_ = s.CreateAuthorizeCodeSession(ctx, codeSig, req)
		_ = s.CreatePKCERequestSession(ctx, codeSig, req)
		_ = s.CreateOpenIDConnectSession(ctx, codeTok, req)
		standalone := setup.Mode() == config.RedisStandalone
		// Scripts load on first use (EVALSHA, then EVAL): not counted.
		warm := request(t, s, "rt-warm")
		_ = s.CreateAuthorizeCodeSession(ctx, "rt-warm.c", warm)
		if err := redeem(ctx, s, "rt-warm.c", warm, "rt-warm.mac"); err != nil {
			t.Fatal(err)
		}
		counter := countRoundTrips(rdb)
		// The code grant: fosite's four reads of the code, then the
		// redemption with the subject's index.
		rctx := store.WithRequestScope(ctx)
		if _, err := s.GetAuthorizeCodeSession(rctx, codeSig, oauth.NewSession()); err != nil {
			t.Fatal(err)
		}
		_, _ = s.GetPKCERequestSession(rctx, codeSig, oauth.NewSession())
		_, _ = s.GetOpenIDConnectSession(rctx, codeTok, fosite.NewAccessRequest(oauth.NewSession()))
		if err := redeem(rctx, s, codeSig, req, "rt-1.mac-0"); err != nil {
			t.Fatal(err)
		}
		if n := counter.n.Swap(0); standalone && n != 2 {
			t.Errorf("a code grant took %d round trips, want 2", n)
		}
		key := rdb.Key("as", "grant2", redisx.Tag("rt-1"))
		current := func() string { return strings.Split(rdb.Get(ctx, key).Val(), "\n")[1] }
		// Refused by fosite or the token endpoint after the read: the read
		// rotated nothing, and the token stays current.
		for name, mod := range map[string]func(*store.RefreshIntent){
			"another client":               func(in *store.RefreshIntent) { in.ClientID = "c2" },
			"a scope not granted":          func(in *store.RefreshIntent) { in.Scopes = []string{"openid", "email"} },
			"another resource":             func(in *store.RefreshIntent) { in.Resource = "https://other.example/mcp" },
			"a resource that cannot match": func(in *store.RefreshIntent) { in.Resource = store.NoResource },
			"a scope the client lost":      func(in *store.RefreshIntent) { in.ClientScopes = []string{"openid"} },
			"an audience the client lost":  func(in *store.RefreshIntent) { in.ClientAudiences = nil },
			"no refresh scope":             func(in *store.RefreshIntent) { in.RefreshScopes = []string{"offline_access"} },
		} {
			rctx := store.WithRequestScope(ctx)
			in := intent("rt-1.mac-1")
			mod(&in)
			store.ExpectRefresh(rctx, "rt-1.mac-0", in)
			if _, err := s.GetRefreshTokenSession(rctx, "rt-1.mac-0", oauth.NewSession()); err != nil {
				t.Fatalf("%s: read %v", name, err)
			}
			if got := current(); got != "mac-0" {
				t.Fatalf("%s: the read rotated (current %q)", name, got)
			}
		}
		// An expired refresh token: not rotated either (fosite refuses it).
		clk.add(25 * time.Hour)
		rctx = store.WithRequestScope(ctx)
		store.ExpectRefresh(rctx, "rt-1.mac-0", intent("rt-1.mac-1"))
		if _, err := s.GetRefreshTokenSession(rctx, "rt-1.mac-0", oauth.NewSession()); err != nil || current() != "mac-0" {
			t.Fatalf("expired: %v, current %q", err, current())
		}
		clk.add(-25 * time.Hour)
		// A request the script could not clear (a scope it names, in a form
		// the grant does not spell) that fosite accepts: rotated at Commit.
		counter.n.Store(0)
		if _, err := refreshAs(ctx, s, req, "rt-1.mac-0", "rt-1.mac-1", func(in *store.RefreshIntent) { in.ClientAudiences = nil }); err != nil {
			t.Fatal(err)
		}
		if n := counter.n.Swap(0); standalone && n != 2 {
			t.Fatalf("fallback rotation: %d round trips, want 2", n)
		}
		if current() != "mac-1" {
			t.Fatalf("fallback rotation: current %q, want mac-1", current())
		}
		counter.n.Store(0)
		// The common case: one round trip, whatever the number of refreshes.
		for i := 2; i <= 5; i++ {
			clk.add(time.Minute)
			if _, err := refreshAs(ctx, s, req, fmt.Sprintf("rt-1.mac-%d", i-1), fmt.Sprintf("rt-1.mac-%d", i)); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			if n := counter.n.Swap(0); standalone && n != 1 {
				t.Fatalf("refresh %d took %d round trips, want 1", i, n)
			}
		}
		// 20 concurrent refreshes with the current token: all succeed, on
		// one successor; the grant then has that one live token.
		var wg sync.WaitGroup
		var fails atomic.Int32
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := refreshAs(ctx, s, req, "rt-1.mac-5", "rt-1.mac-6"); err != nil {
					fails.Add(1)
					t.Errorf("concurrent refresh: %v", err)
				}
			}()
		}
		wg.Wait()
		if fails.Load() != 0 || current() != "mac-6" {
			t.Fatalf("after 20 concurrent refreshes: %d failed, current %q", fails.Load(), current())
		}
		clk.add(31 * time.Second)
		if _, err := refreshAs(ctx, s, req, "rt-1.mac-5", "rt-1.mac-6"); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("the rotated token after the window: %v, want reuse", err)
		}
	})
	t.Run("access token handle carries the token's expiry", func(t *testing.T) {
		s, _ := newStore(t, setup, 0)
		req := request(t, s, "fam-3")
		_ = s.CreateAuthorizeCodeSession(ctx, "fam-3.c3", req)
		if err := redeem(ctx, s, "fam-3.c3", req, ""); err != nil {
			t.Fatal(err)
		}
		sess := oauth.NewSession()
		if _, err := s.GetAccessTokenSession(ctx, "fam-3.1900000000", sess); err != nil {
			t.Fatal(err)
		}
		if got := sess.GetExpiresAt(fosite.AccessToken); got.Unix() != 1900000000 {
			t.Errorf("expiry %v, want the handle's", got)
		}
	})
	t.Run("a grant is one record and one index entry of constant size whatever the refreshes", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		req := request(t, s, "fam-4")
		_ = s.CreateAuthorizeCodeSession(ctx, "fam-4.c4", req)
		if err := redeem(ctx, s, "fam-4.c4", req, "fam-4.mac-000"); err != nil {
			t.Fatal(err)
		}
		rdb.Del(ctx, rdb.Key("as", "code", "{fam-4}", "c4"))
		rdb.Del(ctx, rdb.Key("as", "subject-codes", redisx.Hash("user-1"))) // the code's index entry (codeends.go)
		var keys1 int
		var bytes1 int64
		for i := 1; i <= 50; i++ {
			clk.add(time.Second)
			req.RequestedAt = clk.now()
			if err := rotate(ctx, s, req, fmt.Sprintf("fam-4.mac-%03d", i-1), fmt.Sprintf("fam-4.mac-%03d", i)); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			if i == 1 {
				keys1, bytes1 = grantBytes(t, rdb)
			}
		}
		keys50, bytes50 := grantBytes(t, rdb)
		// The grant's record and its entry in the subject's index
		// (subjects.go), neither growing with refreshes.
		if keys1 != 2 || keys50 != 2 || bytes1 != bytes50 {
			t.Fatalf("after refresh 1: %d keys, %d bytes; after refresh 50: %d keys, %d bytes (want 2 keys, equal bytes)", keys1, bytes1, keys50, bytes50)
		}
		t.Logf("one grant: %d bytes of Redis memory", bytes50)
	})
	t.Run("a refresh renews the subject's grant index only when the grant would outlive it", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
		req := request(t, s, "ix-1")
		req.Session.SetExpiresAt(fosite.RefreshToken, clk.now().Add(24*time.Hour))
		_ = s.CreateAuthorizeCodeSession(ctx, "ix-1.c", req)
		if err := redeem(ctx, s, "ix-1.c", req, "ix-1.mac-0"); err != nil {
			t.Fatal(err)
		}
		// The index lives a day longer than the grant (subjects.go).
		if ttl := rdb.PTTL(ctx, index).Val(); ttl < 47*time.Hour || ttl > 49*time.Hour {
			t.Fatalf("index TTL after the redemption: %v, want ~48h (the grant's 24h + a day)", ttl)
		}
		// A token request reads the grant, then rotates (fosite's order).
		refresh := func(i int) {
			t.Helper()
			rctx := store.WithRequestScope(ctx)
			if _, err := s.GetRefreshTokenSession(rctx, fmt.Sprintf("ix-1.mac-%d", i-1), oauth.NewSession()); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			req.Session.SetExpiresAt(fosite.RefreshToken, clk.now().Add(24*time.Hour))
			if err := rotate(rctx, s, req, fmt.Sprintf("ix-1.mac-%d", i-1), fmt.Sprintf("ix-1.mac-%d", i)); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
		}
		// Mark the index: a renewal would give it a TTL again.
		rdb.Persist(ctx, index)
		for i := 1; i <= 20; i++ {
			clk.add(time.Hour)
			refresh(i) // the grant now lives until clk + 24h, within the index's day of slack
		}
		if ttl := rdb.PTTL(ctx, index).Val(); ttl != -1 {
			t.Fatalf("index TTL %v after 20 refreshes within its slack: renewed on a refresh that did not need it", ttl)
		}
		clk.add(5 * time.Hour) // 25h after the redemption: the grant would outlive the index
		refresh(21)
		if ttl := rdb.PTTL(ctx, index).Val(); ttl < 47*time.Hour {
			t.Fatalf("index TTL %v after a refresh past its slack, want ~48h", ttl)
		}
		// The record's header: rotation time, then until when the index lives.
		head := strings.Split(rdb.Get(ctx, rdb.Key("as", "grant2", redisx.Tag("ix-1"))).Val(), "\n")
		want := []string{fmt.Sprint(clk.now().UnixMilli()), fmt.Sprint(clk.now().Add(48*time.Hour + time.Minute).UnixMilli())}
		if len(head) < 5 || head[3] != want[0] || head[4] != want[1] {
			t.Fatalf("grant's header %q, want rotated %s and index until %s", head, want[0], want[1])
		}
		if ttl := rdb.PTTL(ctx, rdb.Key("as", "grant2", redisx.Tag("ix-1"))).Val(); ttl < 24*time.Hour {
			t.Fatalf("grant TTL %v after the renewal, want the refresh token's lifetime", ttl)
		}
		// A grant without a refresh token (1h) never shortens the index.
		short := request(t, s, "ix-2")
		_ = s.CreateAuthorizeCodeSession(ctx, "ix-2.c", short)
		if err := redeem(ctx, s, "ix-2.c", short, ""); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, index).Val(); ttl < 47*time.Hour {
			t.Fatalf("index TTL %v after a shorter grant, want ~48h still", ttl)
		}
	})
	t.Run("the subject's grant index holds its live grants and a bounded number of others", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
		grant := func(id string) {
			t.Helper()
			r := request(t, s, id)
			_ = s.CreateAuthorizeCodeSession(ctx, id+".c", r)
			if err := redeem(ctx, s, id+".c", r, id+".rt"); err != nil {
				t.Fatal(err)
			}
		}
		// 100 sign-ins; all but every tenth grant end without the index being
		// read (expiry, or a revocation that does not name the subject).
		for i := range 100 {
			id := fmt.Sprintf("sweep-%03d", i)
			grant(id)
			if i%10 != 0 {
				rdb.Del(ctx, rdb.Key("as", "grant2", redisx.Tag(id)))
			}
			clk.add(2 * time.Minute)
		}
		n := rdb.ZCard(ctx, index).Val()
		if n > 32+10 {
			t.Fatalf("index holds %d members for 10 live grants, want at most 32 more", n)
		}
		for i := 0; i < 100; i += 10 {
			if _, err := rdb.ZScore(ctx, index, fmt.Sprintf("sweep-%03d", i)).Result(); err != nil {
				t.Fatalf("live grant sweep-%03d dropped from the index: %v", i, err)
			}
		}
		// A member younger than a minute is never swept: its grant is
		// listed before it is written.
		rdb.ZAdd(ctx, index, redis.Z{Score: float64(clk.now().UnixMilli()), Member: "on-its-way"})
		for i := range 40 {
			grant(fmt.Sprintf("late-%02d", i))
		}
		if _, err := rdb.ZScore(ctx, index, "on-its-way").Result(); err != nil {
			t.Fatalf("a member younger than a minute was swept: %v", err)
		}
		list, err := s.Grants(ctx, "user-1", func() fosite.Session { return oauth.NewSession() })
		if err != nil || len(list) != 50 {
			t.Fatalf("Grants: %d (%v), want the 50 live ones", len(list), err)
		}
	})
	t.Run("a subject's index is swept once per interval, not on every grant, and stays bounded", func(t *testing.T) {
		clk := newClock()
		clk.ms.Store(clk.ms.Load() / 60_000 * 60_000) // the start of an interval (a minute)
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		index := rdb.Key("as", "subject-grants", redisx.Hash("user-1"))
		var sweeps atomic.Int32 // the sweep's first command, on this subject's set
		rdb.AddHook(afterCommand{name: "zrangebyscore", key: index, fn: func() { sweeps.Add(1) }})
		// Each interval: 40 sign-ins a second apart whose grants end at once
		// (expiry, or a revocation that does not name the subject).
		const perInterval, intervals = 40, 6
		for iv := range intervals {
			before := sweeps.Load()
			for i := range perInterval {
				id := fmt.Sprintf("iv%d-%02d", iv, i)
				r := request(t, s, id)
				_ = s.CreateAuthorizeCodeSession(ctx, id+".c", r)
				if err := redeem(ctx, s, id+".c", r, id+".rt"); err != nil {
					t.Fatal(err)
				}
				rdb.Del(ctx, rdb.Key("as", "grant2", redisx.Tag(id)))
				clk.add(time.Second)
			}
			// The first interval's first grant found one member: no sweep in
			// it, though its last 8 grants found more than 32. Every later
			// interval's first grant finds more than 32 and sweeps, once.
			want := int32(1)
			if iv == 0 {
				want = 0
			}
			if got := sweeps.Load() - before; got != want {
				t.Fatalf("interval %d: %d sweeps over %d grants of one subject, want %d", iv, got, perInterval, want)
			}
			// Bound (subjects.go): none live, so the members added within the
			// last interval and sweep age, two intervals' grants.
			if n := rdb.ZCard(ctx, index).Val(); n > 2*perInterval {
				t.Fatalf("interval %d: index holds %d members, none live, want at most %d", iv, n, 2*perInterval)
			}
			clk.add(time.Minute - perInterval*time.Second)
		}
		// The interval's mark is in the set's hash slot, so the listing's
		// pipeline adds no node to a grant's round trip on a cluster.
		marks := 0
		for _, k := range testharness.RedisKeys(t, rdb) {
			if !strings.Contains(k, "subject-sweep") {
				continue
			}
			marks++
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
				t.Errorf("sweep mark %s TTL %v, want at most a minute", k, ttl)
			}
			if setup.Mode() == config.RedisCluster {
				if a, b := rdb.ClusterKeySlot(ctx, k).Val(), rdb.ClusterKeySlot(ctx, index).Val(); a != b {
					t.Errorf("sweep mark %s in slot %d, the index in %d", k, a, b)
				}
			}
		}
		if marks == 0 {
			t.Error("no sweep mark found")
		}
	})
	t.Run("single-use and cached values (login state, consent, dynamic registrations, metadata documents)", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		type rec struct{ V string }
		if err := s.PutJSON(ctx, "dcr", "client-secret-id", rec{"registered"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		var got rec
		if ok, err := s.GetJSON(ctx, "dcr", "client-secret-id", &got); !ok || err != nil || got.V != "registered" {
			t.Fatalf("get: %v %v %+v", ok, err, got)
		}
		if err := s.Touch(ctx, "dcr", "client-secret-id", time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, k := range testharness.RedisKeys(t, rdb) {
			if strings.Contains(k, "client-secret-id") {
				t.Errorf("key %s holds the secret in the clear", k)
			}
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= time.Minute || ttl > time.Hour {
				t.Errorf("%s TTL %s after Touch(1h)", k, ttl)
			}
		}
		_ = s.PutJSON(ctx, "cimd", "https://client.example/md.json", rec{"doc"}, time.Minute)
		if ok, _ := s.GetJSON(ctx, "cimd", "https://client.example/md.json", &got); !ok || got.V != "doc" {
			t.Errorf("metadata cache: %v %+v", ok, got)
		}
		_ = s.PutJSON(ctx, "pending", "state-1", rec{"login"}, time.Minute)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var r rec
				if ok, err := s.TakeJSON(ctx, "pending", "state-1", &r); ok && err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("login state taken %d times, want 1", wins.Load())
		}
		if err := s.Delete(ctx, "dcr", "client-secret-id"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.GetJSON(ctx, "dcr", "client-secret-id", &got); ok {
			t.Error("deleted registration still read")
		}
		// ReplaceJSON writes only over a value that is there.
		if stored, err := s.ReplaceJSON(ctx, "dcr", "client-secret-id", rec{"rewritten"}, time.Hour); stored || err != nil {
			t.Errorf("replace of a deleted registration: %v %v, want false", stored, err)
		}
		if ok, _ := s.GetJSON(ctx, "dcr", "client-secret-id", &got); ok {
			t.Errorf("replace brought a deleted registration back: %+v", got)
		}
		_ = s.PutJSON(ctx, "dcr", "client-secret-id", rec{"registered"}, time.Minute)
		if stored, err := s.ReplaceJSON(ctx, "dcr", "client-secret-id", rec{"rewritten"}, time.Hour); !stored || err != nil {
			t.Errorf("replace of a registration: %v %v, want true", stored, err)
		}
		if ok, _ := s.GetJSON(ctx, "dcr", "client-secret-id", &got); !ok || got.V != "rewritten" {
			t.Errorf("after replace: %v %+v", ok, got)
		}
		for _, k := range testharness.RedisKeys(t, rdb) {
			if ttl := rdb.PTTL(ctx, k).Val(); strings.Contains(k, ":dcr:") && (ttl <= time.Minute || ttl > time.Hour) {
				t.Errorf("%s TTL %s after ReplaceJSON(1h)", k, ttl)
			}
		}
	})
	t.Run("assertion jti single use, per client", func(t *testing.T) {
		s, _ := newStore(t, setup, 0)
		exp := time.Now().Add(time.Minute)
		if err := s.ClientAssertionJTIValid(ctx, "c1", "j1"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetClientAssertionJTI(ctx, "c1", "j1", exp); err != nil {
			t.Fatal(err)
		}
		if err := s.ClientAssertionJTIValid(ctx, "c1", "j1"); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("known jti: %v", err)
		}
		if err := s.SetClientAssertionJTI(ctx, "c1", "j1", exp); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("second set: %v", err)
		}
		// Another client's jti of the same value is no replay (RFC 7519
		// §4.1.7), and the client id and jti are not run together.
		for _, o := range [][2]string{{"c2", "j1"}, {"c", "1j1"}, {"c1j", "1"}} {
			if err := s.ClientAssertionJTIValid(ctx, o[0], o[1]); err != nil {
				t.Errorf("client %q jti %q after c1's j1: %v", o[0], o[1], err)
			}
			if err := s.SetClientAssertionJTI(ctx, o[0], o[1], exp); err != nil {
				t.Errorf("client %q jti %q after c1's j1: set: %v", o[0], o[1], err)
			}
		}
		// exp is judged as the assertion's integer (brk47): fosite passes
		// time.Unix(exp, 0), which wraps to a date in the past near 2^63.
		now := time.Now()
		for _, tc := range []struct {
			name string
			exp  time.Time
		}{
			{"7 minutes ahead", now.Add(7 * time.Minute)},
			{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
			{"9223372036854774784", time.Unix(9223372036854774784, 0)},
			{"9223371974719180000", time.Unix(9223371974719180000, 0)},
			{"9.2233720368547e18", time.Unix(int64(9.2233720368547e18), 0)},
			{"max int64", time.Unix(math.MaxInt64, 0)},
		} {
			err := s.SetClientAssertionJTI(ctx, "c1", "far "+tc.name, tc.exp)
			if err == nil {
				t.Errorf("exp %s: accepted, want invalid_client, exp too far ahead", tc.name)
			} else if e := fosite.ErrorToRFC6749Error(err); !errors.Is(err, fosite.ErrInvalidClient) || !strings.Contains(e.HintField, "ahead; at most 6m0s is accepted") {
				t.Errorf("exp %s: %v (%q), want invalid_client, exp too far ahead", tc.name, err, e.HintField)
			}
			if err := s.ClientAssertionJTIValid(ctx, "c1", "far "+tc.name); err != nil {
				t.Errorf("exp %s: its jti was recorded (%v)", tc.name, err)
			}
		}
		if err := s.SetClientAssertionJTI(ctx, "c1", "edge", now.Add(6*time.Minute)); err != nil {
			t.Errorf("exp 6 minutes ahead: %v", err)
		}
		// fosite's methods, which name no client, refuse.
		if err := s.ClientAssertionJWTValid(ctx, "j9"); !errors.Is(err, fosite.ErrServerError) {
			t.Errorf("ClientAssertionJWTValid without a client: %v, want server_error", err)
		}
		if err := s.SetClientAssertionJWT(ctx, "j9", exp); !errors.Is(err, fosite.ErrServerError) {
			t.Errorf("SetClientAssertionJWT without a client: %v, want server_error", err)
		}
	})
	t.Run("ExtendUntil only lengthens, never creates", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		if err := s.PutRaw(ctx, "cimd", "doc", []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.ExtendUntil(ctx, "cimd", "doc", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.ExtendUntil(ctx, "cimd", "doc", time.Now().Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.ExtendUntil(ctx, "cimd", "gone", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		keys := 0
		for _, k := range testharness.RedisKeys(t, rdb) {
			if !strings.Contains(k, ":cimd:") {
				continue
			}
			keys++
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
				t.Errorf("%s TTL %s, want the hour it was extended to (not shortened)", k, ttl)
			}
		}
		if keys != 1 {
			t.Errorf("%d keys, want 1: ExtendUntil made one", keys)
		}
	})
	t.Run("assertion exp at most 6 minutes ahead, jti kept no longer", func(t *testing.T) {
		s, rdb := newStore(t, setup, 0)
		now := time.Now()
		for _, tc := range []struct {
			name string
			exp  time.Time
			want string
		}{
			{"10 minutes", now.Add(10 * time.Minute), "s ahead; at most 6m0s is accepted"},
			{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), "days ahead; at most 6m0s is accepted"},
		} {
			err := s.SetClientAssertionJTI(ctx, "c1", "far-"+tc.name, tc.exp)
			if err == nil {
				t.Errorf("exp %s ahead: accepted", tc.name)
			} else if e := fosite.ErrorToRFC6749Error(err); !errors.Is(err, fosite.ErrInvalidClient) || !strings.Contains(e.HintField, tc.want) {
				t.Errorf("exp %s ahead: %v (%q), want invalid_client saying %q", tc.name, err, e.HintField, tc.want)
			}
			if err := s.ClientAssertionJTIValid(ctx, "c1", "far-"+tc.name); err != nil {
				t.Errorf("exp %s ahead: its jti was recorded (%v)", tc.name, err)
			}
		}
		if err := s.SetClientAssertionJTI(ctx, "c1", "near", now.Add(4*time.Minute)); err != nil {
			t.Fatalf("exp 4 minutes ahead: %v", err)
		}
		if err := s.SetClientAssertionJTI(ctx, "c1", "edge", now.Add(6*time.Minute)); err != nil {
			t.Fatalf("exp 6 minutes ahead: %v", err)
		}
		for _, k := range testharness.RedisKeys(t, rdb) {
			if !strings.Contains(k, ":jti:") {
				continue
			}
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 4*time.Minute || ttl > 7*time.Minute {
				t.Errorf("%s TTL %s, want past the assertion's exp and at most 7m", k, ttl)
			}
		}
	})
	t.Run("a grant written by the previous format refreshes and is rewritten", func(t *testing.T) {
		clk := newClock()
		s, rdb := newStore(t, setup, 30*time.Second, store.WithClock(clk.now))
		id, fields := mainRecord(t)
		req := request(t, s, id)
		old := rdb.Key("as", "grant", redisx.Tag(id))
		if err := rdb.HSet(ctx, old, fields).Err(); err != nil {
			t.Fatal(err)
		}
		rdb.Expire(ctx, old, time.Hour)
		// Its access tokens and both of its refresh tokens read as before
		// (the previous one within the grace window of its rotation).
		clk.ms.Store(rotatedAt(t, fields))
		if _, err := s.GetAccessTokenSession(ctx, id+".1900000000", oauth.NewSession()); err != nil {
			t.Fatalf("access token of a format-1 grant: %v", err)
		}
		sess := oauth.NewSession()
		got, err := s.GetRefreshTokenSession(ctx, id+".rt2", sess)
		if err != nil || got.GetClient().GetID() != "c1" || sess.Profile.Email != "dev@example.com" || sess.Claims.Extra["name"] != "Dev User" {
			t.Fatalf("format-1 grant: %v %+v", err, sess)
		}
		if _, err := s.GetRefreshTokenSession(ctx, id+".rt1", oauth.NewSession()); err != nil {
			t.Fatalf("previous token of a format-1 grant within grace: %v", err)
		}
		// Its first refresh (fosite's order, with an intent) rewrites it in
		// format 2, keeping what it stored; the next one is one round trip.
		clk.add(time.Minute)
		if _, err := refreshAs(ctx, s, req, id+".rt2", id+".rt3"); err != nil {
			t.Fatalf("refresh of a format-1 grant: %v", err)
		}
		if rdb.Exists(ctx, old).Val() != 0 {
			t.Fatal("the format-1 hash is still there after the rewrite")
		}
		sess = oauth.NewSession()
		got, err = s.GetRefreshTokenSession(ctx, id+".rt3", sess)
		if err != nil || !slicesEqual(got.GetGrantedScopes(), []string{"openid", "profile", "email"}) || sess.Profile.Name != "Dev User" ||
			sess.Claims.Extra["email_verified"] != true || sess.Headers.Extra["kid"] != "key-1" || sess.Claims.AuthTime.IsZero() {
			t.Fatalf("after the rewrite: %v %v %+v", err, got, sess)
		}
		counter := countRoundTrips(rdb)
		if _, err := refreshAs(ctx, s, req, id+".rt3", id+".rt4"); err != nil {
			t.Fatal(err)
		}
		if setup.Mode() == config.RedisStandalone && counter.n.Load() != 1 {
			t.Errorf("a refresh after the rewrite took %d round trips, want 1", counter.n.Load())
		}
		// A format-1 grant under its key from before hash tags is moved,
		// then rewritten the same way; revocation reaches every key.
		id2 := "legacy-2"
		legacy := rdb.Key("as", "grant", id2)
		f2 := map[string]string{}
		for k, v := range fields {
			f2[k] = strings.ReplaceAll(v, id, id2)
		}
		rdb.HSet(ctx, legacy, f2)
		rdb.Expire(ctx, legacy, time.Hour)
		if _, err := refreshAs(ctx, s, request(t, s, id2), id2+".rt2", id2+".rt3"); err != nil {
			t.Fatalf("refresh of a grant from before hash tags: %v", err)
		}
		if rdb.Exists(ctx, legacy, rdb.Key("as", "grant", redisx.Tag(id2))).Val() != 0 || rdb.Exists(ctx, rdb.Key("as", "grant2", redisx.Tag(id2))).Val() != 1 {
			t.Fatal("a grant from before hash tags was not rewritten")
		}
		rdb.HSet(ctx, legacy, f2)
		if err := s.RevokeGrant(ctx, id2); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, legacy, rdb.Key("as", "grant2", redisx.Tag(id2))).Val(); n != 0 {
			t.Errorf("%d keys of a revoked grant left", n)
		}
	})
	if setup.Mode() != config.RedisStandalone {
		return // the outage case below runs once, on its own server
	}
	t.Run("outage is ErrUnavailable", func(t *testing.T) {
		r := testharness.StartRedis(t)
		s := newStoreOn(t, r.Client(), 0)
		req := request(t, s, "req-x")
		r.Stop()
		start := time.Now()
		err := s.CreateAuthorizeCodeSession(ctx, "req-x.sigx", req)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("create during outage: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "g.mac", oauth.NewSession()); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("get during outage: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("outage errors took %s", d)
		}
	})
	// A revocation whose write fails does not count as done for the rest
	// of the request: the same request revoking the grant again writes
	// again. Broken on purpose (the request's "revoked" mark set before
	// the write, as before this test) the second call returns nil at once
	// and the grant stays live.
	t.Run("a failed revocation is not remembered as done", func(t *testing.T) {
		r := testharness.StartRedis(t)
		rdb := r.Client()
		s := newStoreOn(t, rdb, 0)
		rctx := store.WithRequestScope(ctx)
		r.Stop()
		if err := s.RevokeGrant(rctx, "rv-1"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("revocation with Redis stopped: %v, want ErrUnavailable", err)
		}
		r.Start() // empty: no persistence
		req := request(t, s, "rv-1")
		testharness.Eventually(t, 20*time.Second, "the grant stored once Redis is back", func() (bool, string) {
			tctx, _ := s.BeginTX(ctx)
			if err := s.CreateAccessTokenSession(tctx, "", req); err != nil {
				return false, err.Error()
			}
			if err := s.CreateRefreshTokenSession(tctx, "rv-1.rt1", "", req); err != nil {
				return false, err.Error()
			}
			if err := s.Commit(tctx); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		if _, err := s.GetRefreshTokenSession(ctx, "rv-1.rt1", oauth.NewSession()); err != nil {
			t.Fatalf("the grant before the retried revocation: %v", err)
		}
		if err := s.RevokeGrant(rctx, "rv-1"); err != nil {
			t.Fatalf("the revocation retried in the same request: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rv-1.rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("the grant after the retried revocation: %v, want not found (revoked)", err)
		}
		// Once written, a second revocation in the request is not sent.
		counter := countRoundTrips(rdb)
		if err := s.RevokeGrant(rctx, "rv-1"); err != nil || counter.n.Load() != 0 {
			t.Errorf("a second revocation in the request: %v after %d round trips, want none", err, counter.n.Load())
		}
	})
}
