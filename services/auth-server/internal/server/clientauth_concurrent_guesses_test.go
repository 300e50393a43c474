package server_test

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestConcurrentGuessesSpendTheBudget: the (client, address) failure
// budget bounds the bcrypt checks of a guesser's secrets whatever their
// concurrency. BackedOff only peeks at the budget before a check and
// Failed spends it when the check ends (~60–250 ms later), so every guess
// that arrives while a token is left passes the peek and is checked: with
// CLIENT_SECRET_SLOW_CHECKS slots, the last token of the budget (and each
// one that refills, every window/limit) buys a check per slot, not one
// (brk42). Here the budget is 3, two are spent, three wrong guesses go at
// once and the right secret 30 ms later: it is the sixth guess and must be
// refused unchecked (429) like a wrong one; it was checked and accepted.
// The default bound on 2 CPUs (1 slot) hides it (a second guess finds the
// slot taken: 503, which spends the budget); half of 8 CPUs is 4 slots.
func TestConcurrentGuessesSpendTheBudget(t *testing.T) {
	// cost 11: slow enough that the guesses overlap
	f, ops := startOperatorFleet(t, 11, map[string]string{
		"CLIENT_AUTH_FAILURE_LIMIT": "3", "CLIENT_AUTH_FAILURE_WINDOW": "1h", "CLIENT_SECRET_SLOW_CHECKS": "4",
	})
	const guesser = "198.51.100.120"
	for i := range 2 {
		if r := f.clientCall(clientReq{Form: postCreds(ops, "first-"+strconv.Itoa(i), badRefresh()), ForwardFor: guesser}); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong guess %d: %d %s, want 401", i, r.Status, r.Error)
		}
	}
	var mu sync.Mutex
	answers := map[int]int{}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.clientCall(clientReq{Form: postCreds(ops, "burst-"+strconv.Itoa(i), badRefresh()), ForwardFor: guesser})
			mu.Lock()
			answers[r.Status]++
			mu.Unlock()
		}()
	}
	time.Sleep(30 * time.Millisecond)
	right := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: guesser})
	wg.Wait()
	if right.Status != http.StatusTooManyRequests {
		t.Errorf("the right secret as the 6th guess against a budget of 3 (3 wrong guesses in flight, the last token not yet spent): %d %s, want 429 unchecked; the three wrong ones got %v",
			right.Status, right.Error, answers)
	}
}
