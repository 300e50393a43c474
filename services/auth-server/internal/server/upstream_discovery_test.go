package server_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallbackWaitsForDiscovery: a sign-in started before an auth-server
// restart, whose callback arrives while the upstream provider is
// unreachable (its connections cut at a real HTTP front on
// UPSTREAM_DIAL_ADDR) and discovery has not run since the restart, is
// answered with a 503 page, temporarily_unavailable and Retry-After — its
// state not taken, its code not redeemed; once the provider is back, the
// same callback URL, reloaded, completes the sign-in and its code redeems,
// with no restart. Before, the state was taken and the client told
// temporarily_unavailable: the sign-in was lost although nothing of it had
// failed.
func TestCallbackWaitsForDiscovery(t *testing.T) {
	f := newFleet(t, map[string]string{"DEVIDP_CODE_TTL": "10m"}, "", true)
	target, _ := url.Parse(f.IdP.Issuer)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var down atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.env["UPSTREAM_DIAL_ADDR"] = front.Listener.Addr().String()
	f.start()

	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	b := newBrowser(t, c.RedirectURIs[0], f.Base+"/oauth/callback")
	p := f.login(b, a)
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.Base+"/oauth/callback?") {
		t.Fatalf("login: %d %v, want the IdP's redirect to the callback\n%.300s", p.Status, p.Location, p.Body)
	}
	callback := p.Location.String()

	down.Store(true)
	f.restart(nil)
	p = b.get(callback)
	if p.Status != http.StatusServiceUnavailable || p.Location != nil || p.Header.Get("Retry-After") == "" ||
		!strings.Contains(p.Body, "temporarily_unavailable") || !strings.Contains(p.Body, "reload this page") {
		t.Fatalf("callback with the provider unreachable: %d Location %v Retry-After %q, want a 503 page, temporarily_unavailable, Retry-After, the sign-in kept\n%.400s",
			p.Status, p.Location, p.Header.Get("Retry-After"), p.Body)
	}
	if !strings.Contains(f.AS.Logs.String(), "upstream unavailable at the callback") {
		t.Errorf("not logged:\n%s", f.AS.Logs.String())
	}

	down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for p = b.get(callback); p.Status == http.StatusServiceUnavailable && time.Now().Before(deadline); p = b.get(callback) {
		time.Sleep(500 * time.Millisecond)
	}
	if p.Location == nil {
		t.Fatalf("callback with the provider back: %d, want the redirect to the client\n%.400s", p.Status, p.Body)
	}
	q := p.Location.Query()
	if q.Get("error") != "" || q.Get("code") == "" || q.Get("state") != a.State {
		t.Fatalf("callback with the provider back: %s, want a code with the state", p.Location)
	}
	if tr := f.exchange(c, a, q.Get("code")); tr.AccessToken == "" {
		t.Fatalf("the code does not redeem: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
	// The state is taken now: a third load is the usual refusal.
	if p = b.get(callback); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
		t.Errorf("callback after the sign-in completed: %d, want 400 already used\n%.300s", p.Status, p.Body)
	}
}
