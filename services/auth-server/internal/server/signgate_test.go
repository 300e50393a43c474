package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The token endpoint's overload bound (oauth.signGate): with one signing
// slot and a 1 ms wait, bursts of concurrent refreshes over real HTTP get
// some requests refused with 503, Retry-After and an OAuth JSON error
// (RFC 6749 §5.2, temporarily_unavailable); a refused request changed
// nothing — the refresh token it presented still works — and service
// resumes once the burst is over. No timing is asserted: the test sends
// bursts until one is refused (at most 50).
func TestSigningQueueRefusesOverload(t *testing.T) {
	f := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "1", "SIGNING_QUEUE_WAIT": "1ms"})
	c := f.Clients["local-test"]
	rt := f.fullFlow(c, newAuthRequest(c)).RefreshToken
	var refused *tokenResponse
	var presented string
	for burst := 0; burst < 50 && refused == nil; burst++ {
		out := make([]tokenResponse, 32)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = f.refresh(c, rt)
			}()
		}
		wg.Wait()
		presented = rt
		for i := range out {
			switch out[i].Status {
			case http.StatusOK:
				rt = out[i].RefreshToken
			case http.StatusServiceUnavailable:
				refused = &out[i]
			default:
				t.Fatalf("burst %d: status %d %s: %s", burst, out[i].Status, out[i].Error, out[i].Description)
			}
		}
	}
	if refused == nil {
		t.Fatal("50 bursts of 32 refreshes with one signing slot and a 1 ms wait: none refused")
	}
	if refused.Error != "temporarily_unavailable" || refused.Description == "" ||
		refused.Header.Get("Retry-After") != "1" || refused.Header.Get("Content-Type") != "application/json" ||
		refused.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refusal: %+v", *refused)
	}
	// The refused request's refresh token still works (its grant was not
	// read, so not rotated by it), and a new sign-in is served.
	if tr := f.refresh(c, presented); tr.Status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("refresh with the token a refused request presented: %d %s: %s", tr.Status, tr.Error, tr.Description)
	}
	if tr := f.fullFlow(c, newAuthRequest(c)); tr.IDToken == "" {
		t.Fatal("code grant after the bursts: no ID token")
	}
}

// tokenWithin sends a token request that its client gives up on after
// wait (0: after a minute, so that a lost turn, which leaves an admitted
// request waiting for a signature forever, fails the test instead of
// hanging it), and reports the status (0: no answer).
func (f *fleet) tokenWithin(c devClient, form url.Values, wait time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.Base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	if wait > 0 {
		time.AfterFunc(wait, cancel)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// servedAgain waits (at most ~10 s, retrying as Retry-After says) until a
// refresh of a fresh sign-in is answered 200. With one signing turn and a
// 1 ms queue wait, a turn lost on the way makes every later token request
// a 503: this never comes.
func (f *fleet) servedAgain(c devClient, what string) {
	f.t.Helper()
	rt := f.fullFlowRetrying(c, what).RefreshToken
	tr := whileUnavailable(func() tokenResponse { return f.refresh(c, rt) })
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		f.t.Fatalf("%s: a refresh after: %d %s: %s (the signing queue lost its turn?)", what, tr.Status, tr.Error, tr.Description)
	}
}

// fullFlowRetrying is fullFlow whose authorization request and exchange are
// retried while answered 503: the exchange while refused by the signing
// queue (exchangeRetrying: the same code works on the retry), the
// authorization request while the Redis circuit breaker is still open
// after an outage (authorizeWhile).
func (f *fleet) fullFlowRetrying(c devClient, what string) tokenResponse {
	f.t.Helper()
	a := newAuthRequest(c)
	code := f.authorizeWhile(a, 10*time.Second)
	tr := f.exchangeRetrying(c, a, code)
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		f.t.Fatalf("%s: a code exchange after: %d %s: %s (the signing queue lost its turn?)", what, tr.Status, tr.Error, tr.Description)
	}
	return tr
}

// The signing queue keeps its turns through everything a token request can
// meet on its way through it, over real HTTP with a real redis-server and
// one signing turn (SIGNING_CONCURRENCY=1, so a turn lost anywhere would
// refuse every later request): bursts of code exchanges and refreshes
// whose clients give up at varying points (before, while queued, while
// holding the turn, after), refusals of the overload bound among them, and
// a code exchange while Redis hangs (SIGSTOP) and Redis refusing
// connections (stopped, then started again). After each, a sign-in and a
// refresh are served. A second server in the same process, whose turns go
// back through the same hand-off (oauth.pollerHandoff), keeps serving
// bursts once the first is shut down.
func TestSigningQueueKeepsItsTurns(t *testing.T) {
	f := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "1", "SIGNING_QUEUE_WAIT": "1ms"})
	other := startFleet(t, map[string]string{"SIGNING_CONCURRENCY": "0", "SIGNING_QUEUE_WAIT": "1m"})
	c := f.Clients["local-test"]

	for round := range 3 {
		var forms []url.Values
		for range 8 {
			a := newAuthRequest(c)
			code := f.authorize(a)
			forms = append(forms, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}})
			rt := f.fullFlowRetrying(c, "setup").RefreshToken
			forms = append(forms, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		}
		statuses := make([]int, 4*len(forms))
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Gives up after 0 (never), 1 ms … 32 ms.
				var wait time.Duration
				if k := i % 7; k > 0 {
					wait = 500 * time.Microsecond << k
				}
				statuses[i] = f.tokenWithin(c, forms[i%len(forms)], wait)
			}()
		}
		wg.Wait()
		for i, s := range statuses {
			if s >= 500 && s != http.StatusServiceUnavailable {
				t.Fatalf("round %d: request %d: %d", round, i, s)
			}
		}
		hist := map[int]int{}
		for _, s := range statuses {
			hist[s]++
		}
		t.Logf("round %d: statuses %v (0: given up)", round, hist)
		f.servedAgain(c, "after a burst of requests given up on")
	}

	// Redis hung during a code exchange holding the turn, then Redis gone.
	a := newAuthRequest(c)
	code := f.authorize(a)
	f.Redis.Pause()
	hung := f.tokenWithin(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.RedirectURI}, "code_verifier": {a.Verifier}}, 0)
	f.Redis.Resume()
	if hung == http.StatusOK {
		t.Fatal("code exchange with Redis hung: 200")
	}
	f.servedAgain(c, "after Redis hung")
	rt := f.fullFlowRetrying(c, "before Redis stopped").RefreshToken
	f.Redis.Stop()
	var down sync.WaitGroup
	for range 8 {
		down.Add(1)
		go func() {
			defer down.Done()
			if tr := f.refresh(c, rt); tr.Status == http.StatusOK {
				t.Error("refresh with Redis stopped: 200")
			}
		}()
	}
	down.Wait()
	f.Redis.Start()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(f.Admin() + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `"name":"redis","status":"ok"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis not back within 30s: %s", b)
		}
	}
	f.servedAgain(c, "after Redis stopped and started")

	// One server shut down while another in the process serves.
	oc := other.Clients["local-test"]
	ort := other.fullFlow(oc, newAuthRequest(oc)).RefreshToken
	if err := f.AS.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for burst := range 3 {
		var codes []string
		var reqs []*authRequest
		for range 8 {
			a := newAuthRequest(oc)
			reqs = append(reqs, a)
			codes = append(codes, other.authorize(a))
		}
		out := make([]tokenResponse, 16)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					out[i] = other.exchange(oc, reqs[i/2], codes[i/2])
				} else {
					out[i] = other.refresh(oc, ort)
				}
			}()
		}
		wg.Wait()
		for i := range out {
			// The refreshes of one token race: one rotates it, the others
			// may be refused as a reuse; none is refused by the queue, and
			// every code is redeemed.
			if out[i].Status == http.StatusServiceUnavailable || out[i].Status >= 500 || i%2 == 0 && out[i].Status != http.StatusOK {
				t.Fatalf("burst %d: request %d: %d %s: %s", burst, i, out[i].Status, out[i].Error, out[i].Description)
			}
		}
		ort = other.fullFlow(oc, newAuthRequest(oc)).RefreshToken
	}
}
