package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/platform/redisx"
)

// TestRememberedConsentIsForTheApprovedRedirectURI: the consent page names
// the host the user will be sent to, so a remembered approval skips it
// only for a redirect URI the user approved. A client with two registered
// redirect URIs, approved for A: a request for B shows the page again; A
// still goes straight to the client (also on another loopback port, RFC
// 8252 §7.3, as the authorization endpoint matches it); approving B keeps
// A (both then skip the page). A record remembered before redirect URIs
// were (scopes and resources only) shows the page again. The client is
// confidential: a public client's loopback redirect never uses a
// remembered approval (RFC 8252 §8.6,
// TestRememberedConsentNotForPublicLoopbackRedirects).
func TestRememberedConsentIsForTheApprovedRedirectURI(t *testing.T) {
	f := startFleet(t, nil)
	redirectA := "http://127.0.0.1:8976/consent-redirect-a"
	redirectB := "http://127.0.0.1:8976/consent-redirect-b"
	st, reg := register(t, f, `{"redirect_uris":["`+redirectA+`","`+redirectB+`"],"token_endpoint_auth_method":"client_secret_basic","client_name":"Two redirects","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), RedirectURIs: []string{redirectA, redirectB}, AuthMethod: "client_secret_basic"}
	request := func(redirect string) *authRequest {
		a := newAuthRequest(c)
		a.RedirectURI = redirect
		a.Resource = f.Base + "/mcp"
		return a
	}
	approveFor := func(redirect string) string {
		t.Helper()
		a := request(redirect)
		b, p := consentPage(t, f, a)
		tr := f.exchange(c, a, approve(t, b, p))
		if tr.Status != http.StatusOK {
			t.Fatalf("token for %s: %d %s %s", redirect, tr.Status, tr.Error, tr.Description)
		}
		_, info := f.userinfo(tr.AccessToken)
		sub, _ := info["sub"].(string)
		return sub
	}
	skips := func(redirect string) {
		t.Helper()
		a := request(redirect)
		if code := f.authorize(a); code == "" {
			t.Fatalf("%s: no code", redirect)
		}
	}
	asks := func(redirect string) {
		t.Helper()
		a := request(redirect)
		p := f.login(newBrowser(t, a.RedirectURI), a)
		if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `value="approve"`) {
			t.Fatalf("%s: want the consent page, got %d %v", redirect, p.Status, p.Location)
		}
	}

	sub := approveFor(redirectA)
	asks(redirectB) // approved for A only
	skips(redirectA)
	skips("http://127.0.0.1:8977/consent-redirect-a") // RFC 8252 §7.3: any loopback port

	approveFor(redirectB)
	skips(redirectB)
	skips(redirectA) // approving B kept A

	// A record from before redirect URIs were remembered: ask again.
	rdb := f.Redis.Client()
	ctx := context.Background()
	key := "tollgate:as:consent:" + redisx.Hash(redisx.Hash(sub)+":"+redisx.Hash(c.ClientID))
	var rec map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(ctx, key).Val()), &rec); err != nil {
		t.Fatalf("consent record %s: %v", key, err)
	}
	if uris, _ := rec["redirect_uris"].([]any); len(uris) != 2 {
		t.Fatalf("consent record's redirect_uris %v: want A and B", rec["redirect_uris"])
	}
	delete(rec, "redirect_uris")
	old, _ := json.Marshal(rec)
	if err := rdb.Set(ctx, key, old, rdb.TTL(ctx, key).Val()).Err(); err != nil {
		t.Fatal(err)
	}
	asks(redirectA)
}

// TestRememberedLoopbackRedirectIsKeptOnce: a native app's loopback
// redirect URI takes a new port each time (RFC 8252 §7.3), and the record
// compares it port-free; merging an approval kept every port as written,
// so each approval that showed the page (prompt=consent) grew the record
// — five approvals, five URIs (review1). It holds one.
func TestRememberedLoopbackRedirectIsKeptOnce(t *testing.T) {
	f := startFleet(t, nil)
	st, reg := register(t, f, `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","client_name":"Native","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	c := devClient{ClientID: reg["client_id"].(string), RedirectURIs: []string{"http://127.0.0.1/cb"}, AuthMethod: "none"}
	var sub string
	for i := range 5 {
		a := newAuthRequest(c)
		a.RedirectURI = fmt.Sprintf("http://127.0.0.1:%d/cb", 50001+i)
		a.Resource = f.Base + "/mcp"
		a.Extra = url.Values{"prompt": {"consent"}}
		b, p := consentPage(t, f, a)
		tr := f.exchange(c, a, approve(t, b, p))
		if tr.Status != http.StatusOK {
			t.Fatalf("token: %d %s", tr.Status, tr.Description)
		}
		_, info := f.userinfo(tr.AccessToken)
		sub, _ = info["sub"].(string)
	}
	rdb := f.Redis.Client()
	key := "tollgate:as:consent:" + redisx.Hash(redisx.Hash(sub)+":"+redisx.Hash(c.ClientID))
	var rec map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(context.Background(), key).Val()), &rec); err != nil {
		t.Fatalf("consent record %s: %v", key, err)
	}
	if uris, _ := rec["redirect_uris"].([]any); len(uris) != 1 || uris[0] != "http://127.0.0.1:50005/cb" {
		t.Errorf("record's redirect_uris after five approvals on five ports: %v, want only the latest", rec["redirect_uris"])
	}
}
