package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestRemovedClientIsRefused: once the auth-server records that a client
// was removed from its clients file (the Revoker's record and
// announcement, as its reload writes them), /actions/profile refuses that
// client's tokens issued before the removal with 401 invalid_token
// "client removed" — on a running actions-api and on one started
// afterwards — and serves the client's token issued after the removal
// (the client added back) and other clients' tokens.
func TestRemovedClientIsRefused(t *testing.T) {
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
	now := time.Now()
	removedAt := now.Add(-30 * time.Second)
	mint := func(client string, issued time.Time) string {
		return f.iss.Mint(t, tokentest.Token{Audience: audience, ClientID: client, Scope: "openid profile email",
			GrantID: "grant-" + client, IssuedAt: issued})
	}
	removed, readded, kept := mint("removed-app", now.Add(-time.Minute)), mint("removed-app", now), mint("kept-app", now.Add(-time.Minute))
	if st, _, body := profileStatus(t, f.base, removed); st != http.StatusOK {
		t.Fatalf("before the removal: %d %s", st, body)
	}
	if err := revocation.NewRevoker(rdb, time.Hour, nil).RemoveClients(context.Background(), removedAt, "removed-app"); err != nil {
		t.Fatal(err)
	}
	refused := func(base, what string) {
		t.Helper()
		testharness.Eventually(t, 10*time.Second, what+": GET /actions/profile 401 invalid_token (client removed)", func() (bool, string) {
			st, h, body := profileStatus(t, base, removed)
			challenge := h.Get("WWW-Authenticate")
			return st == http.StatusUnauthorized && strings.Contains(challenge, `error="invalid_token"`) &&
				strings.Contains(challenge, "client removed") && strings.Contains(body, "client removed"), fmt.Sprintf("%d %q %s", st, challenge, body)
		})
	}
	refused(f.base, "after the announcement")
	later, _ := f.replica(t, roomy(map[string]string{"REVOCATION_RECONCILE_INTERVAL": "5m"}))
	refused(later, "started after the removal")
	for _, base := range []string{f.base, later} {
		for name, tok := range map[string]string{"issued after the removal": readded, "another client": kept} {
			if st, _, body := profileStatus(t, base, tok); st != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", name, st, body)
			}
		}
	}
}
