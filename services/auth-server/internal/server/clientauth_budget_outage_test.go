package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestFailureBudgetOutageFailsFast (session 42's review, LOW): when Redis
// cannot read or spend the (client, address) failure budget, a bcrypt
// secret that needs it is not checked: 503 temporarily_unavailable with
// Retry-After: 5, as every endpoint answers a Redis outage
// (docs/operations/failures.md). Before, the check ran without its token —
// a guess checked for free, and a right one cached, then accepted from
// that address whatever its back-off. The budget's keys are made
// unreadable and unwritable to the auth-server (an ACL key rule: Redis
// answers NOPERM) while the rest of Redis, the address and client limits
// included, keeps working. What needs no budget still works: a secret
// proved from this address (cached) and a generated (HMAC) secret.
func TestFailureBudgetOutageFailsFast(t *testing.T) {
	f, ops := startOperatorFleet(t, 6, nil)
	apps := f.Clients["gpt-apps-mcp"]
	const proved, other = "203.0.113.90", "198.51.100.91"
	call := func(c devClient, secret, addr string) tokenResponse {
		return f.clientCall(clientReq{Form: postCreds(c, secret, badRefresh()), ForwardFor: addr})
	}
	if r := call(ops, "wrong", other); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d %s, want 401", r.Status, r.Error)
	}
	keys, err := f.Redis.Client().Keys(ctxT(t), "rate:*client_auth_failures*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the failure budget's key: %v %v", keys, err)
	}
	prefix := keys[0][:strings.Index(keys[0], "client_auth_failures")+len("client_auth_failures")]
	if r := call(ops, opSecret1, proved); r.Error != "invalid_grant" {
		t.Fatalf("right secret from %s: %d %s, want 400 invalid_grant", proved, r.Status, r.Error)
	}
	checks := slowCheckStats(t, f)["checks_total"]

	restore := f.Redis.RestrictKeys(t, prefix, "%W") // write only: every GCRA script reads first
	unavailable := func(what string, r tokenResponse) {
		t.Helper()
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") != "5" {
			t.Errorf("%s with the failure budget unavailable: %d %s Retry-After %q, want 503 temporarily_unavailable, Retry-After 5",
				what, r.Status, r.Error, r.Header.Get("Retry-After"))
		}
	}
	const fresh = "192.0.2.92"
	unavailable("a wrong secret (Reserve)", call(ops, "wrong-2", fresh))
	unavailable("the right secret, never checked from here (Reserve)", call(ops, opSecret1, fresh))
	unavailable("the right secret, proved from another address only (BackedOff)", call(ops, opSecret1, other))
	if r := call(ops, opSecret1, proved); r.Error != "invalid_grant" {
		t.Errorf("the right secret proved from this address: %d %s, want 400 invalid_grant (cached, no budget needed)", r.Status, r.Error)
	}
	if r := call(apps, apps.ClientSecret, fresh); r.Error != "invalid_grant" {
		t.Errorf("a generated (HMAC) secret: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
	if n := slowCheckStats(t, f)["checks_total"]; n != checks {
		t.Errorf("bcrypt checks run while the budget was unavailable: %v, want none", n-checks)
	}
	logs := f.AS.Logs.String()
	if !strings.Contains(logs, "client_addr="+fresh+" outcome=unavailable status=503") || !strings.Contains(logs, "rate limiter unavailable") {
		t.Errorf("no log line of the refusal (outcome=unavailable status=503, rate limiter unavailable)")
	}

	restore()
	if r := call(ops, opSecret1, fresh); r.Error != "invalid_grant" {
		t.Errorf("the right secret once the budget is back: %d %s, want 400 invalid_grant", r.Status, r.Error)
	}
}
