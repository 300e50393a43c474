package server_test

import (
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// signingBusyDesc is the description of the signing queue's refusal
// (oauth.classify, errSigningBusy); other 503s (Redis, slow secret checks)
// say something else.
const signingBusyDesc = "the server is busy; retry after the Retry-After delay"

// anonymousCalls are token requests that authenticate no client: a wrong
// secret for a real client, an unknown client, no secret at all, and a
// bogus code with a wrong secret.
func anonymousCalls(c devClient, i int) []struct {
	who  devClient
	form url.Values
} {
	wrong := c
	wrong.ClientSecret = "wrong-" + strconv.Itoa(i)
	unknown := devClient{ClientID: "nobody-" + strconv.Itoa(i), ClientSecret: "x", AuthMethod: c.AuthMethod}
	none := devClient{ClientID: c.ClientID, AuthMethod: "none"}
	// A form each: fleet.post sets the client's parameters in it.
	refresh := func() url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"bogus-" + strconv.Itoa(i)}}
	}
	code := url.Values{"grant_type": {"authorization_code"}, "code": {"bogus-" + strconv.Itoa(i)}, "redirect_uri": {c.RedirectURIs[0]}}
	return []struct {
		who  devClient
		form url.Values
	}{{wrong, refresh()}, {unknown, refresh()}, {none, refresh()}, {wrong, code}}
}

// The signing queue's overload bound is entered only once the client is
// authenticated: with one signing slot and a 1 ms wait, bursts of real
// refreshes fill the queue (some are refused with the queue's 503) while
// anonymous requests run alongside; every anonymous request is refused
// for what it is (401 invalid_client, or 429 once its failure budget is
// spent), never with the queue's 503 — an unauthenticated caller neither
// waits in, nor is turned away by, the queue the clients' signatures use.
// No timing is asserted: bursts are sent until the queue refused a real
// refresh in one of them (at most 50).
func TestSigningQueueIsEnteredAfterClientAuth(t *testing.T) {
	f := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "1", "SIGNING_QUEUE_WAIT": "1ms"})
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	queueRefusals := 0
	for burst := 0; burst < 50 && queueRefusals == 0; burst++ {
		legit := make([]tokenResponse, 24)
		var anon []tokenResponse
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range legit {
			wg.Add(1)
			go func() {
				defer wg.Done()
				legit[i] = f.refresh(c, rt)
			}()
		}
		for i := range 6 {
			for _, a := range anonymousCalls(c, burst*100+i) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr := f.token(a.who, a.form)
					mu.Lock()
					anon = append(anon, tr)
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		for _, tr := range legit {
			switch {
			case tr.Status == http.StatusOK:
				rt = tr.RefreshToken
			case tr.Status == http.StatusServiceUnavailable && tr.Description == signingBusyDesc:
				queueRefusals++
			default:
				t.Fatalf("burst %d: real refresh: %d %s: %s", burst, tr.Status, tr.Error, tr.Description)
			}
		}
		for _, tr := range anon {
			if tr.Status != http.StatusUnauthorized && tr.Status != http.StatusTooManyRequests {
				t.Fatalf("burst %d: anonymous token request: %d %s: %s (want 401 or 429: it authenticates no client, so it never reaches the signing queue)",
					burst, tr.Status, tr.Error, tr.Description)
			}
		}
	}
	if queueRefusals == 0 {
		t.Fatal("50 bursts of 24 refreshes with one signing slot and a 1 ms wait: the queue refused none, so the anonymous requests were not tested against a full queue")
	}
}

// A flood of anonymous token requests from several goroutines (wrong
// secrets, unknown clients, no secret, bogus codes) with the default
// signing queue: the real client's code and refresh grants that run in the
// middle of it and after it are all served (no 503, no 429).
func TestAnonymousFloodLeavesRealClientServed(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				select {
				case <-stop:
					return
				default:
				}
				for _, a := range anonymousCalls(c, g*1000+i) {
					tr := f.token(a.who, a.form)
					mu.Lock()
					statuses[tr.Status]++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 10 {
		tr := f.fullFlow(c, newAuthRequest(c))
		if tr.IDToken == "" {
			t.Errorf("code grant %d during the flood: no ID token", i)
		}
		r := f.refresh(c, rt)
		if r.Status != http.StatusOK {
			t.Fatalf("refresh %d during the flood: %d %s: %s", i, r.Status, r.Error, r.Description)
		}
		rt = r.RefreshToken
	}
	close(stop)
	wg.Wait()
	if r := f.refresh(c, rt); r.Status != http.StatusOK {
		t.Fatalf("refresh after the flood: %d %s: %s", r.Status, r.Error, r.Description)
	}
	f.fullFlow(c, newAuthRequest(c))
	for s, n := range statuses {
		if s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
			t.Errorf("anonymous requests answered %d: %d times", s, n)
		}
	}
}

// A code exchange refused by the signing queue (503) loses nothing: the
// refusal carries Retry-After, an RFC 6749 §5.2 JSON body and no-store,
// the code it presented is then redeemed once, and only once. Bursts of
// code exchanges and refreshes with one signing slot and a 1 ms wait are
// sent until a code exchange is refused (at most 40 bursts).
func TestSigningRefusalKeepsTheCode(t *testing.T) {
	f := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "1", "SIGNING_QUEUE_WAIT": "1ms"})
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	type exchange struct {
		a    *authRequest
		code string
		out  tokenResponse
	}
	var refused *exchange
	for burst := 0; burst < 40 && refused == nil; burst++ {
		codes := make([]*exchange, 6)
		for i := range codes {
			a := newAuthRequest(c)
			codes[i] = &exchange{a: a, code: f.authorize(a)}
		}
		refreshes := make([]tokenResponse, 24)
		var wg sync.WaitGroup
		for _, e := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.out = f.exchange(c, e.a, e.code)
			}()
		}
		for i := range refreshes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				refreshes[i] = f.refresh(c, rt)
			}()
		}
		wg.Wait()
		for _, tr := range refreshes {
			if tr.Status == http.StatusOK {
				rt = tr.RefreshToken
			}
		}
		for _, e := range codes {
			switch e.out.Status {
			case http.StatusOK:
			case http.StatusServiceUnavailable:
				refused = e
			default:
				t.Fatalf("burst %d: code exchange: %d %s: %s", burst, e.out.Status, e.out.Error, e.out.Description)
			}
		}
	}
	if refused == nil {
		t.Fatal("40 bursts of 6 code exchanges and 24 refreshes with one signing slot and a 1 ms wait: no code exchange refused")
	}
	o := refused.out
	if o.Error != "temporarily_unavailable" || o.Description == "" || o.Header.Get("Retry-After") != "1" ||
		o.Header.Get("Content-Type") != "application/json" || o.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refused code exchange: %d %+v", o.Status, o)
	}
	// The refusal came after the client authenticated: the audit record
	// says so and names it (fosite passes no client on an error from
	// client authentication; clientAuth keeps it).
	want := map[string]any{"event": "grant", "result": "temporarily_unavailable", "grant_type": "authorization_code"}
	if e := findEvent(auditEvents(t, f), want); e == nil || e["client_id"] != c.ClientID || e["client_authenticated"] != true {
		t.Errorf("audit record of the refused code exchange: %v, want client_id %q, client_authenticated true", e, c.ClientID)
	}
	// Redeemed once after the refusal (retry until the queue admits it,
	// as a client honouring Retry-After would; the code is still unused).
	var tr tokenResponse
	for range 20 {
		if tr = f.exchange(c, refused.a, refused.code); tr.Status != http.StatusServiceUnavailable {
			break
		}
	}
	if tr.Status != http.StatusOK || tr.AccessToken == "" || tr.IDToken == "" {
		t.Fatalf("the refused code, presented again: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	if tr = f.exchange(c, refused.a, refused.code); tr.Status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Fatalf("the code, a second redemption: %d %s: %s (want 400 invalid_grant)", tr.Status, tr.Error, tr.Description)
	}
}
