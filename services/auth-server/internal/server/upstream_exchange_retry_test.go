package server_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// tokenFront is a real HTTP front of the dev IdP (UPSTREAM_DIAL_ADDR)
// whose token endpoint answers as fail says: "" passes the request on,
// "503" answers a 503 page, "reset" cuts the connection, "invalid_grant"
// answers RFC 6749 §5.2's refusal, "503-twice" a 503 page to the first
// two requests and passes the others on. Nothing failed reaches the IdP, so the
// code stays unspent there.
type tokenFront struct {
	fail   atomic.Value
	failed atomic.Int64 // token requests failed
	calls  atomic.Int64 // token requests
}

func startTokenFront(t *testing.T, f *fleet) *tokenFront {
	t.Helper()
	tf := &tokenFront{}
	tf.fail.Store("")
	target, _ := url.Parse(f.IdP.Issuer)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
			tf.calls.Add(1)
			mode := tf.fail.Load().(string)
			switch {
			case mode == "503-twice" && tf.failed.Add(1) <= 2:
				mode = "503"
			case mode == "503-twice":
				mode = ""
			case mode != "":
				tf.failed.Add(1)
			}
			switch mode {
			case "503":
				http.Error(w, "<html>upstream connect error</html>", http.StatusServiceUnavailable)
				return
			case "reset":
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
				}
				return
			case "invalid_grant":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.env["UPSTREAM_DIAL_ADDR"] = front.Listener.Addr().String()
	return tf
}

// TestCallbackKeptWhileTheTokenEndpointIsDown: a callback whose upstream
// code exchange the token endpoint does not answer (a 503 page, a cut
// connection) keeps the sign-in: a 503 page, temporarily_unavailable,
// Retry-After and "reload this page", and the same callback URL, reloaded
// once the provider is back, completes the sign-in — at most twice
// (maxExchangeRetries): the third unanswered attempt spends the state and
// goes back to the client with temporarily_unavailable. A refusal
// (invalid_grant) and a success spend it at once. Before, the first
// failure spent the state: the user had to start again from the
// application.
func TestCallbackKeptWhileTheTokenEndpointIsDown(t *testing.T) {
	f := newFleet(t, map[string]string{"DEVIDP_CODE_TTL": "10m"}, "", true)
	tf := startTokenFront(t, f)
	f.start()
	c := f.Clients["local-test"]
	signIn := func() (*browser, *authRequest, string) {
		t.Helper()
		a := newAuthRequest(c)
		b := newBrowser(t, c.RedirectURIs[0], f.Base+"/oauth/callback")
		p := f.login(b, a)
		if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.Base+"/oauth/callback?") {
			t.Fatalf("login: %d %v, want the IdP's redirect to the callback\n%.300s", p.Status, p.Location, p.Body)
		}
		return b, a, p.Location.String()
	}
	kept := func(step string, p *page) {
		t.Helper()
		if p.Status != http.StatusServiceUnavailable || p.Location != nil || p.Header.Get("Retry-After") == "" ||
			!strings.Contains(p.Body, "temporarily_unavailable") || !strings.Contains(p.Body, "reload this page") {
			t.Fatalf("%s: %d Location %v Retry-After %q, want a 503 page, temporarily_unavailable, Retry-After, the sign-in kept\n%.400s",
				step, p.Status, p.Location, p.Header.Get("Retry-After"), p.Body)
		}
	}
	spent := func(step string, p *page) {
		t.Helper()
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already used") {
			t.Fatalf("%s: %d, want 400 already used\n%.300s", step, p.Status, p.Body)
		}
	}
	toClient := func(step string, p *page, a *authRequest, code string) {
		t.Helper()
		if p.Location == nil {
			t.Fatalf("%s: %d, want a redirect to the client\n%.400s", step, p.Status, p.Body)
		}
		if q := p.Location.Query(); q.Get("error") != code || q.Get("state") != a.State || (code != "" && q.Get("code") != "") {
			t.Fatalf("%s: %s, want error=%q with the state", step, p.Location, code)
		}
	}

	t.Run("retried until the provider is back", func(t *testing.T) {
		b, a, callback := signIn()
		tf.fail.Store("503")
		kept("token endpoint 503", b.get(callback))
		tf.fail.Store("reset")
		kept("token endpoint cut the connection", b.get(callback))
		if !strings.Contains(f.AS.Logs.String(), "the sign-in is kept for a reload") {
			t.Errorf("not logged:\n%s", f.AS.Logs.String())
		}
		tf.fail.Store("")
		p := b.get(callback)
		toClient("provider back", p, a, "")
		if tr := f.exchange(c, a, p.Location.Query().Get("code")); tr.AccessToken == "" {
			t.Fatalf("the code does not redeem: %d %s %s", tr.Status, tr.Error, tr.Description)
		}
		spent("after the sign-in", b.get(callback))
	})
	t.Run("retries bounded", func(t *testing.T) {
		b, a, callback := signIn()
		tf.fail.Store("503")
		kept("first", b.get(callback))
		kept("second", b.get(callback))
		toClient("third", b.get(callback), a, "temporarily_unavailable")
		tf.fail.Store("")
		spent("after the last retry", b.get(callback))
	})
	t.Run("a refusal spends the state", func(t *testing.T) {
		b, a, callback := signIn()
		tf.fail.Store("invalid_grant")
		toClient("invalid_grant", b.get(callback), a, "server_error")
		tf.fail.Store("")
		spent("after the refusal", b.get(callback))
	})
}

// TestConcurrentCallbacksOneSignIn: 20 concurrent loads of one callback
// URL (the same browser, real Redis) while the token endpoint fails its
// first two requests sign in at most once, whatever the interleaving of
// takes and puts back (keepForRetry): each load is a code at the client, a
// kept sign-in (503), or the state unknown or used (400) — and reloaded
// in rounds until one signs in, exactly one does, and its code redeems.
func TestConcurrentCallbacksOneSignIn(t *testing.T) {
	f := newFleet(t, map[string]string{"DEVIDP_CODE_TTL": "10m"}, "", true)
	tf := startTokenFront(t, f)
	f.start()
	c := f.Clients["local-test"]
	a := newAuthRequest(c)
	b := newBrowser(t, c.RedirectURIs[0], f.Base+"/oauth/callback")
	p := f.login(b, a)
	if p.Location == nil || !strings.HasPrefix(p.Location.String(), f.Base+"/oauth/callback?") {
		t.Fatalf("login: %d %v, want the IdP's redirect to the callback", p.Status, p.Location)
	}
	callback := p.Location.String()
	tf.fail.Store("503-twice")
	var codes []string
	var mu sync.Mutex
	for round := 0; round < 5 && len(codes) == 0; round++ {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, callback, nil)
				req.Header.Set("Accept", "text/html")
				resp, err := b.client.Do(req)
				if err != nil {
					t.Errorf("callback: %v", err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				switch loc, _ := resp.Location(); {
				case resp.StatusCode/100 == 3 && loc != nil && loc.Query().Get("code") != "":
					codes = append(codes, loc.Query().Get("code"))
				case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "reload this page"):
				case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "already used"):
				default:
					t.Errorf("callback: %d %v, want a code, a kept sign-in or the state used\n%.300s", resp.StatusCode, loc, body)
				}
			}()
		}
		wg.Wait()
	}
	if len(codes) != 1 {
		t.Fatalf("%d sign-ins from one callback URL (%d token requests), want exactly 1", len(codes), tf.calls.Load())
	}
	if tr := f.exchange(c, a, codes[0]); tr.AccessToken == "" {
		t.Fatalf("the code does not redeem: %d %s %s", tr.Status, tr.Error, tr.Description)
	}
}
