package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/tollgate/tollgate/services/auth-server/internal/jsontest"
	"github.com/tollgate/tollgate/services/auth-server/internal/oauth"
	"github.com/tollgate/tollgate/services/auth-server/internal/store"
)

// TestFastDecodeMatchesEncodingJSON: within a request scope the store
// decodes a code's stored requests and session with goccy/go-json
// (code.go, readPart; store.go, decodeSession); outside one with encoding/json. Over random
// requests and sessions — every field of the session set or left empty,
// strings with what JSON escapes (quotes, backslashes, control bytes,
// <>&, U+2028/2029, bytes that are not UTF-8), numbers of every size,
// nested extra claims — the code's three parts, written as the
// authorize endpoint writes them and read back through real Redis, decode
// to the same requests and sessions both ways.
func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, setups[0], 0)
	rng := rand.New(rand.NewPCG(10, 35))
	g := jsontest.Gen{Rand: rng, Pieces: append(slices.Clip(jsontest.Pieces), "session", `"session":`, `,"form":`)}
	str := g.String
	list := g.List
	tm := func() time.Time {
		if rng.IntN(3) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9), int64(rng.IntN(1e9))).UTC()
	}
	value := g.Value
	client, err := s.GetClient(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		sess := oauth.NewSession()
		sess.Subject, sess.Username = str(), str()
		sess.Profile.Name, sess.Profile.Email, sess.Profile.EmailVerified = str(), str(), rng.IntN(2) == 0
		sess.Profile.GivenName, sess.Profile.FamilyName, sess.Profile.PreferredUsername = str(), str(), str()
		c := sess.Claims
		c.JTI, c.Issuer, c.Subject, c.Nonce, c.AccessTokenHash, c.CodeHash = str(), str(), str(), str(), str(), str()
		c.Audience, c.AuthenticationMethodsReferences = list(), list()
		c.AuthenticationContextClassReference = str()
		c.ExpiresAt, c.IssuedAt, c.RequestedAt, c.AuthTime = tm(), tm(), tm(), tm()
		if rng.IntN(4) > 0 {
			c.Extra = map[string]any{}
			for range rng.IntN(6) {
				c.Extra[str()] = value(0)
			}
		}
		if rng.IntN(2) == 0 {
			sess.Headers.Extra["kid"] = str()
		}
		if rng.IntN(3) == 0 {
			sess.Headers.Extra[str()] = value(1)
		}
		for _, k := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken} {
			if rng.IntN(2) == 0 {
				sess.SetExpiresAt(k, time.Now().Add(time.Duration(rng.Int64N(int64(time.Hour)))))
			}
		}
		id := fmt.Sprintf("dec-%d", i)
		r := fosite.NewRequest()
		r.ID, r.Client, r.Session = id, client, sess
		r.RequestedAt = time.Unix(rng.Int64N(4e9), 0)
		r.RequestedScope, r.GrantedScope = list(), list()
		r.RequestedAudience, r.GrantedAudience = list(), list()
		r.Form = url.Values{}
		for range rng.IntN(5) {
			r.Form[str()] = list()
		}
		code, sig := code(id, "m")
		for _, put := range []func() error{
			func() error { return s.CreateAuthorizeCodeSession(ctx, sig, r) },
			func() error { return s.CreatePKCERequestSession(ctx, sig, r.Sanitize([]string{"code_challenge"})) },
			func() error { return s.CreateOpenIDConnectSession(ctx, code, r.Sanitize([]string{"nonce"})) },
		} {
			if err := put(); err != nil {
				t.Fatal(err)
			}
		}
		read := func(ctx context.Context) []fosite.Requester {
			sess := oauth.NewSession()
			a, err1 := s.GetAuthorizeCodeSession(ctx, sig, sess)
			p, err2 := s.GetPKCERequestSession(ctx, sig, sess)
			o, err3 := s.GetOpenIDConnectSession(ctx, code, fosite.NewAccessRequest(sess))
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("request %d: %v %v %v", i, err1, err2, err3)
			}
			return []fosite.Requester{a, p, o}
		}
		fast, std := read(store.WithRequestScope(ctx)), read(ctx)
		for j := range fast {
			if !reflect.DeepEqual(fast[j], std[j]) {
				t.Fatalf("request %d, part %d differs:\ngoccy/go-json %#v\n%#v\nencoding/json %#v\n%#v", i, j, fast[j], fast[j].GetSession(), std[j], std[j].GetSession())
			}
		}
	}
}
