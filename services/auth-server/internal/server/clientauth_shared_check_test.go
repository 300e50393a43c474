package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// shot is one token request of a burst: the operator client's secret and
// the client address it comes from.
type shot struct{ secret, addr string }

// shots is n copies of s.
func shots(n int, s shot) []shot {
	out := make([]shot, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// burst sends a refresh grant of the operator client for each shot, all
// at once, and returns the answers in the order of shots.
func burst(f *fleet, ops devClient, ss []shot) []tokenResponse {
	out := make([]tokenResponse, len(ss))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = f.clientCall(clientReq{Form: postCreds(ops, s.secret, badRefresh()), ForwardFor: s.addr})
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func statuses(rs []tokenResponse) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}

// TestConcurrentRightSecretsShareOneCheck (session 42's review, MED): a
// bcrypt check takes a failure token while it runs, so 5 token requests
// sent at once with the right secret, not yet cached, from one address
// against a budget of 3 took 3 tokens, and 2 were answered 429 until a
// check was cached (before the fix: map[400:3 429:2]). Identical checks in
// flight now share one check and one token: all 5 are accepted, one bcrypt
// check runs (the others share it, or find it cached once it is done),
// and the token is given back — the whole budget is left for what follows.
func TestConcurrentRightSecretsShareOneCheck(t *testing.T) {
	f, ops := startOperatorFleet(t, 10, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "3", "CLIENT_AUTH_FAILURE_WINDOW": "1h", "CLIENT_SECRET_SLOW_CHECKS": "6",
	})
	const client = "203.0.113.60"
	rs := burst(f, ops, shots(5, shot{opSecret1, client}))
	for i, r := range rs {
		if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("right secret %d of 5 sent at once (budget 3): %d %s, want 400 invalid_grant (accepted); all: %v", i, r.Status, r.Error, statuses(rs))
		}
	}
	s := slowCheckStats(t, f)
	t.Logf("answers %v; bcrypt checks %v, shared %v", statuses(rs), s["checks_total"], s["checks_shared_total"])
	if s["checks_total"] != 1 {
		t.Errorf("bcrypt checks run for 5 identical requests: %v, want 1", s["checks_total"])
	}
	// The budget is whole: 3 wrong guesses are checked, the 4th is refused.
	for i := range 3 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "wrong-"+strconv.Itoa(i), badRefresh()), ForwardFor: client}); r.Status != http.StatusUnauthorized {
			t.Errorf("wrong guess %d after the burst: %d %s, want 401", i, r.Status, r.Error)
		}
	}
	assertLimited(t, "4th wrong guess", f.clientCall(clientReq{Form: postCreds(ops, "wrong-3", badRefresh()), ForwardFor: client}))
}

// TestSharedCheckStaysWithItsSecretAndAddress: a shared check is shared
// only by requests with the same secret from the same address. Address B
// has spent its budget; at once, the right secret from A (cold cache) and
// from B, and a wrong one from A: A's right secret is accepted, B's is
// refused 429 unchecked as any guess of a backed-off address (had it
// shared A's check, B would learn a right guess whatever its back-off),
// and the wrong one from A is refused 401 (not accepted by the right
// one's check).
func TestSharedCheckStaysWithItsSecretAndAddress(t *testing.T) {
	f, ops := startOperatorFleet(t, 10, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "3", "CLIENT_AUTH_FAILURE_WINDOW": "1h", "CLIENT_SECRET_SLOW_CHECKS": "6",
	})
	const a, b = "203.0.113.70", "198.51.100.71"
	for i := range 3 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "b-guess-"+strconv.Itoa(i), badRefresh()), ForwardFor: b}); r.Status != http.StatusUnauthorized {
			t.Fatalf("B's wrong guess %d: %d %s, want 401", i, r.Status, r.Error)
		}
	}
	ss := append(shots(4, shot{opSecret1, a}), shots(4, shot{opSecret1, b})...)
	ss = append(ss, shots(2, shot{"a-wrong", a})...)
	rs := burst(f, ops, ss)
	for i, r := range rs {
		switch s := ss[i]; {
		case s.addr == b:
			assertLimited(t, "the right secret from backed-off B, sent with A's", r)
		case s.secret == opSecret1:
			if r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
				t.Errorf("the right secret from A: %d %s, want 400 invalid_grant (accepted)", r.Status, r.Error)
			}
		default:
			if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
				t.Errorf("a wrong secret from A, sent with the right one: %d %s, want 401 invalid_client", r.Status, r.Error)
			}
		}
	}
}

// TestIdenticalWrongGuessesShareOneToken: 5 identical wrong guesses sent
// at once from one address share one check and its token — they are one
// guess, and learn what one check tells — and each is answered 401 with
// its own log line. Distinct guesses still pay a token each: after the
// burst exactly the budget's other tokens buy checks (3 minus the checks
// the burst ran), and the next guess — the right secret — is refused
// unchecked.
func TestIdenticalWrongGuessesShareOneToken(t *testing.T) {
	// Cost 12 (~250 ms a check): a wrong secret is never cached, so a guess
	// that arrives after the shared check ended runs a second one; the
	// burst must land within one check's time even on a loaded machine.
	f, ops := startOperatorFleet(t, 12, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "3", "CLIENT_AUTH_FAILURE_WINDOW": "1h", "CLIENT_SECRET_SLOW_CHECKS": "6",
	})
	const guesser = "198.51.100.80"
	rs := burst(f, ops, shots(5, shot{"the-same-guess", guesser}))
	answers := statuses(rs)
	s := slowCheckStats(t, f)
	ran := int(s["checks_total"])
	t.Logf("answers %v; bcrypt checks %v, shared %v", answers, s["checks_total"], s["checks_shared_total"])
	if answers[http.StatusUnauthorized] != 5 {
		t.Errorf("5 identical wrong guesses sent at once: %v, want 5 × 401 (one check, one token)", answers)
	}
	if ran < 1 || ran > 2 {
		t.Errorf("bcrypt checks run for 5 identical guesses sent at once: %d, want 1 (at most 2)", ran)
	}
	logs := f.AS.Logs.String()
	if n := strings.Count(logs, "client_addr="+guesser+" outcome=wrong_secret status=401"); n != answers[http.StatusUnauthorized] {
		t.Errorf("%d log lines of a wrong secret from the guesser, want one per 401 (%d)", n, answers[http.StatusUnauthorized])
	}
	for i := range 3 - ran {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "distinct-"+strconv.Itoa(i), badRefresh()), ForwardFor: guesser}); r.Status != http.StatusUnauthorized {
			t.Errorf("distinct guess %d (%d of the budget of 3 left after the burst): %d %s, want 401", i, 3-ran, r.Status, r.Error)
		}
	}
	assertLimited(t, "the right secret once the budget is spent", f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser}))
}
