package server_test

import (
	"net/http"
	"sync"
	"testing"
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
