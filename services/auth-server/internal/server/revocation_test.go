package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/revocation"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// follower is a verifier of another service watching the auth-server's
// Redis as the fleet's verifiers do (default key prefix).
type follower struct {
	set *revocation.Set
	v   *tokens.Verifier
}

func (f *fleet) follower(o revocation.Options) follower {
	f.t.Helper()
	rdb, err := redisx.New(config.Redis{URL: f.Redis.URL(), KeyPrefix: "tollgate:"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = rdb.Close() })
	o.Redis = rdb
	set, err := revocation.New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	set.Start(ctx)
	v := tokens.NewVerifier(tokens.VerifierOptions{Source: f.KeySource(), Audiences: []string{f.Base + "/mcp", f.Base + "/actions"}, Revocations: set})
	return follower{set: set, v: v}
}

// refusedWithin polls until v refuses raw as revoked; the deadline bounds
// the loop, it is not a measurement.
func refusedWithin(t *testing.T, v *tokens.Verifier, raw string, within time.Duration, what string) {
	t.Helper()
	testharness.Eventually(t, within, what+": refused as revoked", func() (bool, string) {
		_, err := v.Verify(context.Background(), raw)
		return errors.Is(err, tokens.ErrInvalidToken) && strings.Contains(err.Error(), "revoked"), fmt.Sprint(err)
	})
}

// TestAccessTokensNameTheirGrant: the grant_id claim is the same in every
// access token of a grant (code exchange and each refresh) and differs
// between grants.
func TestAccessTokensNameTheirGrant(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	v := f.Verifier(f.Base + "/mcp")
	tr := f.fullFlow(c, newAuthRequest(c))
	first, err := v.Verify(ctxT(t), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if first.GrantID == "" {
		t.Fatal("access token has no grant_id")
	}
	r := f.refresh(c, tr.RefreshToken)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Error)
	}
	again, err := v.Verify(ctxT(t), r.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if again.GrantID != first.GrantID {
		t.Errorf("grant_id changed on refresh: %q → %q", first.GrantID, again.GrantID)
	}
	other := f.fullFlow(c, newAuthRequest(c))
	if oc, err := v.Verify(ctxT(t), other.AccessToken); err != nil || oc.GrantID == first.GrantID {
		t.Errorf("a second grant: %v, grant_id %q (first %q)", err, oc.GrantID, first.GrantID)
	}
}

// TestRevocationReachesEveryVerifier: RFC 7009 revocation of either token
// makes a subscribed verifier, a verifier started afterwards (restart) and
// a verifier that never hears announcements (reconcile only) refuse the
// grant's access tokens, even one already verified and cached; userinfo
// answers 401; another grant is unaffected.
func TestRevocationReachesEveryVerifier(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	live := f.follower(revocation.Options{ReconcileInterval: time.Hour})
	deaf := f.follower(revocation.Options{NoSubscribe: true, ReconcileInterval: time.Second})

	for _, hint := range []string{"refresh_token", "access_token"} {
		t.Run("revoke "+hint, func(t *testing.T) {
			tr := f.fullFlow(c, newAuthRequest(c))
			kept := f.fullFlow(c, newAuthRequest(c))
			for _, fl := range []follower{live, deaf} {
				if _, err := fl.v.Verify(ctxT(t), tr.AccessToken); err != nil {
					t.Fatalf("before revocation: %v", err)
				}
			}
			tok := tr.RefreshToken
			if hint == "access_token" {
				tok = tr.AccessToken
			}
			resp, body := f.post("/oauth/revoke", c, url.Values{"token": {tok}, "token_type_hint": {hint}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d %s", resp.StatusCode, body)
			}
			refusedWithin(t, live.v, tr.AccessToken, time.Second, "subscribed verifier")
			if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
				t.Errorf("userinfo after revocation: %d, want 401", st)
			}
			refusedWithin(t, f.follower(revocation.Options{NoSubscribe: true, ReconcileInterval: time.Hour}).v, tr.AccessToken, time.Second, "verifier started after the revocation")
			refusedWithin(t, deaf.v, tr.AccessToken, 10*time.Second, "verifier that missed the announcement")
			for _, fl := range []follower{live, deaf} {
				if _, err := fl.v.Verify(ctxT(t), kept.AccessToken); err != nil {
					t.Errorf("another grant after the revocation: %v", err)
				}
			}
			if st, _ := f.userinfo(kept.AccessToken); st != http.StatusOK {
				t.Errorf("userinfo of another grant: %d", st)
			}
		})
	}
}

// TestReplayAndReuseRevokeEverywhere: a replayed authorization code and a
// reused refresh token revoke the grant for the whole fleet, not only in
// the auth-server's store.
func TestReplayAndReuseRevokeEverywhere(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "0s"})
	c := f.Clients["gpt-apps-mcp"]
	live := f.follower(revocation.Options{ReconcileInterval: time.Hour})

	t.Run("replayed code", func(t *testing.T) {
		a := newAuthRequest(c)
		code := f.authorize(a)
		tr := f.exchange(c, a, code)
		if tr.Status != http.StatusOK {
			t.Fatalf("exchange: %d %s", tr.Status, tr.Error)
		}
		if _, err := live.v.Verify(ctxT(t), tr.AccessToken); err != nil {
			t.Fatal(err)
		}
		if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("replay: %d %s", r.Status, r.Error)
		}
		refusedWithin(t, live.v, tr.AccessToken, time.Second, "after a code replay")
	})
	t.Run("refresh reuse", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		r1 := f.refresh(c, tr.RefreshToken)
		if r1.Status != http.StatusOK {
			t.Fatalf("refresh: %d %s", r1.Status, r1.Error)
		}
		if _, err := live.v.Verify(ctxT(t), r1.AccessToken); err != nil {
			t.Fatal(err)
		}
		if r := f.refresh(c, tr.RefreshToken); r.Error != "invalid_grant" {
			t.Fatalf("reuse: %d %s", r.Status, r.Error)
		}
		refusedWithin(t, live.v, r1.AccessToken, time.Second, "newest access token after refresh reuse")
		refusedWithin(t, live.v, tr.AccessToken, time.Second, "first access token after refresh reuse")
	})
}

// TestRevokeAnotherClientsToken: RFC 7009 §2.1 — the server verifies that
// the token was issued to the client making the request, and refuses it
// otherwise (400 unauthorized_client, RFC 6749 §5.2). Another confidential
// client and a public client cannot revoke a grant; the owner's tokens keep
// working, and the refusal is audited as the authenticated caller's.
func TestRevokeAnotherClientsToken(t *testing.T) {
	f := startFleet(t, nil)
	owner := f.Clients["local-test"]
	tr := f.fullFlow(owner, newAuthRequest(owner))
	for _, other := range []devClient{f.Clients["gpt-apps-mcp"], f.Clients["test-public"]} {
		for _, tc := range []struct{ name, token, hint string }{
			{"access token", tr.AccessToken, "access_token"},
			{"access token, no hint", tr.AccessToken, ""},
			{"refresh token", tr.RefreshToken, "refresh_token"},
			{"refresh token, wrong hint", tr.RefreshToken, "access_token"},
		} {
			form := url.Values{"token": {tc.token}}
			if tc.hint != "" {
				form.Set("token_type_hint", tc.hint)
			}
			resp, b := f.post("/oauth/revoke", other, form)
			var e tokenResponse
			_ = json.Unmarshal(b, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Error != "unauthorized_client" {
				t.Errorf("%s revoking the %s of %s: %d %s, want 400 unauthorized_client", other.ClientID, tc.name, owner.ClientID, resp.StatusCode, b)
			}
		}
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Errorf("owner's access token after others tried to revoke it: %d", st)
	}
	if r := f.refresh(owner, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("owner's refresh token after others tried to revoke it: %d %s", r.Status, r.Error)
	}
	if e := findEvent(auditEvents(t, f), map[string]any{"event": "revocation", "result": "unauthorized_client", "client_id": "gpt-apps-mcp"}); e == nil || e["client_authenticated"] != true {
		t.Errorf("refused revocation audit event: %v, want client_authenticated true", e)
	}
}

// TestRevokeWithoutToken: a revocation request without a token, or with an
// empty one, is 400 invalid_request naming the parameter (RFC 7009 §2.1:
// token is required; RFC 6749 §5.2), before client authentication, as a
// missing grant_type at the token endpoint; an unknown token is still 200
// (RFC 7009 §2.2).
func TestRevokeWithoutToken(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	for name, form := range map[string]url.Values{
		"missing": {"token_type_hint": {"refresh_token"}},
		"empty":   {"token": {""}},
	} {
		resp, b := f.post("/oauth/revoke", c, form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"invalid_request"`) || !strings.Contains(string(b), "RFC 7009") {
			t.Errorf("%s token: %d %s, want 400 invalid_request citing RFC 7009", name, resp.StatusCode, b)
		}
	}
	if resp, b := f.post("/oauth/revoke", c, url.Values{"token": {"unknown"}}); resp.StatusCode != http.StatusOK {
		t.Errorf("unknown token: %d %s, want 200", resp.StatusCode, b)
	}
	bad := devClient{ClientID: c.ClientID, ClientSecret: "wrong", AuthMethod: c.AuthMethod}
	if resp, b := f.post("/oauth/revoke", bad, url.Values{"token": {""}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no token, wrong secret: %d %s, want 400 invalid_request", resp.StatusCode, b)
	}
	if resp, b := f.post("/oauth/revoke", bad, url.Values{"token": {"unknown"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token, wrong secret: %d %s, want 401", resp.StatusCode, b)
	}
}
