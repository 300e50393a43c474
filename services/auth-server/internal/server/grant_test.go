package server_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/platform/tokens"
)

// TestCodeConcurrentRedemption: 50 concurrent redemptions of one code give
// exactly one success; the rest get invalid_grant, never a 5xx, and revoke
// the winner's grant.
func TestCodeConcurrentRedemption(t *testing.T) {
	f := startFleet(t, nil)
	// A public client: 50 bcrypt checks would measure bcrypt, not the store.
	c := f.Clients["test-public"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	const n = 50
	results := make([]tokenResponse, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = f.exchange(c, a, code)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Status == http.StatusOK:
			ok++
		case r.Status == http.StatusBadRequest && r.Error == "invalid_grant":
		default:
			t.Errorf("redemption answered %d %s (%s); want 200 once, else 400 invalid_grant", r.Status, r.Error, r.Description)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
	}
	// The 49 replays revoke what the code issued (RFC 6749 §4.1.2): a replay
	// fails only once the winner's grant is committed, so the winner's
	// tokens are refused too.
	for _, r := range results {
		if r.Status != http.StatusOK {
			continue
		}
		if st, _ := f.userinfo(r.AccessToken); st != http.StatusUnauthorized {
			t.Errorf("the winner's access token after the replays: userinfo %d, want 401", st)
		}
		if r.RefreshToken != "" {
			if rr := f.refresh(c, r.RefreshToken); rr.Status != http.StatusBadRequest || rr.Error != "invalid_grant" {
				t.Errorf("the winner's refresh token after the replays: %d %s, want 400 invalid_grant", rr.Status, rr.Error)
			}
		}
	}
}

// TestCodeRefusals: a wrong verifier, client or redirect URI fails without
// consuming the code; a replay fails and revokes what the code issued.
func TestCodeRefusals(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	other := f.Clients["gpt-actions"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	form := func(mod func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}
		mod(v)
		return v
	}
	for _, tc := range []struct {
		name   string
		client devClient
		form   url.Values
		status int
		err    string
	}{
		{"wrong verifier", c, form(func(v url.Values) { v.Set("code_verifier", oauth2.GenerateVerifier()) }), 400, "invalid_grant"},
		// RFC 6749 §5.2: a missing required parameter is invalid_request;
		// one sent empty is missing (§3.2). TestTokenMissingParameters
		// checks the descriptions.
		{"missing verifier", c, form(func(v url.Values) { v.Del("code_verifier") }), 400, "invalid_request"},
		{"empty verifier", c, form(func(v url.Values) { v.Set("code_verifier", "") }), 400, "invalid_request"},
		{"short verifier", c, form(func(v url.Values) { v.Set("code_verifier", "abc") }), 400, "invalid_grant"},
		{"missing code", c, form(func(v url.Values) { v.Del("code") }), 400, "invalid_request"},
		{"empty code", c, form(func(v url.Values) { v.Set("code", "") }), 400, "invalid_request"},
		{"missing redirect uri", c, form(func(v url.Values) { v.Del("redirect_uri") }), 400, "invalid_request"},
		{"empty redirect uri", c, form(func(v url.Values) { v.Set("redirect_uri", "") }), 400, "invalid_request"},
		{"missing code, wrong secret", devClient{ClientID: c.ClientID, ClientSecret: "nope", AuthMethod: "client_secret_basic"}, form(func(v url.Values) { v.Del("code") }), 401, "invalid_client"},
		{"wrong client", other, form(func(url.Values) {}), 400, "invalid_grant"},
		{"wrong redirect uri", c, form(func(v url.Values) { v.Set("redirect_uri", c.RedirectURIs[1]) }), 400, "invalid_grant"},
		{"unknown code", c, form(func(v url.Values) { v.Set("code", "ory_ac_unknown.unknown") }), 400, "invalid_grant"},
		{"wrong secret", devClient{ClientID: c.ClientID, ClientSecret: "nope", AuthMethod: "client_secret_basic"}, form(func(url.Values) {}), 401, "invalid_client"},
		{"resource not the grant's", c, form(func(v url.Values) { v.Set("resource", f.Base+"/actions") }), 400, "invalid_target"},
		{"unsupported grant", c, form(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type"},
		{"repeated parameter", c, form(func(v url.Values) { v["code"] = []string{code, code} }), 400, "invalid_request"},
		{"plain verifier", c, form(func(v url.Values) { v.Set("code_verifier", challenge(a.Verifier)) }), 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.token(tc.client, tc.form)
			if r.Status != tc.status || r.Error != tc.err {
				t.Fatalf("got %d %s (%s), want %d %s", r.Status, r.Error, r.Description, tc.status, tc.err)
			}
			if tc.err == "invalid_client" && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("failed Basic authentication without WWW-Authenticate")
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Error("error response without Cache-Control: no-store")
			}
		})
	}
	// Two Authorization headers are refused before anything else.
	req, _ := http.NewRequest(http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form(func(url.Values) {}).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ClientID+":"+c.ClientSecret)))
	req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ClientID+":"+c.ClientSecret)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("two Authorization headers: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// The rightful redemption still works after all of those.
	tr := f.exchange(c, a, code)
	if tr.Status != http.StatusOK {
		t.Fatalf("rightful redemption after refusals: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	// A replay fails and revokes the grant: the access token no longer
	// reaches userinfo and the refresh token is dead.
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo before replay: %d", st)
	}
	if r := f.exchange(c, a, code); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("replay: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("userinfo after replay: %d, want 401", st)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh after replay: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}

// TestTokenMissingParameters: a parameter the grant requires that is
// missing or sent empty is 400 invalid_request naming the parameter and its
// section (RFC 6749 §5.2), after client authentication; fosite's checks
// that it replaces are still there (their hints are pinned by
// oauth.missingParam; a fosite upgrade that changes them fails here).
func TestTokenMissingParameters(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	for _, tc := range []struct {
		name string
		form url.Values
		desc string
	}{
		{"refresh_token missing", url.Values{"grant_type": {"refresh_token"}}, "refresh_token is required (RFC 6749 section 6)"},
		{"refresh_token empty", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {""}}, "refresh_token is required (RFC 6749 section 6)"},
		{"code empty", url.Values{"grant_type": {"authorization_code"}, "code": {""}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}, "code is required (RFC 6749 section 4.1.3)"},
		{"redirect_uri empty", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {""}, "code_verifier": {a.Verifier}}, "redirect_uri is required: the authorization request included it (RFC 6749 section 4.1.3)"},
		{"code_verifier empty", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {""}}, "code_verifier is required: the authorization request had a code_challenge (RFC 7636 section 4.5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.token(c, tc.form)
			if r.Status != http.StatusBadRequest || r.Error != "invalid_request" || !strings.Contains(r.Description, tc.desc) {
				t.Fatalf("got %d %s (%s), want 400 invalid_request saying %q", r.Status, r.Error, r.Description, tc.desc)
			}
		})
	}
	// A wrong value is still invalid_grant, and none of the above used up
	// the code or the refresh token.
	if r := f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[1]}, "code_verifier": {a.Verifier}}); r.Error != "invalid_grant" {
		t.Errorf("other redirect_uri: %d %s, want invalid_grant", r.Status, r.Error)
	}
	if tr := f.exchange(c, a, code); tr.Status != http.StatusOK {
		t.Errorf("the code after the refusals: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if tr := f.refresh(c, rt); tr.Status != http.StatusOK {
		t.Errorf("the refresh token after the refusals: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
}

// TestRefreshRotation: rotation on every use; reuse after the grace window
// revokes the family; another client cannot use the token and leaves it
// usable; concurrent refreshes within the grace window keep the family.
func TestRefreshRotation(t *testing.T) {
	t.Run("reuse revokes the family", func(t *testing.T) {
		f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "0s"})
		c := f.Clients["gpt-apps-mcp"]
		tr := f.fullFlow(c, newAuthRequest(c))
		// Another client: refused, and the owner can still refresh.
		if r := f.refresh(f.Clients["gpt-actions"], tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("refresh by another client: %d %s", r.Status, r.Error)
		}
		r1 := f.refresh(c, tr.RefreshToken)
		if r1.Status != http.StatusOK {
			t.Fatalf("first refresh: %d %s %s", r1.Status, r1.Error, r1.Description)
		}
		r2 := f.refresh(c, r1.RefreshToken)
		if r2.Status != http.StatusOK {
			t.Fatalf("second refresh: %d %s", r2.Status, r2.Error)
		}
		// Reusing the first, rotated token: refused, and the whole family dies.
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("reuse: %d %s, want invalid_grant", r.Status, r.Error)
		}
		if r := f.refresh(c, r2.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("latest token after reuse: %d %s, want invalid_grant (family revoked)", r.Status, r.Error)
		}
		if st, _ := f.userinfo(r2.AccessToken); st != http.StatusUnauthorized {
			t.Errorf("access token after reuse: userinfo %d, want 401", st)
		}
	})
	t.Run("concurrent refreshes converge on one successor", func(t *testing.T) {
		// The window is the longest allowed, so however slowly a loaded
		// machine serves the 20 refreshes they all fall inside it; "after
		// the window" is then made by moving the rotation's time back in
		// the grant's record, not by waiting (no wall clock in the test).
		f := startFleet(t, map[string]string{"REFRESH_GRACE_PERIOD": "5m"})
		c := f.Clients["gpt-apps-mcp"]
		tr := f.fullFlow(c, newAuthRequest(c))
		const n = 20
		res := make([]tokenResponse, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; res[i] = f.refresh(c, tr.RefreshToken) }()
		}
		close(start)
		wg.Wait()
		for i, r := range res {
			if r.Status != http.StatusOK {
				t.Fatalf("concurrent refresh %d: %d %s %s", i, r.Status, r.Error, r.Description)
			}
			// Every response carries the same successor: no second branch.
			if r.RefreshToken != res[0].RefreshToken {
				t.Fatalf("concurrent refreshes returned different refresh tokens (%d and 0)", i)
			}
		}
		// Within the window the original token still gives the successor.
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK || r.RefreshToken != res[0].RefreshToken {
			t.Fatalf("original token within the window: %d %s, want the same successor", r.Status, r.Error)
		}
		// After the window: the successor is the one live token; the
		// original one is reuse and revokes the grant.
		endGraceWindow(t, f)
		next := f.refresh(c, res[n-1].RefreshToken)
		if next.Status != http.StatusOK {
			t.Fatalf("refresh with the successor after the window: %d %s", next.Status, next.Error)
		}
		endGraceWindow(t, f) // next rotated again: its own window ends too
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Fatalf("original token after the window: %d %s, want invalid_grant", r.Status, r.Error)
		}
		if r := f.refresh(c, next.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("latest token after reuse: %d %s, want invalid_grant (grant revoked)", r.Status, r.Error)
		}
	})
	t.Run("scope on a refresh (RFC 6749 §6)", func(t *testing.T) {
		f := startFleet(t, nil)
		c := f.Clients["gpt-apps-mcp"]
		a := newAuthRequest(c)
		a.Scope = "openid profile email"
		tr := f.fullFlow(c, a)
		refresh := func(rt, scope string) tokenResponse {
			return f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {scope}})
		}
		verifier := f.Verifier(f.Base + "/mcp")
		tokenScopes := func(r tokenResponse) (string, tokens.Profile) {
			t.Helper()
			cl, err := verifier.Verify(ctxT(t), r.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Join(cl.Scopes, " "), cl.Profile
		}
		// More than granted: invalid_scope naming the scope, and the token
		// was not rotated.
		r := refresh(tr.RefreshToken, "openid profile email offline_access")
		if r.Status != http.StatusBadRequest || r.Error != "invalid_scope" || !strings.Contains(r.Description, `The scope 'offline_access' was not granted to this grant`) {
			t.Errorf("refresh asking for more: %d %s %q, want 400 invalid_scope naming offline_access", r.Status, r.Error, r.Description)
		}
		// Narrower: the tokens carry the scopes asked for, in the grant's
		// order, and the access token's profile follows them.
		r = refresh(tr.RefreshToken, "email openid")
		if r.Status != http.StatusOK || r.Scope != "openid email" {
			t.Fatalf("narrower refresh: %d %s %s, scope %q, want \"openid email\"", r.Status, r.Error, r.Description, r.Scope)
		}
		if sc, p := tokenScopes(r); sc != "openid email" || p.Email == "" || p.Name != "" || p.PreferredUsername != "" {
			t.Fatalf("narrower refresh's access token: scope %q, profile %+v (want email claims only)", sc, p)
		}
		if st, info := f.userinfo(r.AccessToken); st != http.StatusOK || info["email"] == nil || info["name"] != nil {
			t.Fatalf("userinfo with the narrower token: %d %v", st, info)
		}
		// The grant and its refresh token keep the whole scope (§6: the new
		// refresh token's scope is the old one's): a later refresh without
		// scope, or naming it all, gets all of it back.
		for _, scope := range []string{"", "profile openid email"} {
			r = refresh(r.RefreshToken, scope)
			if r.Status != http.StatusOK || r.Scope != "openid profile email" {
				t.Fatalf("refresh with scope %q after a narrower one: %d %s %s, scope %q", scope, r.Status, r.Error, r.Description, r.Scope)
			}
			if sc, p := tokenScopes(r); sc != "openid profile email" || p.Name == "" {
				t.Fatalf("access token after a narrower refresh: scope %q profile %+v", sc, p)
			}
		}
		// A scope never granted, after all that: still invalid_scope, and
		// the latest token still works.
		if x := refresh(r.RefreshToken, "openid shipments.read"); x.Status != http.StatusBadRequest || x.Error != "invalid_scope" {
			t.Fatalf("a scope never granted: %d %s, want invalid_scope", x.Status, x.Error)
		}
		if x := f.refresh(c, r.RefreshToken); x.Status != http.StatusOK {
			t.Fatalf("the token after the refusal: %d %s", x.Status, x.Error)
		}
	})

	t.Run("forged and foreign refresh tokens", func(t *testing.T) {
		f := startFleet(t, nil)
		c := f.Clients["gpt-apps-mcp"]
		tr := f.fullFlow(c, newAuthRequest(c))
		key, mac, _ := strings.Cut(strings.TrimPrefix(tr.RefreshToken, "ory_rt_"), ".")
		for name, rt := range map[string]string{
			"wrong mac":    "ory_rt_" + key + "." + strings.Repeat("A", len(mac)),
			"no prefix":    key + "." + mac,
			"garbage":      "ory_rt_x.y",
			"empty":        "",
			"other format": "ory_ac_" + key + "." + mac,
		} {
			r := f.refresh(c, rt)
			if r.Status != http.StatusBadRequest || (r.Error != "invalid_grant" && r.Error != "invalid_request") {
				t.Errorf("%s: %d %s, want 400 invalid_grant", name, r.Status, r.Error)
			}
		}
		// None of them counted as reuse: the grant is intact.
		if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
			t.Fatalf("the real token after forged ones: %d %s", r.Status, r.Error)
		}
	})
}

// endGraceWindow moves the last rotation of the fleet's one grant (its
// "rotated" time, Unix ms) an hour back: the grace window of that rotation
// has passed, as it would have by waiting.
func endGraceWindow(t *testing.T, f *fleet) {
	t.Helper()
	rdb := f.Redis.Client()
	keys := rdb.Keys(ctxT(t), "*as:grant2:*").Val()
	if len(keys) != 1 {
		t.Fatalf("grant keys %v, want the fleet's one grant", keys)
	}
	// The record's header (store/record.go): its fourth line is the time
	// of the last rotation.
	lines := strings.SplitN(rdb.Get(ctxT(t), keys[0]).Val(), "\n", 5)
	if len(lines) != 5 || lines[0] != "g2" {
		t.Fatalf("grant record %q", lines)
	}
	lines[3] = strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
	if err := rdb.Set(ctxT(t), keys[0], strings.Join(lines, "\n"), redis.KeepTTL).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestGrantStorageBound: a grant's Redis memory is the same after 1 and
// after 50 refreshes (docs/reference/oauth.md, "State in Redis").
func TestGrantStorageBound(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	tr := f.fullFlow(c, newAuthRequest(c))
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	// grantState is every auth-server token key: the code, the grant and
	// the subject's grant index.
	grantState := func() (keys []string, bytes int64) {
		for _, pattern := range []string{"*as:code:*", "*as:grant:*", "*as:grant2:*", "*as:subject-grants:*", "*as:rt*", "*as:at:*", "*as:fam:*"} {
			for _, k := range rdb.Keys(ctx, pattern).Val() {
				keys = append(keys, k)
				bytes += rdb.MemoryUsage(ctx, k).Val()
			}
		}
		return keys, bytes
	}
	rt := tr.RefreshToken
	var keys1 []string
	var bytes1 int64
	for i := 1; i <= 50; i++ {
		r := f.refresh(c, rt)
		if r.Status != http.StatusOK {
			t.Fatalf("refresh %d: %d %s", i, r.Status, r.Error)
		}
		rt = r.RefreshToken
		if i == 1 {
			keys1, bytes1 = grantState()
		}
	}
	keys50, bytes50 := grantState()
	if len(keys1) != len(keys50) || bytes1 != bytes50 {
		t.Fatalf("refresh 1: %d keys, %d bytes; refresh 50: %d keys, %d bytes; want equal\n%v\n%v", len(keys1), bytes1, len(keys50), bytes50, keys1, keys50)
	}
	for _, k := range keys50 {
		t.Logf("after 50 refreshes: %s: %d bytes", k, rdb.MemoryUsage(ctx, k).Val())
	}
}

// TestRefreshIDToken: a refresh returns an ID token only when its scope
// parameter names openid (OpenID Connect Core §12.2).
func TestRefreshIDToken(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	if tr.IDToken == "" {
		t.Fatal("the code grant returned no ID token")
	}
	r := f.refresh(c, tr.RefreshToken)
	if r.Status != http.StatusOK || r.IDToken != "" {
		t.Fatalf("plain refresh: %d %s, id_token present: %v (want none)", r.Status, r.Error, r.IDToken != "")
	}
	r2 := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}, "scope": {"openid"}})
	if r2.Status != http.StatusOK || r2.IDToken == "" {
		t.Fatalf("refresh with scope=openid: %d %s %s, id_token present: %v (want one)", r2.Status, r2.Error, r2.Description, r2.IDToken != "")
	}
}

// TestAudiences: the resource selects the audience; a token for one
// audience is refused by the other service's verifier; a refresh keeps it.
func TestAudiences(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	mcp, actions := f.Base+"/mcp", f.Base+"/actions"
	a := newAuthRequest(c)
	a.Resource = actions
	tr := f.fullFlow(c, a)
	if _, err := f.Verifier(actions).Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatalf("actions verifier: %v", err)
	}
	if _, err := f.Verifier(mcp).Verify(ctxT(t), tr.AccessToken); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatalf("mcp verifier accepted an actions token: %v", err)
	}
	r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {mcp}})
	if r.Status != http.StatusBadRequest || r.Error != "invalid_target" {
		t.Fatalf("refresh to another resource: %d %s, want invalid_target", r.Status, r.Error)
	}
	r = f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {actions}})
	if r.Status != http.StatusOK {
		t.Fatalf("refresh naming the same resource: %d %s", r.Status, r.Error)
	}
	if _, err := f.Verifier(actions).Verify(ctxT(t), r.AccessToken); err != nil {
		t.Fatalf("refreshed token lost its audience: %v", err)
	}
}

// TestES256AccessTokens: with ACCESS_TOKEN_SIGNING_ALG=ES256 access tokens
// are ES256 (the key published in the JWKS, the algorithm in discovery),
// the fleet verifier and userinfo accept them, and ID tokens stay RS256.
func TestES256AccessTokens(t *testing.T) {
	f := startFleet(t, map[string]string{"ACCESS_TOKEN_SIGNING_ALG": "ES256"})
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	alg := func(raw string) string {
		h, _, _ := strings.Cut(raw, ".")
		b, _ := base64.RawURLEncoding.DecodeString(h)
		var hdr struct{ Alg string }
		_ = json.Unmarshal(b, &hdr)
		return hdr.Alg
	}
	if a := alg(tr.AccessToken); a != "ES256" {
		t.Fatalf("access token alg %s, want ES256", a)
	}
	if a := alg(tr.IDToken); a != "RS256" {
		t.Errorf("ID token alg %s, want RS256", a)
	}
	if _, err := f.Verifier(c.Audience).Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo: %d", st)
	}
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK || alg(r.AccessToken) != "ES256" {
		t.Fatalf("refresh: %d %s", r.Status, r.Error)
	}
	var md map[string]any
	resp, err := http.Get(f.Base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	// ES256 first; RS256 too, since the RSA key is published and tokens
	// signed with it verify (TestAccessTokenAlgSwitch).
	if got, _ := md["access_token_signing_alg_values_supported"].([]any); len(got) != 2 || got[0] != "ES256" || got[1] != "RS256" {
		t.Errorf("discovery access_token_signing_alg_values_supported = %v, want [ES256 RS256]", got)
	}
	resp, err = http.Get(f.Base + "/oauth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"alg":"ES256"`) || !strings.Contains(string(b), `"crv":"P-256"`) {
		t.Errorf("JWKS without the ES256 key: %s", b)
	}
}

// TestGrantRoundTrips counts the auth-server's Redis commands on the grant
// path with MONITOR: commands on the code, grant and subject-index keys (and
// the index's sweep mark, whose hash tag is the index key), not counting
// those a Lua script runs. A code grant reads the code once, then lists the
// grant under its subject and commits in one pipeline (five commands, then
// the script: 2 round trips; the store's TestStoreContract
// counts the round trips themselves); a refresh is one script that reads
// the grant, applies the rotation rule and rotates, and leaves the
// subject's index alone (docs/reference/oauth.md, "State in Redis").
func TestGrantRoundTrips(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["gpt-apps-mcp"]
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	count := func(grant func() tokenResponse) (int, []string) {
		t.Helper()
		// MONITOR over a plain connection of its own: it streams one line
		// per command ("+<time> [0 <client>] "cmd" "arg"…", "[0 lua]" for
		// commands a script runs).
		conn, err := net.Dial("tcp", f.Redis.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
			t.Fatal(err)
		}
		ch := make(chan string, 1000)
		go func() {
			defer close(ch)
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				ch <- sc.Text()
			}
		}()
		// MONITOR is live once it echoes our own marker.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			rdb.Echo(ctx, "start")
			select {
			case l := <-ch:
				if strings.Contains(l, `"start"`) {
					goto live
				}
			case <-time.After(50 * time.Millisecond):
			}
		}
		t.Fatal("MONITOR did not start")
	live:
		if tr := grant(); tr.Status != http.StatusOK {
			t.Fatalf("grant: %d %s", tr.Status, tr.Error)
		}
		rdb.Echo(ctx, "end")
		var trips []string
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l := <-ch:
				if strings.Contains(l, `"end"`) {
					return len(trips), trips
				}
				if !strings.Contains(l, " lua]") && (strings.Contains(l, ":as:code:") || strings.Contains(l, ":as:grant:") || strings.Contains(l, ":as:grant2:") || strings.Contains(l, ":as:subject-grants:")) {
					trips = append(trips, l)
				}
			case <-timeout:
				t.Fatal("MONITOR did not see the end marker")
			}
		}
	}
	// Warm-up: go-redis loads each script on its first use (EVALSHA answers
	// NOSCRIPT once, then EVAL); count the steady state.
	warm := f.fullFlow(c, newAuthRequest(c))
	if r := f.refresh(c, warm.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("warm-up refresh: %d %s", r.Status, r.Error)
	}
	a := newAuthRequest(c)
	code := f.authorize(a)
	var tr tokenResponse
	n, trips := count(func() tokenResponse { tr = f.exchange(c, a, code); return tr })
	if n != 7 || !strings.Contains(trips[0], `"hgetall"`) || !strings.Contains(trips[5], `"set"`) || !strings.Contains(trips[6], `"evalsha"`) {
		t.Errorf("authorization_code grant: %d commands on the code, grant and index, want 7 (HGETALL; ZADD, EXPIRE, EXPIRE, ZCARD, the index sweep mark SET NX, then the redemption script, one pipeline):\n%s", n, strings.Join(trips, "\n"))
	}
	for i := range 3 {
		var r tokenResponse
		n, trips = count(func() tokenResponse { r = f.refresh(c, tr.RefreshToken); return r })
		if n != 1 || !strings.Contains(trips[0], `"evalsha"`) {
			t.Errorf("refresh %d: %d commands on the grant and index, want 1 (the refresh script):\n%s", i, n, strings.Join(trips, "\n"))
		}
		tr.RefreshToken = r.RefreshToken
	}
}

// TestLegacySSEResource: the gateway's /sse identifier (its protected
// resource metadata names …/sse) is a name of the MCP resource: asked for at
// authorize and token, it gets a token for MCP_RESOURCE_URL, which the MCP
// verifier accepts; a refresh may name either. A client not allowed the MCP
// resource gets invalid_target for it, as for /mcp.
func TestLegacySSEResource(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	mcp, sse := f.Base+"/mcp", f.Base+"/sse"
	a := newAuthRequest(c)
	a.Resource = sse
	code := f.authorize(a)
	tr := f.token(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
		"code_verifier": {a.Verifier}, "resource": {sse}})
	if tr.Status != http.StatusOK {
		t.Fatalf("token for the /sse resource: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	if _, err := f.Verifier(mcp).Verify(ctxT(t), tr.AccessToken); err != nil {
		t.Fatalf("MCP verifier refused a token asked for …/sse: %v", err)
	}
	for _, res := range []string{sse, mcp, "HTTP://" + strings.TrimPrefix(sse, "http://")} {
		r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {res}})
		if r.Status != http.StatusOK {
			t.Fatalf("refresh naming %s: %d %s", res, r.Status, r.Error)
		}
		tr.RefreshToken = r.RefreshToken
	}
	if r := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "resource": {f.Base + "/sse/x"}}); r.Error != "invalid_target" {
		t.Errorf("refresh naming …/sse/x: %d %s, want invalid_target", r.Status, r.Error)
	}
	// gpt-actions may use the Actions audience only.
	actionsOnly := f.Clients["gpt-actions"]
	b := newAuthRequest(actionsOnly)
	b.Resource = sse
	p := newBrowser(t, actionsOnly.RedirectURIs[0], f.IdP.Issuer).get(b.URL(f.Base))
	if p.Location == nil || p.Location.Query().Get("error") != "invalid_target" {
		t.Errorf("…/sse for an Actions-only client: %d %v", p.Status, p.Location)
	}
}
