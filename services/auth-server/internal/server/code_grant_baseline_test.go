package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The token endpoint's baseline: the authorization_code and refresh_token
// grants' answers pinned exactly — status, error, error_description,
// Cache-Control, Pragma, Content-Type, Retry-After — for every refusal of
// a presented code (none spends it), a replay (the grant revoked), racing
// redemptions (one wins), a hung Redis (503, the code kept) and the
// refresh grant's rotation, grace and reuse, so that a change to how a
// code or a refresh token is redeemed (in one Redis round trip, say)
// changes none of them.

const baselineInvalid = "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."
const baselineMissing = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."

type baselineWant struct {
	status      int
	err, desc   string
	retryAfter  bool
	contentType string
}

func baselineCheck(t *testing.T, name string, tr tokenResponse, w baselineWant) {
	t.Helper()
	if tr.Status != w.status || tr.Error != w.err || (w.desc != "" && tr.Description != w.desc) {
		t.Errorf("%s: %d %q %q\nwant %d %q %q", name, tr.Status, tr.Error, tr.Description, w.status, w.err, w.desc)
	}
	if tr.Status != http.StatusOK && (tr.AccessToken != "" || tr.RefreshToken != "" || tr.IDToken != "") {
		t.Errorf("%s: a refusal carries tokens", name)
	}
	if got := tr.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q", name, got)
	}
	if got := tr.Header.Get("Pragma"); got != "no-cache" {
		t.Errorf("%s: Pragma %q", name, got)
	}
	ct := w.contentType
	if ct == "" {
		ct = "application/json"
		if w.status == http.StatusOK {
			ct = "application/json;charset=UTF-8"
		}
	}
	if got := tr.Header.Get("Content-Type"); got != ct {
		t.Errorf("%s: Content-Type %q want %q", name, got, ct)
	}
	if got := tr.Header.Get("Retry-After") != ""; got != w.retryAfter {
		t.Errorf("%s: Retry-After %q (want present: %v)", name, tr.Header.Get("Retry-After"), w.retryAfter)
	}
	if tr.Header.Get("WWW-Authenticate") != "" && tr.Status != http.StatusUnauthorized {
		t.Errorf("%s: WWW-Authenticate %q", name, tr.Header.Get("WWW-Authenticate"))
	}
}

func baselineForm(a *authRequest, code string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}}
	if a.Verifier != "" {
		v.Set("code_verifier", a.Verifier)
	}
	return v
}

// Every refusal of a presented code, each with its exact answer; none
// burns the code: the rightful client redeems it after all of them.
func TestTokenBaselineCodeRefusalsKeepTheCode(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	other := f.Clients["gpt-actions"]
	pub := f.Clients["test-public"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	grantInvalid := func(hint string) baselineWant {
		return baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + hint}
	}
	cases := []struct {
		name   string
		client devClient
		edit   func(v url.Values)
		want   baselineWant
	}{
		{"wrong verifier", c, func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 43)) },
			grantInvalid(" The PKCE code challenge did not match the code verifier.")},
		{"verifier with one char more", c, func(v url.Values) { v.Set("code_verifier", a.Verifier+"x") },
			grantInvalid(" The PKCE code challenge did not match the code verifier.")},
		{"verifier 42 chars", c, func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 42)) },
			grantInvalid(" The PKCE code verifier must be at least 43 characters.")},
		{"verifier 129 chars", c, func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 129)) },
			grantInvalid(" The PKCE code verifier can not be longer than 128 characters.")},
		{"verifier bad charset", c, func(v url.Values) { v.Set("code_verifier", strings.Repeat("x", 42)+"+") },
			grantInvalid(" The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'.")},
		{"verifier missing", c, func(v url.Values) { v.Del("code_verifier") },
			baselineWant{400, "invalid_request", baselineMissing + " code_verifier is required: the authorization request had a code_challenge (RFC 7636 section 4.5).", false, ""}},
		{"verifier empty", c, func(v url.Values) { v.Set("code_verifier", "") },
			baselineWant{400, "invalid_request", baselineMissing + " code_verifier is required: the authorization request had a code_challenge (RFC 7636 section 4.5).", false, ""}},
		{"verifier repeated", c, func(v url.Values) { v["code_verifier"] = []string{strings.Repeat("x", 43), a.Verifier} },
			baselineWant{400, "invalid_request", "parameter code_verifier is repeated", false, ""}},
		{"wrong redirect_uri", c, func(v url.Values) { v.Set("redirect_uri", a.RedirectURI+"/x") },
			grantInvalid(" The 'redirect_uri' from this request does not match the one from the authorize request.")},
		{"redirect_uri trailing slash", c, func(v url.Values) { v.Set("redirect_uri", a.RedirectURI+"/") },
			grantInvalid(" The 'redirect_uri' from this request does not match the one from the authorize request.")},
		{"redirect_uri scheme upper case", c, func(v url.Values) { v.Set("redirect_uri", "HTTP"+strings.TrimPrefix(a.RedirectURI, "http")) },
			grantInvalid(" The 'redirect_uri' from this request does not match the one from the authorize request.")},
		{"redirect_uri missing", c, func(v url.Values) { v.Del("redirect_uri") },
			baselineWant{400, "invalid_request", baselineMissing + " redirect_uri is required: the authorization request included it (RFC 6749 section 4.1.3).", false, ""}},
		{"redirect_uri empty", c, func(v url.Values) { v.Set("redirect_uri", "") },
			baselineWant{400, "invalid_request", baselineMissing + " redirect_uri is required: the authorization request included it (RFC 6749 section 4.1.3).", false, ""}},
		{"redirect_uri repeated", c, func(v url.Values) { v["redirect_uri"] = []string{a.RedirectURI + "/x", a.RedirectURI} },
			baselineWant{400, "invalid_request", "parameter redirect_uri is repeated", false, ""}},
		{"another confidential client", other, func(v url.Values) { v.Set("redirect_uri", other.RedirectURIs[0]) },
			grantInvalid(" The OAuth 2.0 Client ID from this request does not match the one from the authorize request.")},
		{"another client, the code's redirect_uri", other, func(v url.Values) {},
			grantInvalid(" The OAuth 2.0 Client ID from this request does not match the one from the authorize request.")},
		{"a public client", pub, func(v url.Values) {},
			grantInvalid(" The OAuth 2.0 Client ID from this request does not match the one from the authorize request.")},
		{"code altered", c, func(v url.Values) { v.Set("code", code+"x") }, grantInvalid("")},
		{"code missing", c, func(v url.Values) { v.Del("code") },
			baselineWant{400, "invalid_request", baselineMissing + " code is required (RFC 6749 section 4.1.3).", false, ""}},
	}
	for _, tc := range cases {
		v := baselineForm(a, code)
		tc.edit(v)
		baselineCheck(t, tc.name, f.token(tc.client, v), tc.want)
	}
	tr := f.exchange(c, a, code)
	baselineCheck(t, "the rightful client after every refusal", tr, baselineWant{status: 200})
	if tr.AccessToken == "" || tr.RefreshToken == "" || tr.IDToken == "" || tr.TokenType != "bearer" && tr.TokenType != "Bearer" {
		t.Fatalf("rightful: %+v", tr)
	}

	// Another client's own code presented by this one (its redirect_uri
	// and verifier): refused; its own client redeems it after.
	oa := newAuthRequest(other)
	ocode := f.authorize(oa)
	baselineCheck(t, "another client's code", f.token(c, baselineForm(oa, ocode)),
		grantInvalid(" The OAuth 2.0 Client ID from this request does not match the one from the authorize request."))
	baselineCheck(t, "its own client after", f.exchange(other, oa, ocode), baselineWant{status: 200})
}

// A code issued without PKCE (a client that does not require it) with a
// code_verifier at the token endpoint: refused (a PKCE downgrade, RFC 9700
// §2.1.1), not burned. A challenge computed from a verifier RFC 7636 §4.1
// does not allow (42 or 129 characters, a '+'): the matching verifier is
// refused at the token endpoint. plain and a missing challenge are refused
// at authorize.
func TestTokenBaselinePKCEShapes(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	other := f.Clients["gpt-actions"]
	pub := f.Clients["test-public"]

	na := newAuthRequest(other)
	na.Verifier = ""
	ncode := f.authorize(na)
	v := baselineForm(na, ncode)
	v.Set("code_verifier", strings.Repeat("y", 43))
	baselineCheck(t, "no-PKCE code with a verifier", f.token(other, v),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " Unable to find initial PKCE data tied to this request"})
	baselineCheck(t, "no-PKCE code without a verifier", f.token(other, baselineForm(na, ncode)), baselineWant{status: 200})

	for _, tc := range []struct{ name, verifier, hint string }{
		{"42 chars", strings.Repeat("a", 42), " The PKCE code verifier must be at least 43 characters."},
		{"129 chars", strings.Repeat("a", 129), " The PKCE code verifier can not be longer than 128 characters."},
		{"a '+'", strings.Repeat("a", 42) + "+", " The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'."},
		{"a '/'", strings.Repeat("a", 42) + "/", " The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'."},
		{"a space", strings.Repeat("a", 42) + " ", " The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'."},
		{"non-ASCII", strings.Repeat("a", 41) + "é", " The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'."},
	} {
		ba := newAuthRequest(c)
		ba.Verifier = tc.verifier
		bcode := f.authorize(ba)
		baselineCheck(t, "verifier matching its challenge, "+tc.name, f.exchange(c, ba, bcode),
			baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + tc.hint})
	}
	// The boundaries RFC 7636 allows: 43 and 128 unreserved characters.
	for _, ver := range []string{strings.Repeat("A", 43), strings.Repeat("-._~", 32)} {
		ga := newAuthRequest(c)
		ga.Verifier = ver
		baselineCheck(t, "verifier of "+ver[:4]+"…", f.exchange(c, ga, f.authorize(ga)), baselineWant{status: 200})
	}

	for _, tc := range []struct {
		name  string
		c     devClient
		extra url.Values
		desc  string
	}{
		{"plain", c, url.Values{"code_challenge_method": {"plain"}, "code_challenge": {strings.Repeat("p", 43)}}, "code_challenge_method must be S256 (plain is not supported)"},
		{"no challenge (confidential, PKCE required)", c, nil, "code_challenge with code_challenge_method=S256 is required"},
		{"no challenge (public)", pub, nil, "code_challenge with code_challenge_method=S256 is required"},
	} {
		pa := newAuthRequest(tc.c)
		pa.Verifier = ""
		pa.Extra = tc.extra
		p := f.loginApproving(newBrowser(t, pa.RedirectURI), pa)
		if p.Location == nil {
			t.Errorf("%s: no redirect: %d", tc.name, p.Status)
			continue
		}
		q := p.Location.Query()
		if q.Get("error") != "invalid_request" || q.Get("error_description") != tc.desc || q.Get("code") != "" {
			t.Errorf("%s: %s", tc.name, p.Location)
		}
	}
}

// A replay after a redemption: 400 invalid_grant "already used", and the
// grant revoked — its refresh token refused, its access token refused at
// userinfo.
func TestTokenBaselineReplayRevokes(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	code := f.authorize(a)
	tr := f.exchange(c, a, code)
	baselineCheck(t, "redemption", tr, baselineWant{status: 200})
	if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo before the replay: %d", st)
	}
	baselineCheck(t, "replay", f.exchange(c, a, code),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The authorization code has already been used."})
	baselineCheck(t, "refresh after the replay", f.refresh(c, tr.RefreshToken),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The refresh token is malformed or not valid."})
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := f.userinfo(tr.AccessToken)
		if st == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("userinfo with the replayed code's access token: %d, want 401", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A replay with a wrong verifier, or by another client, is refused
	// as invalid_grant, as the first replay is; a second replay as the first.
	bad := *a
	bad.Verifier = strings.Repeat("z", 43)
	if r := f.exchange(c, &bad, code); r.Status != 400 || r.Error != "invalid_grant" {
		t.Errorf("replay with a wrong verifier: %d %s", r.Status, r.Error)
	}
	baselineCheck(t, "second replay", f.exchange(c, a, code),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The authorization code has already been used."})
}

// Scope, audience (RFC 8707 resource) and nonce carried into the tokens
// exactly; the ID token's claims (nonce, at_hash of this access token,
// auth_time, azp, aud); the refresh token refreshes, rotates, keeps scope
// and audience, and its predecessor reused after the grace window revokes.
func TestTokenBaselineClaimsAndRefresh(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	a.Scope = "openid email"
	a.Resource = f.Base + "/actions"
	tr := f.exchange(c, a, f.authorize(a))
	baselineCheck(t, "redemption", tr, baselineWant{status: 200})
	if tr.Scope != "openid email" || tr.ExpiresIn <= 0 {
		t.Errorf("scope %q expires_in %d", tr.Scope, tr.ExpiresIn)
	}
	checkIDToken(t, f, tr, c.ClientID, a.Nonce)
	idt, at := jwtPayload(t, tr.IDToken), jwtPayload(t, tr.AccessToken)
	sum := sha256.Sum256([]byte(tr.AccessToken))
	if got, want := idt["at_hash"], base64.RawURLEncoding.EncodeToString(sum[:16]); got != want {
		t.Errorf("at_hash %v want %s", got, want)
	}
	if idt["nonce"] != a.Nonce {
		t.Errorf("nonce %v want %s", idt["nonce"], a.Nonce)
	}
	if _, ok := idt["auth_time"].(float64); !ok {
		t.Errorf("auth_time %v", idt["auth_time"])
	}
	if aud := at["aud"]; !reflect.DeepEqual(aud, a.Resource) && !reflect.DeepEqual(aud, []any{a.Resource}) {
		t.Errorf("access token aud %v want %s", aud, a.Resource)
	}
	if s, _ := at["scope"].(string); s != "openid email" {
		if l, _ := at["scp"].([]any); len(l) != 2 {
			t.Errorf("access token scope %v / scp %v", at["scope"], at["scp"])
		}
	}
	if at["client_id"] != c.ClientID {
		t.Errorf("access token client_id %v", at["client_id"])
	}
	var keys []string
	for k := range idt {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, " "); got != "at_hash aud auth_time email email_verified exp iat iss jti nonce rat sub" {
		t.Errorf("ID token claim names %q, want: at_hash aud auth_time email email_verified exp iat iss jti nonce rat sub", got)
	}
	t.Logf("ID token claims %v", idt)
	t.Logf("access token claims %v", at)

	r1 := f.refresh(c, tr.RefreshToken)
	baselineCheck(t, "refresh", r1, baselineWant{status: 200})
	if r1.RefreshToken == "" || r1.RefreshToken == tr.RefreshToken || r1.Scope != "openid email" {
		t.Fatalf("refresh: rotated %v scope %q", r1.RefreshToken != tr.RefreshToken, r1.Scope)
	}
	if at2 := jwtPayload(t, r1.AccessToken); !reflect.DeepEqual(withoutPerToken(at2), withoutPerToken(at)) {
		t.Errorf("refreshed access token claims\n%v\nwant\n%v", at2, at)
	}
	r2 := f.refresh(c, r1.RefreshToken)
	baselineCheck(t, "second refresh", r2, baselineWant{status: 200})
	if r2.RefreshToken == r1.RefreshToken {
		t.Errorf("second refresh did not rotate")
	}
}

// One code, 8 redemptions at once split between two auth-server processes
// sharing one Redis: exactly one 200; the winner's grant revoked.
func TestTokenBaselineConcurrentAcrossReplicas(t *testing.T) {
	f := startFleet(t, nil)
	g := f.replica(nil)
	c := f.Clients["local-test"]
	for round := range 3 {
		a := newAuthRequest(c)
		code := f.authorize(a)
		out := make([]tokenResponse, 8)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				srv := f
				if i%2 == 1 {
					srv = g
				}
				out[i] = srv.exchange(c, a, code)
			}()
		}
		close(start)
		wg.Wait()
		w := oneWinner(t, out)
		if r := g.refresh(c, w.RefreshToken); r.Status != 400 || r.Error != "invalid_grant" {
			t.Fatalf("round %d: the winner's refresh token: %d %s (want revoked)", round, r.Status, r.Error)
		}
	}
}

// Redis hung at the redemption: 503 temporarily_unavailable with
// Retry-After, the code neither lost nor spent: redeemed once after.
func TestTokenBaselineRedisHung(t *testing.T) {
	f, c, a, code, tr := exchangeWhileRedisHung(t)
	if tr.Status != 503 || tr.Error != "temporarily_unavailable" || tr.Header.Get("Retry-After") == "" || tr.AccessToken != "" {
		t.Fatalf("Redis hung: %d %s %q %q", tr.Status, tr.Error, tr.Description, tr.Header.Get("Retry-After"))
	}
	baselineCheck(t, "Redis hung", tr, baselineWant{503, "temporarily_unavailable", "the service is temporarily unavailable; retry later", true, ""})
	if ra := tr.Header.Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5 (the store outage's delay)", ra)
	}
	got := f.exchangeRetrying(c, a, code)
	baselineCheck(t, "after Redis answers", got, baselineWant{status: 200})
	baselineCheck(t, "a second redemption", f.exchange(c, a, code),
		baselineWant{status: 400, err: "invalid_grant", desc: baselineInvalid + " The authorization code has already been used."})
}
