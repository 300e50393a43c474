package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestBearerEndpointsOutageSayRetryAfter: a userinfo (or consent
// revocation) request that passes the address limit on a leased token
// while Redis is down, and fails when the access token's grant is read,
// is answered 503 temporarily_unavailable with Retry-After, as every
// other endpoint's Redis outage is (docs/reference/oauth.md; brk43:
// bearer answered it without Retry-After), and without a WWW-Authenticate
// challenge (RFC 6750 §3 challenges a request without a usable token; this
// one was not judged).
func TestBearerEndpointsOutageSayRetryAfter(t *testing.T) {
	f := startFleet(t, nil)
	c := f.Clients["local-test"]
	tr := f.fullFlow(c, newAuthRequest(c))
	// Warm the address bucket of userinfo so that it is leased: the
	// requests after the stop then pass the limit without Redis.
	for range 40 {
		if st, _ := f.userinfo(tr.AccessToken); st != http.StatusOK {
			t.Fatalf("userinfo before the outage: %d", st)
		}
	}
	f.Redis.Stop()
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodGet, f.Base+"/oauth/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || err != nil || body.Error != "temporarily_unavailable" {
			t.Fatalf("userinfo %d during the outage: %d %q (%v), want 503 temporarily_unavailable", i, resp.StatusCode, body.Error, err)
		}
		if got := resp.Header.Get("Retry-After"); got != "5" {
			t.Errorf("userinfo %d during the outage: 503 with Retry-After %q, want 5 (as every store outage)", i, got)
		}
		// The token was not judged: no RFC 6750 §3 challenge, which would
		// send the client for another token (auth49 #3).
		if got := resp.Header.Get("WWW-Authenticate"); got != "" {
			t.Errorf("userinfo %d during the outage: 503 with WWW-Authenticate %q, want none", i, got)
		}
	}
}
