package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestParkedBudgetAnswers pins how a rate limiter's "no" and its failure
// are answered — one rule, oauth.Server.limitVerdict, for the guard's
// per-address limit and the authorization request's budget of parked KiB.
// The guard's limiter failing (Redis answers WRONGTYPE for the address's
// token bucket alone): 503 temporarily_unavailable, Retry-After: 5, logged
// "rate limiter unavailable", not a rejection. Past the parked-KiB budget
// the request goes back to the client temporarily_unavailable with its
// state and the delay in its description (no Retry-After on the 302), counted in
// tollgate_auth_rate_limit_rejections_total{endpoint="authorize"}; that
// budget's limiter failing is logged the same way and the request goes
// back temporarily_unavailable, retry later, not counted as a rejection.
func TestParkedBudgetAnswers(t *testing.T) {
	f := startFleet(t, map[string]string{"RATE_LIMIT_AUTHORIZE_PER_MINUTE": "4"}) // a burst of 16 KiB
	c := f.Clients["local-test"]
	rejectionsOf := func(endpoint string) int {
		return int(metricsAt(t, f.Admin()+"/metrics")[fmt.Sprintf(`tollgate_auth_rate_limit_rejections_total{endpoint=%q}`, endpoint)])
	}
	rejections := func() int { return rejectionsOf("authorize") }
	bucket := func(scope string) string {
		sum := sha256.Sum256([]byte("addr:127.0.0.1"))
		return "rate:tollgate:rl:" + scope + ":" + hex.EncodeToString(sum[:])
	}
	limiterLogged := func(endpoint string) bool {
		for _, line := range strings.Split(f.AS.Logs.String(), "\n") {
			if strings.Contains(line, `msg="rate limiter unavailable"`) && strings.Contains(line, "endpoint="+endpoint+" ") && strings.Contains(line, "WRONGTYPE") {
				return true
			}
		}
		return false
	}

	// The guard's limiter: the address's token bucket unreadable.
	if err := f.Redis.Client().HSet(ctxT(t), bucket("token"), "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	unavailable, tokenRejections := errorsTotal(t, f, "token", "temporarily_unavailable"), rejectionsOf("token")
	tr := f.token(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}})
	if tr.Status != http.StatusServiceUnavailable || tr.Error != "temporarily_unavailable" || tr.Description != "the service is temporarily unavailable; retry later" ||
		tr.Header.Get("Retry-After") != "5" || tr.Header.Get("RateLimit-Remaining") != "" {
		t.Errorf("token request, its address's bucket unreadable: %d %s %q Retry-After %q RateLimit-Remaining %q; want 503 temporarily_unavailable, Retry-After 5, no RateLimit-Remaining",
			tr.Status, tr.Error, tr.Description, tr.Header.Get("Retry-After"), tr.Header.Get("RateLimit-Remaining"))
	}
	if d := errorsTotal(t, f, "token", "temporarily_unavailable") - unavailable; d != 1 {
		t.Errorf("errors_total{token,temporarily_unavailable} grew by %d, want 1", d)
	}
	if d := rejectionsOf("token") - tokenRejections; d != 0 {
		t.Errorf("rate_limit_rejections_total{token} grew by %d for a 503, want 0", d)
	}
	if !limiterLogged("token") {
		t.Errorf(`the guard's limiter error is not logged ("rate limiter unavailable", endpoint=token, the Redis error):\n%s`, f.AS.Logs.String())
	}
	f.Redis.Client().Del(ctxT(t), bucket("token"))
	large := func(i int) *page {
		a := newAuthRequest(c)
		a.State = fmt.Sprintf("%d-", i) + strings.Repeat("s", 15<<10)
		p := newBrowser(t, c.RedirectURIs[0], f.IdP.Issuer).get(a.URL(f.Base))
		if p.Location == nil {
			t.Fatalf("large request %d: %d\n%.300s", i, p.Status, p.Body)
		}
		if i > 0 && p.Location.Query().Get("state") != a.State {
			t.Errorf("large request %d: state not echoed: %.200v", i, p.Location)
		}
		return p
	}

	if p := large(0); !strings.HasPrefix(p.Location.String(), f.IdP.Issuer) {
		t.Fatalf("first 15 KiB request: sent to %.200v, want the IdP", p.Location)
	}
	before := rejections()
	p := large(1)
	q := p.Location.Query()
	if q.Get("error") != "temporarily_unavailable" || !strings.Contains(q.Get("error_description"), "too many large authorization requests from this address (15 KiB of parameters)") {
		t.Fatalf("second 15 KiB request: %.300v, want temporarily_unavailable, too many large requests", p.Location)
	}
	// The delay is in the description: the error is the redirect's (RFC
	// 6749 §4.1.2.1), and a Retry-After on a 302 asks the browser to wait
	// before following it (RFC 9110 §10.2.3), which browsers ignore.
	if ra := p.Header.Get("Retry-After"); ra != "" {
		t.Errorf("refused: Retry-After %q on the 302 to the client, want none", ra)
	}
	if !regexp.MustCompile(`; retry in [1-9][0-9]* s or send a shorter state$`).MatchString(q.Get("error_description")) {
		t.Errorf("refused: description %q, want the budget's delay in it", q.Get("error_description"))
	}
	if d := rejections() - before; d != 1 {
		t.Errorf("refused: rate_limit_rejections_total{authorize} grew by %d, want 1", d)
	}

	key := bucket("authorize-kib")
	if err := f.Redis.Client().Del(ctxT(t), key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Redis.Client().HSet(ctxT(t), key, "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	before = rejections()
	p = large(2)
	q = p.Location.Query()
	if q.Get("error") != "temporarily_unavailable" || q.Get("error_description") != "the service is temporarily unavailable; retry later" {
		t.Fatalf("budget unreadable: %.300v, want temporarily_unavailable, the service is temporarily unavailable", p.Location)
	}
	if ra := p.Header.Get("Retry-After"); ra != "" {
		t.Errorf("budget unreadable: Retry-After %q on the redirect, want none (as before)", ra)
	}
	if d := rejections() - before; d != 0 {
		t.Errorf("budget unreadable: rate_limit_rejections_total{authorize} grew by %d, want 0", d)
	}
	if !limiterLogged("authorize") {
		t.Errorf(`the budget's limiter error is not logged ("rate limiter unavailable", endpoint=authorize, the Redis error):\n%s`, f.AS.Logs.String())
	}
}
