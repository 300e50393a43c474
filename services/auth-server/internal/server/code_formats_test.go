package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// Attacks on the code grant since a code's session is stored once (its
// request part; the PKCE and OpenID Connect parts hold "session":null) and
// its MAC is checked with the pooled HMAC state, fosite's own check only
// for a code the current secret does not sign: through real HTTP, real
// Redis and the real dev IdP login.

const (
	codecutSecretA = "codecut-break-secret-A-0123456789abcdef"
	codecutSecretB = "codecut-break-secret-B-fedcba9876543210"
)

// redeemConcurrently sends n redemptions of one code at once and checks
// that exactly one is served (oneWinner); it returns the winner.
func redeemConcurrently(t *testing.T, f *fleet, c devClient, a *authRequest, code string, n int) tokenResponse {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	out := fire(f, c, a, code, n, start, &wg)
	close(start)
	wg.Wait()
	return oneWinner(t, out)
}

// fire starts n redemptions of code, each sent once start is closed; their
// answers are in the slice once wg is done.
func fire(f *fleet, c devClient, a *authRequest, code string, n int, start chan struct{}, wg *sync.WaitGroup) []tokenResponse {
	out := make([]tokenResponse, n)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = f.exchange(c, a, code)
		}()
	}
	return out
}

// oneWinner checks the answers to concurrent redemptions of one code:
// exactly one served (200 with tokens), every other refused (400
// invalid_grant, or 503 from the signing queue, which never reaches the
// code); it returns the winner.
func oneWinner(t *testing.T, out []tokenResponse) tokenResponse {
	t.Helper()
	var winner *tokenResponse
	for i, tr := range out {
		switch {
		case tr.Status == http.StatusOK:
			if winner != nil {
				t.Fatalf("two 200s for one code among %d concurrent redemptions", len(out))
			}
			if tr.AccessToken == "" || tr.IDToken == "" || tr.RefreshToken == "" {
				t.Fatalf("200 without tokens: %+v", tr)
			}
			winner = &out[i]
		case tr.Status == http.StatusBadRequest && tr.Error == "invalid_grant",
			tr.Status == http.StatusServiceUnavailable && tr.Error == "temporarily_unavailable":
			if tr.AccessToken != "" || tr.IDToken != "" || tr.RefreshToken != "" {
				t.Fatalf("a refusal carries tokens: %+v", tr)
			}
		default:
			t.Fatalf("%d %s: %s (want 200 once, else 400 invalid_grant)", tr.Status, tr.Error, tr.Description)
		}
	}
	if winner == nil {
		t.Fatalf("no 200 among %d concurrent redemptions", len(out))
	}
	return *winner
}

// TOKEN_HMAC_SECRET rotated (TOKEN_HMAC_SECRETS_ROTATED) while codes are
// outstanding. A code signed with the previous secret is not accepted by
// the pooled check (current secret) and goes to fosite's, which tries the
// rotated secrets: redeemed once under 50 concurrent redemptions (the
// winner's grant revoked); refused with a wrong PKCE verifier, an altered
// MAC or an altered nonce (the same handle, so the same hash in Redis:
// only the MAC check refuses it), and redeemed by its client after those
// refusals; a refresh token of the previous secret refreshes. A code of
// the new secret with an altered nonce is refused by the pooled check,
// the code itself served once under 50 concurrent redemptions. Once the
// previous secret is dropped its codes are refused (400 invalid_grant,
// never a 5xx), and codes of the new secret are served.
func TestCodeAcrossHMACSecretRotation(t *testing.T) {
	f := startFleet(t, map[string]string{"TOKEN_HMAC_SECRET": codecutSecretA})
	c := f.Clients["test-public"]

	// Under secret A: a grant, and three codes left outstanding.
	before := f.fullFlow(c, newAuthRequest(c))
	if before.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", before)
	}
	reqs := make([]*authRequest, 3)
	codes := make([]string, 3)
	for i := range reqs {
		reqs[i] = newAuthRequest(c)
		codes[i] = f.authorize(reqs[i])
	}

	// Secret B current, A rotated.
	f.restart(map[string]string{"TOKEN_HMAC_SECRET": codecutSecretB, "TOKEN_HMAC_SECRETS_ROTATED": codecutSecretA})

	// A's code 0: 50 at once, one served, the winner's grant revoked.
	w := redeemConcurrently(t, f, c, reqs[0], codes[0], 50)
	if r := f.refresh(c, w.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Fatalf("the winner's refresh token after concurrent reuse of a rotated-secret code: %d %s (want 400 invalid_grant)", r.Status, r.Error)
	}

	// A's code 1: refusals first — none burns it — then its client.
	dot := strings.LastIndexByte(codes[1], '.')
	mac, err := base64.RawURLEncoding.DecodeString(codes[1][dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	mac[0] ^= 1
	forged := codes[1][:dot+1] + base64.RawURLEncoding.EncodeToString(mac)
	if tr := f.exchange(c, reqs[1], forged); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("altered MAC of a rotated-secret code: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	// Its nonce altered: the same handle, so the same hash in Redis — only
	// the MAC check refuses it.
	if tr := f.exchange(c, reqs[1], otherNonce(t, codes[1])); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("altered nonce of a rotated-secret code: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	wrong := *reqs[1]
	wrong.Verifier = strings.Repeat("v", 43)
	if tr := f.exchange(c, &wrong, codes[1]); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("wrong PKCE verifier, rotated-secret code: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	tr := f.exchange(c, reqs[1], codes[1])
	if tr.Status != http.StatusOK || tr.IDToken == "" || tr.RefreshToken == "" {
		t.Fatalf("rotated-secret code after the refusals: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	checkIDToken(t, f, tr, c.ClientID, reqs[1].Nonce)
	if r := f.refresh(c, tr.RefreshToken); r.Status != http.StatusOK {
		t.Errorf("refresh of a rotated-secret code's grant: %d %s: %s", r.Status, r.Error, r.Description)
	}
	if r := f.exchange(c, reqs[1], codes[1]); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("replay of a rotated-secret code: %d %s", r.Status, r.Error)
	}

	// A refresh token of secret A.
	if r := f.refresh(c, before.RefreshToken); r.Status != http.StatusOK || r.RefreshToken == "" {
		t.Errorf("refresh token of the previous secret: %d %s: %s", r.Status, r.Error, r.Description)
	}

	// B's own codes: the pooled check refuses an altered nonce; 50 at
	// once, one served.
	a := newAuthRequest(c)
	code := f.authorize(a)
	if tr := f.exchange(c, a, otherNonce(t, code)); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("altered nonce of a current-secret code: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	w = redeemConcurrently(t, f, c, a, code, 50)
	checkIDToken(t, f, w, c.ClientID, a.Nonce)

	// Secret A dropped: its last code is refused, B's are served.
	f.restart(map[string]string{"TOKEN_HMAC_SECRET": codecutSecretB, "TOKEN_HMAC_SECRETS_ROTATED": ""})
	if tr := f.exchange(c, reqs[2], codes[2]); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.AccessToken != "" {
		t.Errorf("a code of a dropped secret: %d %s: %s (want 400 invalid_grant)", tr.Status, tr.Error, tr.Description)
	}
	f.fullFlow(c, newAuthRequest(c))
}

// otherNonce is code with the last byte of its key's nonce changed: its
// grant id and MAC, so its store handle (store.CodeHandle), unchanged.
func otherNonce(t *testing.T, code string) string {
	t.Helper()
	k, mac, ok := strings.Cut(strings.TrimPrefix(code, store.CodePrefix), ".")
	key, err := base64.RawURLEncoding.DecodeString(k)
	if !ok || err != nil || len(key) < 2 || int(key[0])+1 >= len(key) {
		t.Fatalf("code %q: not ory_ac_<len|grant id|nonce>.<mac>", code)
	}
	key[len(key)-1] ^= 1
	forged := store.CodePrefix + base64.RawURLEncoding.EncodeToString(key) + "." + mac
	if store.CodeHandle(forged) != store.CodeHandle(code) {
		t.Fatalf("the altered code names another hash")
	}
	return forged
}

// jwtPayload is a JWT's claims, unverified (the flow tests check the
// signatures).
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// withoutPerToken drops the claims that differ between any two tokens of
// the same user and client (identifiers, times, hashes, the nonce).
func withoutPerToken(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "jti", "iat", "exp", "nbf", "auth_time", "rat", "at_hash", "c_hash", "nonce", "grant_id", "sid":
			continue
		}
		out[k] = v
	}
	return out
}

// A code written by the previous version — every part with its own copy
// of the session — is redeemed over HTTP as one written now, during a
// rolling upgrade, whichever of its PKCE and OpenID Connect parts hold a
// copy: the same ID token and access token claims (the nonce its own,
// auth_time and at_hash present, the resource as audience), a refresh
// that keeps scopes and audience, and a replay that revokes. Each code's
// hash is rewritten in Redis from what this version wrote (its request
// part's session copied into the other parts).
func TestPreviousFormatCodeOverHTTP(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	resource := f.Base + "/actions"

	type variant struct {
		name       string
		copyInto   []string
		req        *authRequest
		code       string
		idt, at    map[string]any
		refreshTok string
	}
	vs := []*variant{
		{name: "as written now"},
		{name: "previous version", copyInto: []string{"pkce", "oidc"}},
		{name: "PKCE part with a copy", copyInto: []string{"pkce"}},
		{name: "OpenID Connect part with a copy", copyInto: []string{"oidc"}},
	}
	for _, v := range vs {
		v.req = newAuthRequest(c)
		v.req.Resource = resource
		v.code = f.authorize(v.req)
		key, fields := codeHash(t, f, v.code)
		const null = `,"session":null}`
		i := strings.LastIndex(fields["req"], `,"session":`)
		if i < 0 || !strings.HasSuffix(fields["pkce"], null) || !strings.HasSuffix(fields["oidc"], null) {
			t.Fatalf("%s: the code's hash is not in this version's format: %v", v.name, fields)
		}
		session := fields["req"][i:]
		for _, part := range v.copyInto {
			if err := rdb.HSet(ctx, key, part, strings.TrimSuffix(fields[part], null)+session).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range vs {
		tr := f.exchange(c, v.req, v.code)
		if tr.Status != http.StatusOK || tr.IDToken == "" || tr.RefreshToken == "" {
			t.Fatalf("%s: %d %s: %s", v.name, tr.Status, tr.Error, tr.Description)
		}
		checkIDToken(t, f, tr, c.ClientID, v.req.Nonce)
		v.idt, v.at, v.refreshTok = jwtPayload(t, tr.IDToken), jwtPayload(t, tr.AccessToken), tr.RefreshToken
		if aud, _ := v.at["aud"].(string); aud != resource {
			if l, _ := v.at["aud"].([]any); len(l) != 1 || l[0] != resource {
				t.Errorf("%s: access token aud %v, want the resource %q (RFC 8707)", v.name, v.at["aud"], resource)
			}
		}
		if tr.Scope != "openid profile email" {
			t.Errorf("%s: scope %q", v.name, tr.Scope)
		}
	}
	want := vs[0]
	for _, v := range vs[1:] {
		if !reflect.DeepEqual(withoutPerToken(v.idt), withoutPerToken(want.idt)) {
			t.Errorf("%s: ID token claims\n%v\nwant (code written now)\n%v", v.name, v.idt, want.idt)
		}
		if !reflect.DeepEqual(withoutPerToken(v.at), withoutPerToken(want.at)) {
			t.Errorf("%s: access token claims\n%v\nwant (code written now)\n%v", v.name, v.at, want.at)
		}
		for _, k := range []string{"auth_time", "at_hash", "sid", "acr", "amr"} {
			if _, has := v.idt[k]; has != (want.idt[k] != nil) {
				t.Errorf("%s: ID token claim %s present %v, code written now: %v", v.name, k, has, want.idt[k] != nil)
			}
		}
	}
	for _, v := range vs {
		r := f.refresh(c, v.refreshTok)
		if r.Status != http.StatusOK || r.Scope != "openid profile email" {
			t.Fatalf("%s: refresh: %d %s %q", v.name, r.Status, r.Error, r.Scope)
		}
		if at := jwtPayload(t, r.AccessToken); !reflect.DeepEqual(withoutPerToken(at), withoutPerToken(v.at)) {
			t.Errorf("%s: refreshed access token claims\n%v\nwant\n%v", v.name, at, v.at)
		}
		if tr := f.exchange(c, v.req, v.code); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("%s: replay: %d %s", v.name, tr.Status, tr.Error)
		}
		if rr := f.refresh(c, r.RefreshToken); rr.Status != http.StatusBadRequest || rr.Error != "invalid_grant" {
			t.Errorf("%s: refresh after the replay: %d %s (want 400 invalid_grant: revoked)", v.name, rr.Status, rr.Error)
		}
	}
}

// codeHash is the Redis key and fields of a code's hash.
func codeHash(t *testing.T, f *fleet, code string) (string, map[string]string) {
	t.Helper()
	id, mac, ok := strings.Cut(store.CodeHandle(code), ".")
	if !ok {
		t.Fatalf("code %q has no handle", code)
	}
	rdb := f.Redis.Client()
	keys := rdb.Keys(ctxT(t), "*as:code:{"+id+"}:"+mac).Val()
	if len(keys) != 1 {
		t.Fatalf("keys of the code %v, want one", keys)
	}
	return keys[0], rdb.HGetAll(ctxT(t), keys[0]).Val()
}

var codeExpiry = regexp.MustCompile(`"authorize_code":"[^"]*"`)

// A code past its expiry (the session's, as fosite's check reads it) while
// its hash still lives — the hash outlives the code by a minute
// (store.ttlFor) — is refused (400 invalid_grant, no tokens) by the check
// that now runs on the pooled HMAC state, whether the code was written now
// (its expiry in the request part only) or by the previous version (in
// every part), and a code without openid is served without an ID token in
// both formats.
func TestExpiredCodeRefusedWhileItsHashLives(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	rdb := f.Redis.Client()
	ctx := ctxT(t)
	past := `"authorize_code":"` + time.Now().UTC().Add(-30*time.Second).Format(time.RFC3339) + `"`
	for _, previous := range []bool{false, true} {
		a := newAuthRequest(c)
		code := f.authorize(a)
		key, fields := codeHash(t, f, code)
		i := strings.LastIndex(fields["req"], `,"session":`)
		if i < 0 || !codeExpiry.MatchString(fields["req"][i:]) {
			t.Fatalf("request part without the code's expiry: %s", fields["req"])
		}
		session := codeExpiry.ReplaceAllString(fields["req"][i:], past)
		if err := rdb.HSet(ctx, key, "req", fields["req"][:i]+session).Err(); err != nil {
			t.Fatal(err)
		}
		if previous {
			for _, part := range []string{"pkce", "oidc"} {
				rdb.HSet(ctx, key, part, strings.TrimSuffix(fields[part], `,"session":null}`)+session)
			}
		}
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 {
			t.Fatalf("the code's hash has no time left (%v): the test needs it alive", ttl)
		}
		if tr := f.exchange(c, a, code); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.AccessToken != "" || tr.IDToken != "" {
			t.Errorf("previous format %v: an expired code: %d %s: %s (want 400 invalid_grant)", previous, tr.Status, tr.Error, tr.Description)
		}

		// Without openid: no OpenID Connect part, no ID token.
		a = newAuthRequest(c)
		a.Scope = "profile email"
		code = f.authorize(a)
		key, fields = codeHash(t, f, code)
		if _, ok := fields["oidc"]; ok {
			t.Errorf("a code without openid has an OpenID Connect part: %v", fields)
		}
		if previous {
			i := strings.LastIndex(fields["req"], `,"session":`)
			rdb.HSet(ctx, key, "pkce", strings.TrimSuffix(fields["pkce"], `,"session":null}`)+fields["req"][i:])
		}
		tr := f.exchange(c, a, code)
		if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.IDToken != "" || tr.Scope != "profile email" {
			t.Errorf("previous format %v, without openid: %d %s %q, ID token %v", previous, tr.Status, tr.Error, tr.Scope, tr.IDToken != "")
		}
	}
}

// toPreviousFormat rewrites the code's hash in Redis as the previous
// version wrote it: its request part's session copied into its PKCE and
// OpenID Connect parts.
func toPreviousFormat(t *testing.T, f *fleet, code string) {
	t.Helper()
	key, fields := codeHash(t, f, code)
	i := strings.LastIndex(fields["req"], `,"session":`)
	if i < 0 {
		t.Fatalf("request part without a session: %s", fields["req"])
	}
	for _, part := range []string{"pkce", "oidc"} {
		b, ok := strings.CutSuffix(fields[part], `,"session":null}`)
		if !ok {
			t.Fatalf("%s part not in this version's format: %s", part, fields[part])
		}
		if err := f.Redis.Client().HSet(ctxT(t), key, part, b+fields["req"][i:]).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// Codes of both formats redeemed at once during a rolling upgrade: a code
// written by the previous version and one written now, 25 concurrent
// redemptions each, all 50 at the same time — each code served once with
// its own nonce, each winner's grant revoked by the reuse.
func TestMixedFormatCodesConcurrentRedemption(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	for round := range 2 {
		reqs := []*authRequest{newAuthRequest(c), newAuthRequest(c)}
		codes := []string{f.authorize(reqs[0]), f.authorize(reqs[1])}
		toPreviousFormat(t, f, codes[0])
		start := make(chan struct{})
		var wg sync.WaitGroup
		outs := [][]tokenResponse{fire(f, c, reqs[0], codes[0], 25, start, &wg), fire(f, c, reqs[1], codes[1], 25, start, &wg)}
		close(start)
		wg.Wait()
		for i, out := range outs {
			w := oneWinner(t, out)
			checkIDToken(t, f, w, c.ClientID, reqs[i].Nonce)
			if r := f.refresh(c, w.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("round %d, code %d: the winner's refresh token after the reuse: %d %s (want 400 invalid_grant)", round, i, r.Status, r.Error)
			}
		}
	}
}

// A code's hash with one part gone (removed in Redis): without its request
// part the code is refused 400 invalid_grant whatever the other parts
// hold (this version's PKCE and OpenID Connect parts carry no session of
// their own); without its PKCE part the verifier cannot be checked and
// the code is refused, with or without a verifier (a public client:
// PKCE enforced) — never tokens, never a 5xx.
func TestCodeWithAPartGone(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	rdb := f.Redis.Client()
	for _, previous := range []bool{false, true} {
		for _, part := range []string{"req", "pkce"} {
			for _, verifier := range []bool{true, false} {
				a := newAuthRequest(c)
				code := f.authorize(a)
				if previous {
					toPreviousFormat(t, f, code)
				}
				key, _ := codeHash(t, f, code)
				if err := rdb.HDel(ctxT(t), key, part).Err(); err != nil {
					t.Fatal(err)
				}
				send := *a
				if !verifier {
					send.Verifier = ""
				}
				tr := f.exchange(c, &send, code)
				if tr.Status != http.StatusBadRequest || (tr.Error != "invalid_grant" && !(part == "pkce" && !verifier && tr.Error == "invalid_request")) || tr.AccessToken != "" || tr.IDToken != "" {
					t.Errorf("previous format %v, %s part gone, verifier sent %v: %d %s: %s", previous, part, verifier, tr.Status, tr.Error, tr.Description)
				}
			}
		}
	}
}

// RFC 8707 at the token endpoint with a code of either format: a resource
// other than the grant's is refused (400 invalid_target) and leaves the
// code its client's; the grant's resource named again (scheme and host in
// upper case, RFC 3986 §6.2.2.1) is served with that audience, and the refresh
// keeps it.
func TestCodeResourceAtTokenEndpointEitherFormat(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["test-public"]
	actions, mcp := f.Base+"/actions", f.Base+"/mcp"
	exchange := func(a *authRequest, code, resource string) tokenResponse {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI},
			"code_verifier": {a.Verifier}, "resource": {resource}}
		return f.token(c, form)
	}
	for _, previous := range []bool{false, true} {
		a := newAuthRequest(c)
		a.Resource = actions
		code := f.authorize(a)
		if previous {
			toPreviousFormat(t, f, code)
		}
		if tr := exchange(a, code, mcp); tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" || tr.AccessToken != "" {
			t.Errorf("previous format %v: another resource: %d %s: %s (want 400 invalid_target)", previous, tr.Status, tr.Error, tr.Description)
		}
		host := strings.TrimPrefix(f.Base, "http://")
		tr := exchange(a, code, "HTTP://"+strings.ToUpper(host)+"/actions")
		if tr.Status != http.StatusOK {
			t.Fatalf("previous format %v: the grant's resource: %d %s: %s", previous, tr.Status, tr.Error, tr.Description)
		}
		if aud := jwtPayload(t, tr.AccessToken)["aud"]; aud != actions {
			t.Errorf("previous format %v: access token aud %v, want %q", previous, aud, actions)
		}
		r := f.refresh(c, tr.RefreshToken)
		if aud := jwtPayload(t, r.AccessToken)["aud"]; r.Status != http.StatusOK || aud != actions {
			t.Errorf("previous format %v: refresh %d, aud %v, want %q", previous, r.Status, aud, actions)
		}
	}
}
