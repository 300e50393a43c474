package server_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestBusyRefusalSpendsTheFailureBudget (review41): while every slow-check slot is
// taken, a guesser's wrong guesses at an operator (bcrypt) secret get 503
// and spend nothing of its (client, address) failure budget, while the
// right guess — verified from another address within the cache TTL — is
// accepted from the cache. So a guesser tells right from wrong at the
// address rate limit's pace, not "10 guesses per 15 minutes".
// The slot is held by slow wrong checks from other addresses (a flood, or
// the legitimate load of other bcrypt clients).
func TestBusyRefusalSpendsTheFailureBudget(t *testing.T) {
	// Cost 10: a check holds the slot a while, many times a 503's round
	// trip. Cost 13 took over 60 s a check under -race at load 35, past
	// clientCall's timeout (the real client's first proof failed so).
	f, ops := startOperatorFleet(t, 10, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "10", "CLIENT_SECRET_SLOW_CHECKS": "1",
	})
	// The real client proves its secret from its own address: cached.
	if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: "203.0.113.5"}); r.Error != "invalid_grant" {
		t.Fatalf("real client: %d %s", r.Status, r.Error)
	}
	const guesser = "198.51.100.99"
	// Slot holders: wrong secrets from other addresses, one after another.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer halt() // a failure below leaves no holder logging after the test
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.clientCall(clientReq{Form: postCreds(ops, "holder", badRefresh()), ForwardFor: "10.9." + strconv.Itoa(i/200) + "." + strconv.Itoa(i%200+1)})
		}
	}()
	answers := map[int]int{}
	guesses := 0
	for guesses < 60 {
		// Each guess is sent while a holder's check holds the slot, so it
		// is refused busy unless that check ends just before it arrives:
		// how many guesses are checked does not follow the machine's load.
		waitSlowCheckInFlight(t, f)
		r := f.clientCall(clientReq{Form: postCreds(ops, "guess-"+strconv.Itoa(guesses), badRefresh()), ForwardFor: guesser})
		answers[r.Status]++
		guesses++
	}
	right := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser})
	halt()
	t.Logf("guesser: %d wrong guesses answered %v; the right guess %d %s", guesses, answers, right.Status, right.Error)
	if answers[http.StatusUnauthorized] < 10 && right.Status != http.StatusTooManyRequests && right.Error == "invalid_grant" {
		t.Errorf("after %d wrong guesses (%d checked, %d answered 503 and not counted) the guesser is not backed off and its right guess is accepted: %d %s",
			guesses, answers[http.StatusUnauthorized], answers[http.StatusServiceUnavailable], right.Status, right.Error)
	}
}

// waitSlowCheckInFlight waits until a bcrypt check holds a slot
// (tollgate_auth_client_secret_slow_checks_in_flight ≥ 1); the bound is
// on the number of polls (at most 10 minutes of them), not a speed.
func waitSlowCheckInFlight(t *testing.T, f *fleet) {
	t.Helper()
	const name = "tollgate_auth_client_secret_slow_checks_in_flight"
	for range 60000 {
		if metricsAt(t, f.Admin()+"/metrics")[name] >= 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no bcrypt check in flight (%s) after 60000 polls: the slot holders are not running", name)
}
