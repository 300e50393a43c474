package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/actions-api/internal/api"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// replica runs another actions-api of the same fleet (same Redis, issuer
// and capability-core) and returns its base URL.
func (f *fleet) replica(t *testing.T, overrides map[string]string) (string, *testharness.Service) {
	t.Helper()
	ln := testharness.Listener(t)
	svc := testharness.RunService(t, api.Run, f.env(ln.Addr().String(), overrides), ln)
	return "http://" + svc.Addr("http"), svc
}

// profileStatus is GET /actions/profile on base with tok.
func profileStatus(t *testing.T, base, tok string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/actions/profile", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// refusedWithin polls until /actions/profile answers 401 invalid_token
// saying revoked; the deadline bounds the loop, it is not a speed assertion.
func refusedWithin(t *testing.T, base, tok string, within time.Duration, what string) {
	t.Helper()
	testharness.Eventually(t, within, what+": GET /actions/profile 401 invalid_token (revoked)", func() (bool, string) {
		st, h, body := profileStatus(t, base, tok)
		challenge := h.Get("WWW-Authenticate")
		return st == http.StatusUnauthorized && strings.Contains(challenge, `error="invalid_token"`) &&
			strings.Contains(body, `"invalid_token"`) && strings.Contains(body, "revoked"), fmt.Sprintf("%d %q %s", st, challenge, body)
	})
}

// TestRevokedGrantIsRefused: /actions/profile refuses a revoked grant's
// token like an expired one — after the announcement, on a replica that
// missed it (reconcile) and on an actions-api started afterwards — and
// keeps serving other grants.
func TestRevokedGrantIsRefused(t *testing.T) {
	// The polls below spend the caller's rate-limit buckets until the
	// revocation is seen; limits out of reach keep a 429 from hiding it.
	roomy := func(env map[string]string) map[string]string {
		env["RATE_LIMIT_PER_MINUTE"], env["PUBLIC_RATE_LIMIT_PER_MINUTE"] = "1000000", "1000000"
		return env
	}
	f := start(t, roomy(map[string]string{}))
	rdb, err := redisx.New(config.Redis{URL: f.redis.URL(), KeyPrefix: "tollgate:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	mint := func(grant string) string {
		return f.iss.Mint(t, tokentest.Token{Audience: audience, Scope: "openid profile email", GrantID: grant})
	}
	late, _ := f.replica(t, roomy(map[string]string{"REVOCATION_RECONCILE_INTERVAL": "1s"}))
	revoked, kept := mint("grant-revoked"), mint("grant-kept")
	for _, base := range []string{f.base, late} {
		if st, _, body := profileStatus(t, base, revoked); st != http.StatusOK {
			t.Fatalf("before revocation: %d %s", st, body)
		}
	}
	if err := revocation.NewRevoker(rdb, time.Hour, nil).Revoke(context.Background(), "grant-revoked"); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, f.base, revoked, time.Second, "after the announcement")
	if st, _, body := profileStatus(t, f.base, kept); st != http.StatusOK {
		t.Errorf("another grant: %d %s", st, body)
	}

	// A lost announcement: the record is written without one.
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(context.Background(), rdb.Key("revocation", "grants"), redis.Z{Score: exp, Member: "grant-missed"}).Err(); err != nil {
		t.Fatal(err)
	}
	missed := mint("grant-missed")
	refusedWithin(t, late, missed, 10*time.Second, "replica that missed the announcement")

	// Started after the revocations: loaded before serving.
	restarted, _ := f.replica(t, roomy(map[string]string{"REVOCATION_RECONCILE_INTERVAL": "5m"}))
	refusedWithin(t, restarted, revoked, time.Second, "started after the revocation")
	refusedWithin(t, restarted, missed, time.Second, "started after the revocation (never announced)")
	if st, _, body := profileStatus(t, restarted, kept); st != http.StatusOK {
		t.Errorf("another grant after a restart: %d %s", st, body)
	}
}
