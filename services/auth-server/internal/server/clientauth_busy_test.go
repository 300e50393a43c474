package server_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
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
	// cost 13: slow, so one wrong check holds the slot a while
	f, ops := startOperatorFleet(t, 13, map[string]string{
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
		r := f.clientCall(clientReq{Form: postCreds(ops, "guess-"+strconv.Itoa(guesses), badRefresh()), ForwardFor: guesser})
		answers[r.Status]++
		guesses++
	}
	right := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser})
	close(stop)
	wg.Wait()
	t.Logf("guesser: %d wrong guesses answered %v; the right guess %d %s", guesses, answers, right.Status, right.Error)
	if answers[http.StatusUnauthorized] < 10 && right.Status != http.StatusTooManyRequests && right.Error == "invalid_grant" {
		t.Errorf("after %d wrong guesses (%d checked, %d answered 503 and not counted) the guesser is not backed off and its right guess is accepted: %d %s",
			guesses, answers[http.StatusUnauthorized], answers[http.StatusServiceUnavailable], right.Status, right.Error)
	}
}
