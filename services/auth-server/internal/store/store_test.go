package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

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

func newStore(t *testing.T, grace time.Duration) (*store.Store, *testharness.Redis, *redisx.Client) {
	t.Helper()
	r := testharness.StartRedis(t)
	rdb, err := redisx.New(config.Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port), KeyPrefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	reg, problems := clients.Parse([]byte(`clients:
- client_id: c1
  redirect_uris: ["https://c1.example/cb"]
  token_endpoint_auth_method: none
  resources: ["https://api.example/mcp"]
`), clients.Rules{Resources: []string{"https://api.example/mcp"}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return store.New(rdb, getter{reg}, store.TTLs{Code: time.Minute, Access: time.Hour, Refresh: 24 * time.Hour, Grace: grace}), r, rdb
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

// The store contract, against a real Redis.
func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	t.Run("code round trip and single use under concurrency", func(t *testing.T) {
		s, _, rdb := newStore(t, 0)
		req := request(t, s, "req-1")
		if err := s.CreateAuthorizeCodeSession(ctx, "sig1", req); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAuthorizeCodeSession(ctx, "sig1", oauth.NewSession())
		if err != nil || got.GetID() != "req-1" || got.GetSession().(*oauth.Session).Profile.Email != "u@example.com" {
			t.Fatalf("get: %v %+v", err, got)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.InvalidateAuthorizeCodeSession(ctx, "sig1"); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrCodeReplayed) {
					t.Errorf("invalidate: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d invalidations won, want 1", wins.Load())
		}
		got, err = s.GetAuthorizeCodeSession(ctx, "sig1", oauth.NewSession())
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || got == nil || got.GetID() != "req-1" {
			t.Fatalf("get after use: %v %v (fosite needs the request with the error)", err, got)
		}
		if _, err := s.GetAuthorizeCodeSession(ctx, "nope", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("unknown code: %v", err)
		}
		for _, k := range rdb.Keys(ctx, "*").Val() {
			if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 {
				t.Errorf("%s has no TTL", k)
			}
		}
	})
	t.Run("PKCE survives a delete until the code expires", func(t *testing.T) {
		s, _, _ := newStore(t, 0)
		req := request(t, s, "req-2")
		if err := s.CreatePKCERequestSession(ctx, "sig2", req); err != nil {
			t.Fatal(err)
		}
		_ = s.DeletePKCERequestSession(ctx, "sig2")
		if _, err := s.GetPKCERequestSession(ctx, "sig2", oauth.NewSession()); err != nil {
			t.Fatalf("PKCE session gone after a delete: %v", err)
		}
	})
	t.Run("rotation, grace and family revocation", func(t *testing.T) {
		s, _, _ := newStore(t, time.Hour)
		req := request(t, s, "fam-1")
		if err := s.CreateRefreshTokenSession(ctx, "rt1", "at1", req); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAccessTokenSession(ctx, "at1", req); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateRefreshToken(ctx, "fam-1", "rt1"); err != nil {
			t.Fatal(err)
		}
		// Within the grace period the rotated token still reads and rotates.
		if _, err := s.GetRefreshTokenSession(ctx, "rt1", oauth.NewSession()); err != nil {
			t.Fatalf("rotated token within grace: %v", err)
		}
		if err := s.RotateRefreshToken(ctx, "fam-1", "rt1"); err != nil {
			t.Fatalf("second rotation within grace: %v", err)
		}
		if err := s.RevokeRefreshToken(ctx, "fam-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "rt1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("refresh token after family revocation: %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at1", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("access token after family revocation: %v", err)
		}
		// A token created for a revoked family later is not usable either.
		if err := s.CreateAccessTokenSession(ctx, "at2", req); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAccessTokenSession(ctx, "at2", oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("late access token of a revoked family: %v", err)
		}
	})
	t.Run("reuse after grace", func(t *testing.T) {
		s, _, _ := newStore(t, 0)
		req := request(t, s, "fam-2")
		_ = s.CreateRefreshTokenSession(ctx, "rt1", "", req)
		if err := s.RotateRefreshToken(ctx, "fam-2", "rt1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // grace is 0: any later use is reuse
		got, err := s.GetRefreshTokenSession(ctx, "rt1", oauth.NewSession())
		if !errors.Is(err, fosite.ErrInactiveToken) || got == nil {
			t.Fatalf("rotated token after grace: %v %v (fosite needs the request to revoke the family)", err, got)
		}
		if err := s.RotateRefreshToken(ctx, "fam-2", "rt1"); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("rotating a rotated token after grace: %v", err)
		}
	})
	t.Run("assertion jti single use", func(t *testing.T) {
		s, _, _ := newStore(t, 0)
		exp := time.Now().Add(time.Minute)
		if err := s.ClientAssertionJWTValid(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetClientAssertionJWT(ctx, "j1", exp); err != nil {
			t.Fatal(err)
		}
		if err := s.ClientAssertionJWTValid(ctx, "j1"); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("known jti: %v", err)
		}
		if err := s.SetClientAssertionJWT(ctx, "j1", exp); !errors.Is(err, fosite.ErrJTIKnown) {
			t.Errorf("second set: %v", err)
		}
	})
	t.Run("outage is ErrUnavailable", func(t *testing.T) {
		s, r, _ := newStore(t, 0)
		req := request(t, s, "req-x")
		r.Stop()
		start := time.Now()
		err := s.CreateAuthorizeCodeSession(ctx, "sigx", req)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("create during outage: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "x", oauth.NewSession()); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("get during outage: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("outage errors took %s", d)
		}
	})
}
