package server_test

// Attacks on the refresh rotation rule and on code redemption through the
// real token endpoint, with a real redis-server (docs/reference/oauth.md,
// "Refresh tokens" and "State in Redis"). The assertions are on what Redis
// holds afterwards — the grant's record, its live refresh tokens (counted
// with introspection, which reads without rotating), the fleet's
// revocation records — not only on status codes: within the grace window
// a wrongly rotated token still answers 200, so status codes alone would
// hide a second branch.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// grantIDOf is the grant_id claim of an access token (not verified: the
// test only needs the name of the grant's keys).
func grantIDOf(t *testing.T, at string) string {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWS", at)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		GrantID string `json:"grant_id"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.GrantID == "" {
		t.Fatalf("access token without grant_id: %v %s", err, b)
	}
	return c.GrantID
}

// grantKey is the grant's record under the fleet's default key prefix.
func grantKey(id string) string { return "tollgate:as:grant2:{" + id + "}" }

// macOf is the MAC of a refresh token (ory_rt_<key>.<mac>), what the
// grant's record stores of it.
func macOf(rt string) string {
	_, mac, _ := strings.Cut(rt, ".")
	return mac
}

// grantRecordState is a grant's header as the refresh script reads it
// (store/record.go): current MAC, previous MAC, rotation time (Unix ms);
// raw is the whole record.
type grantRecordState struct {
	rt, prev, rotated string
	raw               string
	exists            bool
}

func readGrant(t *testing.T, f *fleet, id string) grantRecordState {
	t.Helper()
	s, err := f.Redis.Client().Get(context.Background(), grantKey(id)).Result()
	if err == redis.Nil {
		return grantRecordState{}
	} else if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(s, "\n", 5)
	if len(lines) != 5 || lines[0] != "g2" {
		t.Fatalf("grant record %q", s)
	}
	return grantRecordState{rt: lines[1], prev: lines[2], rotated: lines[3], raw: s, exists: true}
}

// endWindow moves grant id's last rotation an hour back: its grace window
// has passed, as it would have by waiting.
func endWindow(t *testing.T, f *fleet, id string) {
	t.Helper()
	g := readGrant(t, f, id)
	if !g.exists {
		t.Fatalf("grant %s has no record", id)
	}
	lines := strings.SplitN(g.raw, "\n", 5)
	lines[3] = strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
	if err := f.Redis.Client().Set(context.Background(), grantKey(id), strings.Join(lines, "\n"), redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
}

// otherGrantKeys are the auth-server's keys of grant id other than its record:
// there must be none (the code's hash aside, which expires with the code).
func otherGrantKeys(t *testing.T, f *fleet, id string) []string {
	t.Helper()
	var out []string
	for _, k := range f.Redis.Client().Keys(context.Background(), "*"+id+"*").Val() {
		if k != grantKey(id) && !strings.Contains(k, ":as:code:") {
			out = append(out, k)
		}
	}
	return out
}

// active asks introspection whether a token is live (it reads, it never
// rotates or revokes).
func active(t *testing.T, f *fleet, c devClient, tok string) bool {
	t.Helper()
	st, _, m := introspect(t, f, c, tok)
	if st != http.StatusOK {
		t.Fatalf("introspection: %d %v", st, m)
	}
	return m["active"] == true
}

// liveRefreshTokens counts the distinct tokens of toks that introspection
// finds active.
func liveRefreshTokens(t *testing.T, f *fleet, c devClient, toks ...string) (n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, tok := range toks {
		if tok == "" || seen[tok] {
			continue
		}
		seen[tok] = true
		if active(t, f, c, tok) {
			n++
		}
	}
	return n
}

// revokedInFleet reports whether grant id is in the fleet's revocation
// records (every verifier refuses its access tokens).
func revokedInFleet(t *testing.T, f *fleet, id string) bool {
	t.Helper()
	err := f.Redis.Client().ZScore(context.Background(), "tollgate:revocation:grants", id).Err()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	return err == nil
}

// assertRevoked checks that grant id is gone everywhere: no record, in the
// fleet's revocation records, every refresh token refused, every access
// token refused at userinfo and introspection.
func assertRevoked(t *testing.T, f *fleet, c devClient, id string, refresh, access []string) {
	t.Helper()
	if g := readGrant(t, f, id); g.exists {
		t.Errorf("revoked grant still has a record: %q", g.raw)
	}
	if !revokedInFleet(t, f, id) {
		t.Errorf("grant %s not in the fleet's revocation records", id)
	}
	for i, at := range access {
		if at == "" {
			continue
		}
		if st, _ := f.userinfo(at); st != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked grant: userinfo %d, want 401", i, st)
		}
		if active(t, f, c, at) {
			t.Errorf("access token %d of the revoked grant: introspection active", i)
		}
	}
	for i, rt := range refresh {
		if rt == "" {
			continue
		}
		if active(t, f, c, rt) {
			t.Errorf("refresh token %d of the revoked grant: introspection active", i)
		}
		if r := f.refresh(c, rt); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("refresh token %d of the revoked grant: %d %s, want 400 invalid_grant", i, r.Status, r.Error)
		}
	}
	if g := readGrant(t, f, id); g.exists {
		t.Errorf("the refusals brought the revoked grant back: %q", g.raw)
	}
}

// TestConcurrentRefreshesLeaveOneLiveToken: N parallel refreshes with one
// token by its client (N = 2, 20, 50) all succeed with one successor; the
// grant is one record whose current token is that successor and whose
// previous token is the one presented; within the window both read as
// live, after it only the successor does, and it refreshes.
//
// Broken on purpose to see it fail: the refresh script without its
// window check (the previous token accepted at any age) leaves two live
// tokens after the window, for every N.
func TestConcurrentRefreshesLeaveOneLiveToken(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
	c := f.Clients["gpt-apps-mcp"]
	for _, n := range []int{2, 20, 50} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			tr := f.fullFlow(c, newAuthRequest(c))
			id := grantIDOf(t, tr.AccessToken)
			res := make([]tokenResponse, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() { defer wg.Done(); <-start; res[i] = f.refresh(c, tr.RefreshToken) }()
			}
			close(start)
			wg.Wait()
			succ := res[0].RefreshToken
			for i, r := range res {
				if r.Status != http.StatusOK || r.RefreshToken == "" {
					t.Fatalf("refresh %d of %d: %d %s %s", i, n, r.Status, r.Error, r.Description)
				}
				if r.RefreshToken != succ {
					t.Fatalf("refreshes %d and 0 of %d returned different refresh tokens: a second branch", i, n)
				}
			}
			if succ == tr.RefreshToken {
				t.Fatal("the refresh token was not rotated")
			}
			g := readGrant(t, f, id)
			if g.rt != macOf(succ) || g.prev != macOf(tr.RefreshToken) {
				t.Fatalf("grant record after %d refreshes: current %q previous %q, want the successor and the presented token", n, g.rt, g.prev)
			}
			if k := otherGrantKeys(t, f, id); len(k) != 0 {
				t.Errorf("keys besides the grant's record: %v", k)
			}
			for i, r := range res {
				if st, _ := f.userinfo(r.AccessToken); st != http.StatusOK {
					t.Fatalf("access token of refresh %d: userinfo %d", i, st)
				}
			}
			all := []string{tr.RefreshToken}
			for _, r := range res {
				all = append(all, r.RefreshToken)
			}
			if live := liveRefreshTokens(t, f, c, all...); live != 2 {
				t.Errorf("within the window: %d live refresh tokens, want 2 (the successor and, by rule 2, the presented one)", live)
			}
			endWindow(t, f, id)
			if live := liveRefreshTokens(t, f, c, all...); live != 1 || !active(t, f, c, succ) {
				t.Fatalf("after the window: %d live refresh tokens (successor live: %v), want exactly the successor", live, active(t, f, c, succ))
			}
			// The client holds a working token.
			if r := f.refresh(c, succ); r.Status != http.StatusOK || r.RefreshToken == "" {
				t.Fatalf("the successor after the window: %d %s", r.Status, r.Error)
			}
		})
	}
}

// TestGraceReuseNeitherBranchesNorExtends walks the chains of the rule:
// A→B; A again within the window gets B and changes nothing in Redis (no
// new rotation time, so the window is not extended; no second branch);
// B→C; then A — still within the wall-clock window of its own rotation,
// but two rotations old — is reuse and revokes the whole grant. And: A→B,
// A again within the window, then A after the window: reuse.
//
// Broken on purpose: the refresh script's grace branch removed (a use of
// the previous token rotates again, writing a new rotation time and so
// extending the window) fails the "record unchanged" check; without the
// window check A refreshes after the window.
func TestGraceReuseNeitherBranchesNorExtends(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
	c := f.Clients["gpt-apps-mcp"]

	t.Run("A, B, A, C, A", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id, a := grantIDOf(t, tr.AccessToken), tr.RefreshToken
		r1 := f.refresh(c, a)
		if r1.Status != http.StatusOK {
			t.Fatalf("A→B: %d %s", r1.Status, r1.Error)
		}
		before := readGrant(t, f, id)
		r2 := f.refresh(c, a)
		if r2.Status != http.StatusOK || r2.RefreshToken != r1.RefreshToken {
			t.Fatalf("A again within the window: %d %s, same successor: %v", r2.Status, r2.Error, r2.RefreshToken == r1.RefreshToken)
		}
		if after := readGrant(t, f, id); after.raw != before.raw {
			t.Fatalf("a refresh within the window changed the grant's record:\nbefore %q\nafter  %q", before.raw, after.raw)
		}
		if ttl := f.Redis.Client().PTTL(context.Background(), grantKey(id)).Val(); ttl <= 0 {
			t.Fatalf("grant record TTL %s", ttl)
		}
		r3 := f.refresh(c, r1.RefreshToken)
		if r3.Status != http.StatusOK || r3.RefreshToken == r1.RefreshToken {
			t.Fatalf("B→C: %d %s", r3.Status, r3.Error)
		}
		if g := readGrant(t, f, id); g.rt != macOf(r3.RefreshToken) || g.prev != macOf(r1.RefreshToken) {
			t.Fatalf("after B→C: current %q previous %q", g.rt, g.prev)
		}
		// A is two rotations old: reuse, though its rotation is recent.
		if r := f.refresh(c, a); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("A after B→C: %d %s, want 400 invalid_grant", r.Status, r.Error)
		}
		assertRevoked(t, f, c, id, []string{a, r1.RefreshToken, r3.RefreshToken},
			[]string{tr.AccessToken, r1.AccessToken, r2.AccessToken, r3.AccessToken})
	})

	t.Run("A, B, A, A after the window", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id, a := grantIDOf(t, tr.AccessToken), tr.RefreshToken
		r1 := f.refresh(c, a)
		r2 := f.refresh(c, a)
		if r1.Status != http.StatusOK || r2.Status != http.StatusOK || r2.RefreshToken != r1.RefreshToken {
			t.Fatalf("A→B, A again: %d %d, same successor %v", r1.Status, r2.Status, r2.RefreshToken == r1.RefreshToken)
		}
		endWindow(t, f, id)
		if r := f.refresh(c, a); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("A after the window: %d %s, want 400 invalid_grant", r.Status, r.Error)
		}
		assertRevoked(t, f, c, id, []string{a, r1.RefreshToken}, []string{tr.AccessToken, r1.AccessToken, r2.AccessToken})
	})
}

// TestReuseRacingTheLegitimateRefresh: a stolen rotated token (A, after
// the window) used at the same moment as the client's current one (B).
// Whichever Redis runs first, the grant ends revoked: the thief gets
// invalid_grant, and a successor the client may have got in the race is
// dead, its access token refused. Several rounds, so both orders occur.
// The same for an RFC 7009 revocation racing a refresh.
//
// Broken on purpose: RevokeGrant without the record's DEL leaves the
// grant's record and the client's tokens live after the race.
func TestReuseRacingTheLegitimateRefresh(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
	c := f.Clients["gpt-apps-mcp"]
	race := func(x, y func() tokenResponse) (tokenResponse, tokenResponse) {
		var rx, ry tokenResponse
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; rx = x() }()
		go func() { defer wg.Done(); <-start; ry = y() }()
		close(start)
		wg.Wait()
		return rx, ry
	}
	const rounds = 6
	clientWon := 0
	for i := range rounds {
		tr := f.fullFlow(c, newAuthRequest(c))
		id, a := grantIDOf(t, tr.AccessToken), tr.RefreshToken
		b := f.refresh(c, a)
		if b.Status != http.StatusOK {
			t.Fatalf("round %d: A→B: %d %s", i, b.Status, b.Error)
		}
		endWindow(t, f, id)
		thief, client := race(func() tokenResponse { return f.refresh(c, a) }, func() tokenResponse { return f.refresh(c, b.RefreshToken) })
		if thief.Status != http.StatusBadRequest || thief.Error != "invalid_grant" {
			t.Fatalf("round %d: reuse of A: %d %s, want 400 invalid_grant", i, thief.Status, thief.Error)
		}
		switch {
		case client.Status == http.StatusOK:
			clientWon++
		case client.Status == http.StatusBadRequest && client.Error == "invalid_grant":
		default:
			t.Fatalf("round %d: the client's refresh with B: %d %s %s, want 200 or 400 invalid_grant", i, client.Status, client.Error, client.Description)
		}
		assertRevoked(t, f, c, id, []string{a, b.RefreshToken, client.RefreshToken}, []string{tr.AccessToken, b.AccessToken, client.AccessToken})
	}
	t.Logf("the client's refresh ran before the reuse in %d of %d rounds", clientWon, rounds)

	for i := range rounds {
		tr := f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		var rev int
		ref, _ := race(func() tokenResponse { return f.refresh(c, tr.RefreshToken) }, func() tokenResponse {
			resp, _ := f.post("/oauth/revoke", c, url.Values{"token": {tr.RefreshToken}})
			rev = resp.StatusCode
			return tokenResponse{}
		})
		if rev != http.StatusOK {
			t.Fatalf("round %d: revocation: %d", i, rev)
		}
		if ref.Status != http.StatusOK && ref.Error != "invalid_grant" {
			t.Fatalf("round %d: refresh racing the revocation: %d %s, want 200 or invalid_grant", i, ref.Status, ref.Error)
		}
		assertRevoked(t, f, c, id, []string{tr.RefreshToken, ref.RefreshToken}, []string{tr.AccessToken, ref.AccessToken})
	}
}

// TestRefusedRefreshesChangeNothing: every refusal of a refresh leaves the
// grant's record byte for byte as it was — a refused request that rotated
// would still look fine within the grace window (the owner's next refresh
// with the same token meets rule 2), so this reads Redis. Refusals: another
// confidential client, a public client, a wrong secret, a scope beyond the
// grant (RFC 6749 §6), an unknown scope, another resource, a resource that
// is no URI, a resource with different case in its path (RFC 8707). Then a
// narrower scope rotates as usual, and a revoked grant's token is refused
// without the grant coming back.
//
// Broken on purpose: the refresh script not comparing the client id
// rotates on the public client's request (which fosite then refuses).
func TestRefusedRefreshesChangeNothing(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	id, a := grantIDOf(t, tr.AccessToken), tr.RefreshToken
	before := readGrant(t, f, id)
	wrongSecret := c
	wrongSecret.ClientSecret = "not-the-secret"
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		client devClient
		form   url.Values
		status int
		err    string
	}{
		{"another confidential client", f.Clients["gpt-actions"], form(), 400, "invalid_grant"},
		{"a public client", f.Clients["test-public"], form(), 400, "invalid_grant"},
		{"the owner with a wrong secret", wrongSecret, form(), 401, "invalid_client"},
		{"a scope beyond the grant", c, form("scope", "openid profile email offline_access"), 400, "invalid_scope"},
		{"an unknown scope", c, form("scope", "openid admin"), 400, "invalid_scope"},
		{"another resource", c, form("resource", f.Base+"/actions"), 400, "invalid_target"},
		{"a resource that is no URI", c, form("resource", "mcp"), 400, "invalid_target"},
		{"the resource with another path case", c, form("resource", f.Base+"/MCP"), 400, "invalid_target"},
		{"the resource with a fragment", c, form("resource", f.Base+"/mcp#x"), 400, "invalid_target"},
	} {
		r := f.token(tc.client, tc.form)
		if r.Status != tc.status || r.Error != tc.err {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.name, r.Status, r.Error, r.Description, tc.status, tc.err)
		}
		if g := readGrant(t, f, id); g.raw != before.raw {
			t.Fatalf("%s changed the grant's record:\nbefore %q\nafter  %q", tc.name, before.raw, g.raw)
		}
	}
	if !active(t, f, c, a) {
		t.Fatal("the token is not live after the refusals")
	}
	// The grant's own resource, spelled with an upper-case scheme and host
	// (RFC 3986 §6.2.2.1), and a narrower scope: accepted, one rotation.
	r := f.token(c, form("scope", "openid", "resource", "HTTP://"+strings.ToUpper(strings.TrimPrefix(f.Base, "http://"))+"/mcp"))
	if r.Status != http.StatusOK || r.Scope != "openid" {
		t.Fatalf("narrower scope, same resource: %d %s %s, scope %q", r.Status, r.Error, r.Description, r.Scope)
	}
	if g := readGrant(t, f, id); g.rt != macOf(r.RefreshToken) || g.prev != macOf(a) {
		t.Fatalf("after the accepted refresh: current %q previous %q", g.rt, g.prev)
	}
	// A revoked grant: refused, and the refusal does not bring it back.
	if resp, _ := f.post("/oauth/revoke", c, url.Values{"token": {r.AccessToken}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %d", resp.StatusCode)
	}
	assertRevoked(t, f, c, id, []string{a, r.RefreshToken}, []string{tr.AccessToken, r.AccessToken})
}

// retryAfter checks a 503's Retry-After: a positive number of seconds.
func retryAfter(t *testing.T, what string, h http.Header) {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n <= 0 {
		t.Errorf("%s: Retry-After %q, want a positive number of seconds", what, h.Get("Retry-After"))
	}
}

// untilServed repeats a request while it answers 503 (the client breaker
// closing after Redis is back); the bound only stops a hang.
func untilServed(t *testing.T, do func() tokenResponse) tokenResponse {
	t.Helper()
	var r tokenResponse
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r = do(); r.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r
		}
	}
}

// TestRotationAcrossRedisFaults: Redis failing in the middle of grants.
//
//   - SCRIPT FLUSH (a restart or failover to a replica without the script
//     cache) before a code redemption, a refresh, a refresh within the
//     window and a reuse: each works as with the scripts loaded (EVALSHA's
//     NOSCRIPT falls back to EVAL).
//   - Redis hung (SIGSTOP) during a refresh and a code redemption: 503
//     temporarily_unavailable with Retry-After. Resumed: whatever Redis ran
//     of the hung request (its script may run once Redis continues, the
//     answer lost), the client retrying with the same token gets the one
//     successor, the grant holds one live token after the window, and the
//     code is redeemed exactly once.
//   - Redis restarted empty (no persistence): the grant is gone, so its
//     refresh token is 400 invalid_grant, never a 5xx, and its access
//     token is refused.
//
// Broken on purpose: the redemption without its NOSCRIPT fallback to EVAL
// answers 503 after SCRIPT FLUSH.
func TestRotationAcrossRedisFaults(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
	c := f.Clients["gpt-apps-mcp"]
	rdb := f.Redis.Client()
	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("script cache flushed between requests", func(t *testing.T) {
		a := newAuthRequest(c)
		code := f.authorize(a)
		flush()
		tr := f.exchange(c, a, code)
		if tr.Status != http.StatusOK {
			t.Fatalf("code redemption after SCRIPT FLUSH: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
		flush()
		if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("replay after SCRIPT FLUSH: %d %s", r.Status, r.Error)
		}
		// The replay revoked that grant; a new one for the refreshes.
		tr = f.fullFlow(c, newAuthRequest(c))
		id := grantIDOf(t, tr.AccessToken)
		flush()
		r1 := f.refresh(c, tr.RefreshToken)
		if r1.Status != http.StatusOK {
			t.Fatalf("refresh after SCRIPT FLUSH: %d %s %s", r1.Status, r1.Error, r1.Description)
		}
		flush()
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK || r.RefreshToken != r1.RefreshToken {
			t.Fatalf("refresh within the window after SCRIPT FLUSH: %d %s, same successor %v", r.Status, r.Error, r.RefreshToken == r1.RefreshToken)
		}
		endWindow(t, f, id)
		flush()
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("reuse after SCRIPT FLUSH: %d %s", r.Status, r.Error)
		}
		assertRevoked(t, f, c, id, []string{r1.RefreshToken}, []string{r1.AccessToken})
	})

	t.Run("Redis hung during a refresh and a redemption", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		id, a := grantIDOf(t, tr.AccessToken), tr.RefreshToken
		ar := newAuthRequest(c)
		code := f.authorize(ar)
		f.Redis.Pause()
		r := f.refresh(c, a)
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
			t.Errorf("refresh with Redis hung: %d %s, want 503 temporarily_unavailable", r.Status, r.Error)
		}
		retryAfter(t, "refresh with Redis hung", r.Header)
		x := f.exchange(c, ar, code)
		if x.Status != http.StatusServiceUnavailable || x.Error != "temporarily_unavailable" {
			t.Errorf("code redemption with Redis hung: %d %s, want 503 temporarily_unavailable", x.Status, x.Error)
		}
		retryAfter(t, "code redemption with Redis hung", x.Header)
		f.Redis.Resume()

		// The client retries with the token it holds.
		r = untilServed(t, func() tokenResponse { return f.refresh(c, a) })
		if r.Status != http.StatusOK {
			t.Fatalf("the retry after Redis came back: %d %s %s", r.Status, r.Error, r.Description)
		}
		g := readGrant(t, f, id)
		if g.rt != macOf(r.RefreshToken) || g.prev != macOf(a) {
			t.Fatalf("grant after the retry: current %q previous %q, want the retry's token and the presented one", g.rt, g.prev)
		}
		endWindow(t, f, id)
		if live := liveRefreshTokens(t, f, c, a, r.RefreshToken); live != 1 || !active(t, f, c, r.RefreshToken) {
			t.Fatalf("after the window: %d live refresh tokens, want the retry's only", live)
		}
		// The code: redeemed once, then a replay.
		x = untilServed(t, func() tokenResponse { return f.exchange(c, ar, code) })
		if x.Status != http.StatusOK {
			t.Fatalf("code redemption after Redis came back: %d %s %s", x.Status, x.Error, x.Description)
		}
		if y := f.exchange(c, ar, code); y.Status != http.StatusBadRequest || y.Error != "invalid_grant" {
			t.Fatalf("second redemption: %d %s", y.Status, y.Error)
		}
	})

	t.Run("Redis restarted empty", func(t *testing.T) {
		tr := f.fullFlow(c, newAuthRequest(c))
		f.Redis.Stop()
		r := f.refresh(c, tr.RefreshToken)
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("refresh with Redis down: %d %s, want 503", r.Status, r.Error)
		}
		retryAfter(t, "refresh with Redis down", r.Header)
		f.Redis.Start()
		r = untilServed(t, func() tokenResponse { return f.refresh(c, tr.RefreshToken) })
		if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("refresh of a grant Redis lost: %d %s %s, want 400 invalid_grant", r.Status, r.Error, r.Description)
		}
		if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
			t.Errorf("access token of a grant Redis lost: userinfo %d, want 401", st)
		}
		if n := len(rdb.Keys(context.Background(), "*as:grant2:*").Val()); n != 0 {
			t.Errorf("%d grant records after refusals on an empty Redis", n)
		}
		f.fullFlow(c, newAuthRequest(c))
	})
}

// TestGrantMemoryAndTTLUnderConcurrency: TestGrantStorageBound's bound
// with the rotation rule's other paths mixed in — concurrent refreshes,
// refreshes within the window — and the record's TTL: one key whose size
// is the same after refresh 1 and refresh 50, living no longer than the
// refresh token (REFRESH_TOKEN_TTL + 1 minute), and no rotated token kept
// anywhere else.
//
// Broken on purpose: the refresh script keeping each rotated token under a
// key of its own, with the record's TTL doubled, fails the key and TTL
// checks.
func TestGrantMemoryAndTTLUnderConcurrency(t *testing.T) {
	f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m", "REFRESH_TOKEN_TTL": "2h"})
	c := f.Clients["gpt-apps-mcp"]
	rdb := f.Redis.Client()
	ctx := context.Background()
	tr := f.fullFlow(c, newAuthRequest(c))
	id, rt := grantIDOf(t, tr.AccessToken), tr.RefreshToken
	var size1 int64
	for i := 1; i <= 50; i++ {
		prev := rt
		var wg sync.WaitGroup
		res := make([]tokenResponse, 3)
		for j := range res {
			wg.Add(1)
			go func() { defer wg.Done(); res[j] = f.refresh(c, prev) }()
		}
		wg.Wait()
		for j, r := range res {
			if r.Status != http.StatusOK || r.RefreshToken != res[0].RefreshToken {
				t.Fatalf("refresh %d.%d: %d %s", i, j, r.Status, r.Error)
			}
		}
		rt = res[0].RefreshToken
		if r := f.refresh(c, prev); r.Status != http.StatusOK || r.RefreshToken != rt {
			t.Fatalf("refresh %d within the window: %d %s", i, r.Status, r.Error)
		}
		if i == 1 {
			size1 = rdb.MemoryUsage(ctx, grantKey(id)).Val()
		}
	}
	size50 := rdb.MemoryUsage(ctx, grantKey(id)).Val()
	if size1 == 0 || size1 != size50 {
		t.Fatalf("grant record: %d bytes after refresh 1, %d after refresh 50 (with concurrent and in-window refreshes), want equal", size1, size50)
	}
	if k := otherGrantKeys(t, f, id); len(k) != 0 {
		t.Errorf("keys besides the grant's record: %v", k)
	}
	if ttl := rdb.PTTL(ctx, grantKey(id)).Val(); ttl <= 0 || ttl > 2*time.Hour+time.Minute {
		t.Errorf("grant record TTL %s, want at most REFRESH_TOKEN_TTL + 1m (2h1m)", ttl)
	}
	t.Logf("grant record %d bytes after refresh 1 and after refresh 50", size50)
}

// TestCodeReplayFailsClosedWhenRevocationFails: a replayed code whose
// revocation fails after the code was read (Redis refuses writes to the
// fleet's revocation records: an ACL leaving them read-only, every other
// key as before) answers 503 temporarily_unavailable with Retry-After, not
// 400 invalid_grant — the grant is still live, so the client must retry —
// and once Redis accepts the writes again the replay revokes the grant:
// 400 invalid_grant, its tokens refused at userinfo and introspection.
//
// Broken on purpose: without the auth-server's own revocation
// (codeGrantHandler, store.RevokeReplayedCode), fosite's replay path
// ignores the revocation's error and answers 400 invalid_grant with the
// grant live.
func TestCodeReplayFailsClosedWhenRevocationFails(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK {
		t.Fatalf("redemption: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	id := grantIDOf(t, tr.AccessToken)

	// The revocation records (tollgate:revocation:*) become read-only;
	// every other key (the auth-server's tollgate:as:*, the rate limits'
	// tollgate:rl:* and rate:*) stays writable.
	writable := f.Redis.RestrictKeys(t, "tollgate:revocation:", "%R")
	r := f.exchange(c, a, code)
	if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
		t.Errorf("replay whose revocation fails: %d %s %s, want 503 temporarily_unavailable", r.Status, r.Error, r.Description)
	}
	if r.Status == http.StatusServiceUnavailable {
		retryAfter(t, "replay whose revocation fails", r.Header)
	}
	writable()
	if g := readGrant(t, f, id); !g.exists || revokedInFleet(t, f, id) {
		t.Fatalf("the failed revocation changed the grant: record %v, revoked %v", g.exists, revokedInFleet(t, f, id))
	}

	// Writes accepted again: the client's (or attacker's) retry revokes.
	r = untilServed(t, func() tokenResponse { return f.exchange(c, a, code) })
	if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("replay after recovery: %d %s %s, want 400 invalid_grant", r.Status, r.Error, r.Description)
	}
	assertRevoked(t, f, c, id, []string{tr.RefreshToken}, []string{tr.AccessToken})
}
