package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestIDTokenHintNotKeptDuringLogin: an authorization request waiting for
// the upstream sign-in (and then for the consent page) is stored in Redis
// for LOGIN_TTL; its id_token_hint, a signed ID token, is not stored with
// it — every value of every key of the test's own redis-server is read
// while the login is pending, while the consent page waits and after the
// code is issued, and none holds the hint (its signature) or the
// parameter's name. The hint still means what OpenID Connect Core
// §3.1.2.1 says: the hint's user signing in gets a code whose exchange
// gives an ID token, with or without a consent page; another user signing
// in is answered login_required (before the consent page). Before, the
// pending request's query held the whole hint.
func TestIDTokenHintNotKeptDuringLogin(t *testing.T) {
	f := newFleet(t, nil, "", true, twoUsers)
	f.start()
	rdb := redis.NewClient(&redis.Options{Addr: f.Redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	public := f.Clients["local-test"] // skip_consent (a public client with a loopback redirect may not: RFC 8252 §8.6)
	hint := f.fullFlow(public, newAuthRequest(public)).IDToken
	// A registered client: it gets the consent page.
	redirect := "http://127.0.0.1:8976/hint-consent-callback"
	st, reg := register(t, f, `{"redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none","client_name":"Hint client","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	consent := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{redirect}, AuthMethod: "none"}
	request := func(c devClient) *authRequest {
		a := newAuthRequest(c)
		a.Resource = f.Base + "/mcp"
		a.Extra = url.Values{"id_token_hint": {hint}}
		return a
	}
	parts := strings.Split(hint, ".")
	if len(parts) != 3 || parts[2] == "" {
		t.Fatalf("ID token %q", hint)
	}
	sig := parts[2]
	noHint := func(when string) {
		t.Helper()
		for key, v := range redisValues(t, rdb) {
			if strings.Contains(v, sig) || strings.Contains(v, "id_token_hint") {
				t.Errorf("%s: Redis key %q holds the id_token_hint: %.300s", when, key, v)
			}
		}
	}
	signIn := func(b *browser, a *authRequest, user, password string) *page {
		t.Helper()
		p := b.get(a.URL(f.Base))
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("want the IdP's login page, got %d at %s: %.300s", p.Status, p.URL, p.Body)
		}
		noHint("login pending")
		return b.submit(p, url.Values{"username": {user}, "password": {password}})
	}

	// The hint's user, a client without a consent page.
	a := request(public)
	p := signIn(newBrowser(t, a.RedirectURI), a, idptest.Username, idptest.Password)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("the hint's user: %d %v %.300s, want a code", p.Status, p.Location, p.Body)
	}
	noHint("code issued")
	if tr := f.exchange(public, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK || tr.IDToken == "" {
		t.Errorf("exchange: %d %s %s, want an ID token", tr.Status, tr.Error, tr.Description)
	}

	// The hint's user, through the consent page.
	a = request(consent)
	b := newBrowser(t, a.RedirectURI)
	p = signIn(b, a, idptest.Username, idptest.Password)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="consent_id"`) {
		t.Fatalf("want the consent page, got %d %v: %.300s", p.Status, p.Location, p.Body)
	}
	noHint("consent pending")
	p = b.submit(p, url.Values{"decision": {"approve"}})
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("after consent: %d %v %.300s, want a code", p.Status, p.Location, p.Body)
	}
	if tr := f.exchange(consent, a, p.Location.Query().Get("code")); tr.Status != http.StatusOK || tr.IDToken == "" {
		t.Errorf("exchange after consent: %d %s %s, want an ID token", tr.Status, tr.Error, tr.Description)
	}

	// Another user signs in: login_required, before any consent page.
	for _, c := range []devClient{public, consent} {
		a = request(c)
		p = signIn(newBrowser(t, a.RedirectURI), a, "eve", "eve-password")
		if p.Location == nil || p.Location.Query().Get("error") != "login_required" || p.Location.Query().Get("state") != a.State {
			t.Errorf("%s, another user signed in: %d %v %.300s, want login_required sent to the client", c.ClientID, p.Status, p.Location, p.Body)
		}
	}
	noHint("after the refusals")
}

// redisValues reads every key's value (strings, hashes, lists, sets,
// sorted sets), each flattened into one string.
func redisValues(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			vals = []string{v}
		case "hash":
			m, err := rdb.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "list":
			vals, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			vals, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			vals, err = rdb.ZRange(ctx, k, 0, -1).Result()
		case "none":
			continue // expired since KEYS
		default:
			t.Fatalf("key %q of type %s: not read", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k] = strings.Join(vals, "\n")
	}
	return out
}
