package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// previousCode is a code's hash as the previous version (main at 7352a1e)
// wrote it, captured from that code's store: its request, PKCE and OpenID
// Connect parts, each with its own copy of the session. Grant id
// 0b7c52d4-6f1e-4c53-9d0e-2f4c2f8f3a12, code MAC "m1".
func previousCode(t *testing.T) (id string, fields map[string]string) {
	t.Helper()
	b, err := os.ReadFile("testdata/code-written-by-7352a1e.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	return "0b7c52d4-6f1e-4c53-9d0e-2f4c2f8f3a12", fields
}

// codeReads is what fosite's code grant reads of a code, in its order:
// the request (code handler, HandleTokenEndpointRequest), PKCE, the
// request again (PopulateTokenEndpointResponse) and the OpenID Connect
// part, each with the access request's session as fosite passes it.
func codeReads(t *testing.T, ctx context.Context, s *store.Store, code string) []fosite.Requester {
	t.Helper()
	sig := store.CodeHandle(code)
	sess := oauth.NewSession()
	a, err1 := s.GetAuthorizeCodeSession(ctx, sig, sess)
	p, err2 := s.GetPKCERequestSession(ctx, sig, sess)
	a2, err3 := s.GetAuthorizeCodeSession(ctx, sig, sess)
	o, err4 := s.GetOpenIDConnectSession(ctx, code, fosite.NewAccessRequest(sess))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatalf("reading the code: %v", err)
	}
	return []fosite.Requester{a, p, a2, o}
}

// A code's session is stored once, in its request part: the PKCE and
// OpenID Connect parts hold "session":null and are read with the request
// part's session. Codes live minutes, so during a rolling upgrade a code
// written by the previous version (each part with its own copy) is
// redeemed by this one: such a hash, written to real Redis as that version
// wrote it, reads to the same requests and sessions as the same code
// written now, within a request scope and without one, and is redeemed
// once — and a second redemption revokes the grant — as before.
func TestCodeSessionStoredOnce(t *testing.T) {
	for _, setup := range setups {
		t.Run(setup.Mode(), func(t *testing.T) {
			ctx := context.Background()
			s, rdb := newStore(t, setup, 0)
			id, old := previousCode(t)
			oldCode, oldSig := code(id, "m1")
			oldKey := rdb.Key("as", "code", "{"+id+"}", "m1")
			if err := rdb.HSet(ctx, oldKey, old).Err(); err != nil {
				t.Fatal(err)
			}
			rdb.Expire(ctx, oldKey, time.Minute)

			// The same code written by this version: each part as fosite
			// hands it to the store (its authorize handlers' Sanitize of
			// one request), rebuilt from what the previous version read.
			was := codeReads(t, ctx, s, oldCode)
			newCode, newSig := code(id, "m2")
			for _, put := range []func() error{
				func() error { return s.CreateAuthorizeCodeSession(ctx, newSig, was[0]) },
				func() error {
					return s.CreateOpenIDConnectSession(ctx, newCode, withSession(was[3], was[0].GetSession()))
				},
				func() error { return s.CreatePKCERequestSession(ctx, newSig, withSession(was[1], was[0].GetSession())) },
			} {
				if err := put(); err != nil {
					t.Fatal(err)
				}
			}
			newKey := rdb.Key("as", "code", "{"+id+"}", "m2")
			f := rdb.HGetAll(ctx, newKey).Val()
			for _, part := range []string{"pkce", "oidc"} {
				if !strings.HasSuffix(f[part], `,"session":null}`) {
					t.Errorf("%s part written with a session: %s", part, f[part])
				}
			}
			if !strings.Contains(f["req"], `"subject":"user-1"`) {
				t.Errorf("request part without its session: %s", f["req"])
			}
			oldBytes, newBytes := rdb.MemoryUsage(ctx, oldKey).Val(), rdb.MemoryUsage(ctx, newKey).Val()
			t.Logf("MEMORY USAGE of the code's hash: %d bytes as the previous version wrote it, %d now", oldBytes, newBytes)
			if newBytes > oldBytes-1000 {
				t.Errorf("the code's hash is %d bytes, the previous version's %d: the session is not stored once", newBytes, oldBytes)
			}

			if got := was[1].GetRequestForm().Get("code_challenge"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
				t.Errorf("PKCE part of the previous version's code: code_challenge %q", got)
			}
			if got := was[3].GetRequestForm().Get("nonce"); got != "n-0S6_WzA2Mj" {
				t.Errorf("OpenID Connect part of the previous version's code: nonce %q", got)
			}
			if got := was[0].GetRequestForm().Get("redirect_uri"); got != "https://c1.example/cb" {
				t.Errorf("request part of the previous version's code: redirect_uri %q", got)
			}
			if sess := was[3].GetSession().(*oauth.Session); sess.Claims.Subject != "user-1" || sess.Profile.Email != "u@example.com" || sess.Claims.Extra["name"] != "Dev User" {
				t.Errorf("OpenID Connect part's session of the previous version's code: %+v", sess)
			}
			for name, ctx := range map[string]context.Context{"in a request scope": store.WithRequestScope(ctx), "without one": ctx} {
				for _, c := range []string{oldCode, newCode} {
					got := codeReads(t, ctx, s, c)
					for j := range got {
						if !reflect.DeepEqual(got[j], was[j]) {
							t.Errorf("%s, code %s, read %d:\n%#v\n%#v\nwant\n%#v\n%#v", name, c, j, got[j], got[j].GetSession(), was[j], was[j].GetSession())
						}
					}
				}
			}

			// A part read before the request part (not fosite's order)
			// gets the request part's session all the same.
			for _, sig := range []string{oldSig, newSig} {
				p, err := s.GetPKCERequestSession(store.WithRequestScope(ctx), sig, oauth.NewSession())
				if err != nil || !reflect.DeepEqual(p, was[1]) {
					t.Errorf("PKCE part of %s read first: %v\n%#v\n%#v", sig, err, p, p.GetSession())
				}
			}

			// Redeemed once under concurrency, then a reuse revokes.
			for _, sig := range []string{oldSig, newSig} {
				rt := id + ".rt-" + sig[len(id)+1:] // the grant's refresh token handle
				var wins atomic.Int32
				var wg sync.WaitGroup
				for range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := redeem(ctx, s, sig, was[0], rt); err == nil {
							wins.Add(1)
						} else if !errors.Is(err, store.ErrCodeReplayed) {
							t.Errorf("redeem: %v", err)
						}
					}()
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("%s: %d redemptions won, want 1", sig, wins.Load())
				}
				if _, err := s.GetAuthorizeCodeSession(store.WithRequestScope(ctx), sig, oauth.NewSession()); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
					t.Errorf("%s: read after redemption: %v", sig, err)
				}
				if _, err := s.GetRefreshTokenSession(ctx, rt, oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
					t.Errorf("%s: the grant after its code's reuse: %v, want revoked", sig, err)
				}
			}
		})
	}
}

// withSession is r with session s, as fosite's Sanitize hands the store
// each part of one authorize request.
func withSession(r fosite.Requester, s fosite.Session) fosite.Requester {
	c := *r.(*fosite.Request)
	c.Session = s
	return &c
}

// A part whose session is the request part's is refused when the request
// part is missing or unreadable: no part is served with an empty or a
// foreign session.
func TestCodePartWithoutRequestPart(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t, setups[0], 0)
	id, old := previousCode(t)
	c, sig := code(id, "m3")
	r := request(t, s, id)
	if err := s.CreatePKCERequestSession(ctx, sig, r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOpenIDConnectSession(ctx, c, r); err != nil {
		t.Fatal(err)
	}
	for name, ctx := range map[string]context.Context{"in a request scope": store.WithRequestScope(ctx), "without one": ctx} {
		if _, err := s.GetPKCERequestSession(ctx, sig, oauth.NewSession()); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("%s: PKCE part without a request part: %v, want not found", name, err)
		}
		if _, err := s.GetOpenIDConnectSession(ctx, c, fosite.NewAccessRequest(oauth.NewSession())); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("%s: OpenID Connect part without a request part: %v, want not found", name, err)
		}
	}
	key := rdb.Key("as", "code", "{"+id+"}", "m3")
	rdb.HSet(ctx, key, "req", strings.Replace(old["req"], `"session":{`, `"session":{"oidc":`, 1))
	for name, ctx := range map[string]context.Context{"in a request scope": store.WithRequestScope(ctx), "without one": ctx} {
		if _, err := s.GetPKCERequestSession(ctx, sig, oauth.NewSession()); err == nil || errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("%s: PKCE part with an unreadable request part: %v, want an error", name, err)
		}
	}
}
