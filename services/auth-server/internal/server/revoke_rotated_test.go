package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRevokeRotatedRefreshToken: RFC 7009 §2.1 — revoking a refresh token
// revokes its grant, access tokens included (docs/reference/oauth.md,
// "Revocation and introspection"), also when the token presented was
// rotated: before, the store's answer for a rotated token (the request
// with fosite.ErrInactiveToken) was taken by fosite's revocation handler
// for "no such token", the request was answered 200 and the grant stayed
// live, while the same token at the token endpoint is reuse and revokes
// the grant. Over real HTTP and Redis:
//   - a token two rotations old (RT0 after RT0→RT1→RT2), inside the 30 s
//     grace window of the last rotation: 200, and the newest access token
//     and refresh token stop working;
//   - the previous token after its grace window has passed (the rotation
//     time moved back, as by waiting): the same;
//   - another client's rotated token: 400 unauthorized_client, and the
//     owner's grant stays live;
//   - garbage: 200, nothing revoked.
func TestRevokeRotatedRefreshToken(t *testing.T) {
	f := startFleet(t, nil)
	owner, other := f.Clients["local-test"], f.Clients["gpt-apps-mcp"]
	v := f.Verifier(f.Base+"/mcp", f.Base+"/actions")

	// chain signs in and refreshes n times: the refresh tokens RT0…RTn and
	// the newest access token.
	chain := func(t *testing.T, n int) (rts []string, at string) {
		t.Helper()
		tr := f.fullFlow(owner, newAuthRequest(owner))
		rts, at = []string{tr.RefreshToken}, tr.AccessToken
		for range n {
			r := f.refresh(owner, rts[len(rts)-1])
			if r.Status != http.StatusOK {
				t.Fatalf("refresh: %d %s", r.Status, r.Error)
			}
			rts, at = append(rts, r.RefreshToken), r.AccessToken
		}
		return rts, at
	}
	// endGrace moves the grant's last rotation an hour back (its record's
	// fourth line, store/record.go): its grace window has passed.
	endGrace := func(t *testing.T, at string) {
		t.Helper()
		claims, err := v.Verify(ctxT(t), at)
		if err != nil {
			t.Fatal(err)
		}
		rdb := f.Redis.Client()
		keys := rdb.Keys(ctxT(t), "*as:grant2:{"+claims.GrantID+"}").Val()
		if len(keys) != 1 {
			t.Fatalf("grant %s: keys %v", claims.GrantID, keys)
		}
		lines := strings.SplitN(rdb.Get(ctxT(t), keys[0]).Val(), "\n", 5)
		if len(lines) != 5 || lines[0] != "g2" {
			t.Fatalf("grant record %q", lines)
		}
		lines[3] = strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
		if err := rdb.Set(ctxT(t), keys[0], strings.Join(lines, "\n"), redis.KeepTTL).Err(); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(t *testing.T, c devClient, token, hint string) (int, string) {
		t.Helper()
		form := url.Values{"token": {token}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		resp, b := f.post("/oauth/revoke", c, form)
		var e tokenResponse
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error
	}
	revoked := func(t *testing.T, at, rt string) {
		t.Helper()
		if st, _ := f.userinfo(at); st != http.StatusUnauthorized {
			t.Errorf("newest access token at userinfo after the revocation: %d, want 401", st)
		}
		if r := f.refresh(owner, rt); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("newest refresh token after the revocation: %d %s, want 400 invalid_grant", r.Status, r.Error)
		}
	}
	live := func(t *testing.T, at, rt string) {
		t.Helper()
		if st, _ := f.userinfo(at); st != http.StatusOK {
			t.Errorf("newest access token at userinfo: %d, want 200", st)
		}
		if r := f.refresh(owner, rt); r.Status != http.StatusOK {
			t.Errorf("newest refresh token: %d %s, want 200", r.Status, r.Error)
		}
	}

	for _, hint := range []string{"refresh_token", "access_token", ""} {
		t.Run("two rotations old, hint "+strconv.Quote(hint), func(t *testing.T) {
			rts, at := chain(t, 2)
			if st, e := revoke(t, owner, rts[0], hint); st != http.StatusOK {
				t.Fatalf("revoking RT0: %d %s, want 200", st, e)
			}
			revoked(t, at, rts[2])
		})
	}
	t.Run("previous token after the grace window", func(t *testing.T) {
		rts, at := chain(t, 1)
		endGrace(t, at)
		if st, e := revoke(t, owner, rts[0], ""); st != http.StatusOK {
			t.Fatalf("revoking RT0: %d %s, want 200", st, e)
		}
		revoked(t, at, rts[1])
		events := auditEvents(t, f)
		if e := findEvent(events, map[string]any{"event": "revocation", "client_id": owner.ClientID, "reason": "revocation request (RFC 7009)"}); e == nil || e["grant_id"] == "" || e["grant_id"] == nil {
			t.Errorf("revocation audit record naming the grant: %v", e)
		}
	})
	t.Run("another client's rotated token", func(t *testing.T) {
		rts, at := chain(t, 2)
		for _, hint := range []string{"refresh_token", "access_token", ""} {
			if st, e := revoke(t, other, rts[0], hint); st != http.StatusBadRequest || e != "unauthorized_client" {
				t.Errorf("%s revoking %s's RT0 (hint %q): %d %s, want 400 unauthorized_client", other.ClientID, owner.ClientID, hint, st, e)
			}
		}
		live(t, at, rts[2])
	})
	t.Run("another client's rotated token after the grace window", func(t *testing.T) {
		rts, at := chain(t, 1)
		endGrace(t, at)
		if st, e := revoke(t, other, rts[0], ""); st != http.StatusBadRequest || e != "unauthorized_client" {
			t.Errorf("%s revoking %s's RT0: %d %s, want 400 unauthorized_client", other.ClientID, owner.ClientID, st, e)
		}
		live(t, at, rts[1])
	})
	t.Run("garbage", func(t *testing.T) {
		rts, at := chain(t, 1)
		for _, tok := range []string{"garbage", rts[1] + "x", "ory_rt_" + strings.Repeat("A", 40) + "." + strings.Repeat("B", 43)} {
			if st, e := revoke(t, owner, tok, "refresh_token"); st != http.StatusOK {
				t.Errorf("revoking %q: %d %s, want 200", tok, st, e)
			}
		}
		live(t, at, rts[1])
	})
}
