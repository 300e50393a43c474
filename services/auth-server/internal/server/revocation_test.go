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

	"github.com/redis/go-redis/v9"

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
			// The client authenticated: the description says whose the
			// token is, not fosite's "make sure that client id and secret
			// are correctly specified" (review3).
			if e.Description != "the token was not issued to this client (RFC 7009 section 2.1)" {
				t.Errorf("%s revoking the %s of %s: error_description %q", other.ClientID, tc.name, owner.ClientID, e.Description)
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

// TestRevocationStoreFailure: a revocation the store cannot complete is
// an error answer (RFC 7009 §2.2.1, RFC 6749 §5.2), never 200 — fosite's
// revocation handler turns every store error but "not found" into a bare
// temporarily_unavailable, which the endpoint classified as a 500 it did
// not answer: it wrote 200 and audited "no active grant", and the client
// took its token for revoked. Two real failures of the grant's read, by
// the refresh token and by the access token:
//   - a grant record that does not decode (no Redis error): 500
//     server_error, as the token endpoint answers it;
//   - a Redis error (the record's key holds a hash: WRONGTYPE): the store's
//     ErrUnavailable, 503 temporarily_unavailable with Retry-After, as the
//     token endpoint answers a Redis failure.
//
// Each is counted in tollgate_auth_errors_total and audited as a failed
// revocation naming the authenticated client, not as "no active grant";
// nothing was revoked (the tokens work once the record is back), and the
// revocation sent again then succeeds.
func TestRevocationStoreFailure(t *testing.T) {
	f := startFleet(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	id := grantIDOf(t, tr.AccessToken)
	rdb, ctx, key := f.Redis.Client(), ctxT(t), grantKey(id)
	good := readGrant(t, f, id).raw
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 {
		t.Fatalf("the grant's TTL: %v %v", ttl, err)
	}
	// The record's nine header lines, then its JSON.
	header := strings.SplitAfterN(good, "\n", 10)
	if len(header) != 10 {
		t.Fatalf("grant record %q", good)
	}
	for _, tc := range []struct {
		name   string
		addr   string // of its requests: 198.51.100.<addr><i>
		spoil  func() error
		status int
		code   string
	}{
		{"a grant record that does not decode", "8", func() error {
			return rdb.Set(ctx, key, strings.Join(header[:9], "")+`{"broken`, redis.KeepTTL).Err()
		}, http.StatusInternalServerError, "server_error"},
		{"a Redis error (WRONGTYPE)", "9", func() error {
			if err := rdb.Del(ctx, key).Err(); err != nil {
				return err
			}
			return rdb.HSet(ctx, key, "not", "a string").Err()
		}, http.StatusServiceUnavailable, "temporarily_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.spoil(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := rdb.Set(ctx, key, good, ttl).Err(); err != nil {
					t.Fatal(err)
				}
			}()
			before := errorsTotal(t, f, "revoke", tc.code)
			for i, tok := range []struct{ token, hint string }{{tr.RefreshToken, "refresh_token"}, {tr.AccessToken, "access_token"}} {
				addr := fmt.Sprintf("198.51.100.%s%d", tc.addr, i)
				r := f.clientCall(clientReq{Path: "/oauth/revoke", BasicUser: url.QueryEscape(c.ClientID), BasicPass: url.QueryEscape(c.ClientSecret),
					Form: url.Values{"token": {tok.token}, "token_type_hint": {tok.hint}}, ForwardFor: addr})
				if r.Status != tc.status || r.Error != tc.code || r.Description == "" {
					t.Errorf("revoking the %s: %d %q %q, want %d %s with a description", tok.hint, r.Status, r.Error, r.Description, tc.status, tc.code)
				}
				if tc.status == http.StatusServiceUnavailable {
					retryAfter(t, "revoking the "+tok.hint, r.Header)
				}
				events := auditEvents(t, f)
				e := findEvent(events, map[string]any{"event": "revocation", "client_address": addr, "endpoint": "revoke", "result": tc.code})
				if e == nil {
					t.Errorf("revoking the %s: no revocation record with result %s; records: %v", tok.hint, tc.code, eventsFrom(t, f, addr))
				} else if e["client_id"] != c.ClientID || e["client_authenticated"] != true {
					t.Errorf("revoking the %s: the record names %v (client_authenticated %v), want the authenticated %s: %s",
						tok.hint, e["client_id"], e["client_authenticated"], c.ClientID, e["_line"])
				}
				if e := findEvent(events, map[string]any{"client_address": addr, "result": "ok"}); e != nil {
					t.Errorf("revoking the %s: a success record: %s", tok.hint, e["_line"])
				}
			}
			if n := errorsTotal(t, f, "revoke", tc.code) - before; n != 2 {
				t.Errorf("tollgate_auth_errors_total{endpoint=revoke,error=%s} went up by %d, want 2", tc.code, n)
			}
		})
	}
	// Nothing was revoked: with the record back, the tokens work.
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Fatalf("the access token after the failed revocations: %d, want 200", st)
	}
	if !active(t, f, c, tr.RefreshToken) {
		t.Fatal("the refresh token is not active after the failed revocations")
	}
	// After recovery the revocation succeeds.
	if resp, b := f.post("/oauth/revoke", c, url.Values{"token": {tr.RefreshToken}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation after recovery: %d %s", resp.StatusCode, b)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("the access token after the revocation: %d, want 401", st)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("the refresh token after the revocation: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}
