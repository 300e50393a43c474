package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// idTokenAuthTime is the auth_time claim of an ID token (0: absent); the
// signature is checked by checkIDToken in the flow tests.
func idTokenAuthTime(t *testing.T, idToken string) int64 {
	t.Helper()
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token %q", idToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.AuthTime
}

// OpenID Connect Core 1.0 §3.1.2.1 through the real dev IdP, whose users
// here hold a single sign-on session an hour old (DEVIDP_SESSION_AGE):
// auth_time is the IdP's, never made up; prompt=login and max_age are
// forwarded upstream, where they force a fresh sign-in; with forwarding of
// prompt=login turned off (UPSTREAM_FORWARD_PROMPT_LOGIN=false) the old
// session does not satisfy prompt=login and the client gets login_required;
// an IdP that sends no auth_time cannot satisfy max_age (login_required);
// the ID token then carries no auth_time rather than a made-up one;
// prompt=none is login_required and a bad max_age invalid_request.
func TestPromptLoginAndMaxAge(t *testing.T) {
	const hour = int64(time.Hour / time.Second)
	run := func(t *testing.T, f *fleet, extra map[string]string) (code, errCode, desc string) {
		t.Helper()
		a := newAuthRequest(f.Clients["local-test"])
		a.Extra = map[string][]string{}
		for k, v := range extra {
			a.Extra.Set(k, v)
		}
		b := newBrowser(t, a.RedirectURI)
		p := f.login(b, a)
		if p.Location == nil {
			t.Fatalf("no redirect to the client: %d %s", p.Status, p.Body)
		}
		q := p.Location.Query()
		if q.Get("code") != "" {
			tr := f.exchange(f.Clients["local-test"], a, q.Get("code"))
			if tr.Status != 200 {
				t.Fatalf("token: %d %s %s", tr.Status, tr.Error, tr.Description)
			}
			return tr.IDToken, "", ""
		}
		return "", q.Get("error"), q.Get("error_description")
	}

	t.Run("forwarded", func(t *testing.T) {
		f := startFleet(t, map[string]string{"DEVIDP_SESSION_AGE": "1h"})
		now := time.Now().Unix()
		// No freshness asked: the IdP's (old) auth_time, not now.
		id, e, d := run(t, f, nil)
		if at := idTokenAuthTime(t, id); e != "" || at > now-hour+60 || at < now-hour-60 {
			t.Errorf("plain sign-in: auth_time %d (now %d), error %s %s; want the session's start", at, now, e, d)
		}
		for _, extra := range []map[string]string{{"prompt": "login"}, {"max_age": "600"}, {"max_age": "0"}} {
			id, e, d := run(t, f, extra)
			if at := idTokenAuthTime(t, id); e != "" || at < now-5 {
				t.Errorf("%v: auth_time %d (now %d), error %s %s; want a fresh sign-in", extra, at, now, e, d)
			}
		}
		if _, e, _ := run(t, f, map[string]string{"prompt": "none"}); e != "login_required" {
			t.Errorf("prompt=none: %q, want login_required", e)
		}
		for _, bad := range []string{"soon", "-1", "1.5"} {
			if _, e, d := run(t, f, map[string]string{"max_age": bad}); e != "invalid_request" || !strings.Contains(d, "max_age") {
				t.Errorf("max_age=%s: %q %q, want invalid_request", bad, e, d)
			}
		}
	})
	t.Run("prompt=login not forwarded", func(t *testing.T) {
		f := startFleet(t, map[string]string{"DEVIDP_SESSION_AGE": "1h", "UPSTREAM_FORWARD_PROMPT_LOGIN": "false"})
		if _, e, d := run(t, f, map[string]string{"prompt": "login"}); e != "login_required" || !strings.Contains(d, "prompt=login") {
			t.Errorf("prompt=login with an old session upstream: %q %q, want login_required", e, d)
		}
		// max_age is still forwarded and honoured.
		if id, e, d := run(t, f, map[string]string{"max_age": "60"}); e != "" || idTokenAuthTime(t, id) < time.Now().Unix()-60 {
			t.Errorf("max_age=60: %q %q", e, d)
		}
	})
	t.Run("no auth_time upstream", func(t *testing.T) {
		f := startFleet(t, map[string]string{"DEVIDP_OMIT_AUTH_TIME": "true"})
		for _, extra := range []map[string]string{{"max_age": "600"}, {"prompt": "login"}} {
			if _, e, d := run(t, f, extra); e != "login_required" || !strings.Contains(d, "auth_time") {
				t.Errorf("%v without auth_time upstream: %q %q, want login_required", extra, e, d)
			}
		}
		// Without freshness asked the sign-in succeeds, and the ID token
		// has no auth_time rather than a made-up one.
		if id, e, d := run(t, f, nil); e != "" || idTokenAuthTime(t, id) != 0 {
			t.Errorf("plain sign-in without auth_time upstream: %q %q, auth_time %d", e, d, idTokenAuthTime(t, id))
		}
	})
}

// An upstream whose clock is not ours (idptest.StartShape with auth_time
// moved, a provider that signs the user in afresh at each request): an
// auth_time a few seconds before the request still satisfies prompt=login
// and a max_age it misses by as much (authTimeSkew, 5 s) — the grant's
// auth_time is then moved to satisfy them exactly, on our clock, so that
// the code exchange's ID token is signed — while one a minute before the
// request is login_required. An auth_time in the future (the provider's
// clock ahead, as its iat, which is accepted up to 30 s ahead) is now;
// further ahead it is server_error, whatever the request asked.
func TestFreshnessWithTheUpstreamClockAside(t *testing.T) {
	type outcome struct {
		authTime      int64
		errCode, desc string
	}
	run := func(t *testing.T, f *fleet, extra map[string]string) outcome {
		t.Helper()
		c := f.Clients["local-test"]
		a := newAuthRequest(c)
		a.Extra = map[string][]string{}
		for k, v := range extra {
			a.Extra.Set(k, v)
		}
		p := f.login(newBrowser(t, a.RedirectURI), a)
		if p.Location == nil {
			t.Fatalf("no redirect to the client: %d %s", p.Status, p.Body)
		}
		q := p.Location.Query()
		if q.Get("code") == "" {
			return outcome{errCode: q.Get("error"), desc: q.Get("error_description")}
		}
		tr := f.exchange(c, a, q.Get("code"))
		if tr.Status != 200 {
			return outcome{errCode: tr.Error, desc: fmt.Sprintf("token endpoint %d: %s", tr.Status, tr.Description)}
		}
		return outcome{authTime: idTokenAuthTime(t, tr.IDToken)}
	}

	t.Run("2s behind", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{AuthTimeSkew: -2 * time.Second, IDClaims: fullProfile}, nil)
		before := time.Now().Unix()
		if o := run(t, f, map[string]string{"prompt": "login"}); o.errCode != "" || o.authTime < before || o.authTime > time.Now().Unix() {
			t.Errorf("prompt=login, auth_time 2 s early: %+v; want a token whose ID token's auth_time is the request's (%d…now)", o, before)
		}
	})
	t.Run("a minute behind", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{AuthTimeSkew: -time.Minute, IDClaims: fullProfile}, nil)
		if o := run(t, f, map[string]string{"prompt": "login"}); o.errCode != "login_required" || !strings.Contains(o.desc, "prompt=login") {
			t.Errorf("prompt=login, auth_time a minute early: %+v; want login_required naming prompt=login", o)
		}
		// max_age=60 misses by ~2 s: within the leeway.
		before := time.Now().Unix()
		if o := run(t, f, map[string]string{"max_age": "58"}); o.errCode != "" || o.authTime < before-58 {
			t.Errorf("max_age=58, auth_time a minute old: %+v; want a token whose auth_time is at most 58 s before the request (%d)", o, before)
		}
		if o := run(t, f, map[string]string{"max_age": "30"}); o.errCode != "login_required" || !strings.Contains(o.desc, "max_age=30") {
			t.Errorf("max_age=30, auth_time a minute old: %+v; want login_required naming max_age", o)
		}
	})
	// Beyond the 30 s the provider's clock may run ahead (upstreamClockSkew,
	// as for its iat), its auth_time is no time at all — a clock a year
	// off, or milliseconds sent as seconds: the sign-in is server_error,
	// freshness asked or not, never a code carrying a made-up auth_time
	// (before, any future auth_time became the callback's time and met
	// prompt=login and max_age=0 without a sign-in).
	for name, ahead := range map[string]time.Duration{"a year ahead": 365 * 24 * time.Hour, "45s ahead": 45 * time.Second} {
		t.Run(name, func(t *testing.T) {
			f, _ := startShaped(t, idptest.Shape{AuthTimeSkew: ahead, IDClaims: fullProfile}, nil)
			for _, extra := range []map[string]string{nil, {"prompt": "login"}, {"max_age": "0"}, {"max_age": "60"}} {
				if o := run(t, f, extra); o.errCode != "server_error" || !strings.Contains(o.desc, "auth_time") || !strings.Contains(o.desc, "in the future") {
					t.Errorf("%v, auth_time %s: %+v; want server_error naming auth_time in the future", extra, name, o)
				}
			}
		})
	}
	t.Run("10s ahead", func(t *testing.T) {
		f, _ := startShaped(t, idptest.Shape{Skew: 10 * time.Second, AuthTimeSkew: 10 * time.Second, IDClaims: fullProfile}, nil)
		for _, extra := range []map[string]string{nil, {"prompt": "login"}, {"max_age": "0"}} {
			if o := run(t, f, extra); o.errCode != "" || o.authTime > time.Now().Unix() {
				t.Errorf("%v, auth_time 10 s ahead: %+v; want a token whose auth_time is not in the future", extra, o)
			}
		}
	})
}
