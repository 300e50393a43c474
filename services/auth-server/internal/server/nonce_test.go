package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/services/dev-idp/idptest"
)

// TestUpstreamNonceMismatchIsRefused: the ID token the upstream returns must
// carry the nonce stored with the pending login. The test alters the stored
// nonce in Redis between the redirect to the IdP and the callback (as a
// replayed or injected upstream response would), and the callback must end
// in an OAuth error for the client, with no code.
func TestUpstreamNonceMismatchIsRefused(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	b := newBrowser(t, c.RedirectURIs[0])
	login := b.get(a.URL(f.Base))
	if login.Status != 200 {
		t.Fatalf("no login page: %d %s", login.Status, login.Body)
	}

	ctx := context.Background()
	rdb := f.Redis.Client()
	keys, err := rdb.Keys(ctx, "*pending:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("pending logins in Redis: %v %v", keys, err)
	}
	raw, err := rdb.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil || p["nonce"] == "" {
		t.Fatalf("pending record %s: %v", raw, err)
	}
	p["nonce"] = "not-the-nonce-sent-upstream"
	altered, _ := json.Marshal(p)
	ttl := rdb.TTL(ctx, keys[0]).Val()
	if err := rdb.Set(ctx, keys[0], altered, ttl).Err(); err != nil {
		t.Fatal(err)
	}

	end := b.submit(login, url.Values{"username": {idptest.Username}, "password": {idptest.Password}})
	if end.Location == nil {
		t.Fatalf("no redirect to the client: %d %s", end.Status, end.Body)
	}
	q := end.Location.Query()
	if q.Get("code") != "" || q.Get("error") == "" || q.Get("state") != a.State || q.Get("iss") != f.Base {
		t.Fatalf("callback with a mismatched nonce redirected to %s; want an error with state and iss, and no code", end.Location)
	}
	t.Logf("refused with %s: %s", q.Get("error"), q.Get("error_description"))
}
