package server_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// slowCheckStats reads the auth-server's tollgate_auth_client_secret_slow_*
// series (metricsAt), by name without the prefix.
func slowCheckStats(t *testing.T, f *fleet) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, v := range metricsAt(t, f.Admin()+"/metrics") {
		if rest, ok := strings.CutPrefix(name, "tollgate_auth_client_secret_slow_"); ok {
			out[rest] = v
		}
	}
	return out
}

// TestSlowCheckBoundOverHTTP: a flood of wrong bcrypt secrets from 96
// addresses, 16 at a time, against CLIENT_SECRET_SLOW_CHECKS=2: the
// server's own count of bcrypt checks in flight (taken around each check)
// never exceeds 2, every wrong secret is either checked (401) or not run
// (503, Retry-After), and none is accepted. The fast hash client and a
// cached operator secret, sent during the flood, are never answered 503:
// they take no slot. Restarted with CLIENT_SECRET_SLOW_CHECKS unset, the
// bound is half of the GOMAXPROCS the auth-server runs with — read from
// its own /metrics (go_sched_gomaxprocs_threads), not this process's
// runtime, so the check holds whoever sets it (go test -cpu, a server
// started as a process).
func TestSlowCheckBoundOverHTTP(t *testing.T) {
	f, ops := startOperatorFleet(t, 6, map[string]string{
		"CLIENT_SECRET_SLOW_CHECKS": "2",
	})
	apps := f.Clients["gpt-apps-mcp"]
	// Verified once: from then on cached.
	if r := f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: "203.0.113.9"}); r.Error != "invalid_grant" {
		t.Fatalf("operator client, right secret: %d %s %s", r.Status, r.Error, r.Description)
	}
	if s := slowCheckStats(t, f); s["checks_limit"] != 2 || s["checks_total"] != 1 {
		t.Fatalf("before the flood: %v", s)
	}
	var mu sync.Mutex
	answers := map[int]int{}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := f.clientCall(clientReq{Form: postCreds(ops, "flood-"+strconv.Itoa(i), badRefresh()), ForwardFor: fmt.Sprintf("10.7.%d.%d", i/200, i%200+1)})
				mu.Lock()
				answers[r.Status]++
				mu.Unlock()
				if r.Status == http.StatusServiceUnavailable && (r.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") != "1") {
					t.Errorf("busy answer: %s, Retry-After %q", r.Error, r.Header.Get("Retry-After"))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 10 {
			for _, r := range []tokenResponse{
				f.clientCall(clientReq{Form: postCreds(apps, apps.ClientSecret, badRefresh()), ForwardFor: "203.0.113.10"}),
				f.clientCall(clientReq{Form: postCreds(ops, opSecret1, badRefresh()), ForwardFor: "203.0.113." + strconv.Itoa(20+i)}),
			} {
				if r.Error != "invalid_grant" {
					t.Errorf("real client during the flood: %d %s %s", r.Status, r.Error, r.Description)
				}
			}
		}
	}()
	const flood = 96
	for i := range flood {
		work <- i
	}
	close(work)
	wg.Wait()
	s := slowCheckStats(t, f)
	t.Logf("answers %v, stats %v", answers, s)
	if answers[http.StatusUnauthorized]+answers[http.StatusServiceUnavailable] != flood {
		t.Errorf("answers to %d wrong secrets: %v, want only 401 and 503", flood, answers)
	}
	if s["checks_in_flight_max"] > 2 || s["checks_in_flight_max"] < 1 || s["checks_in_flight"] != 0 {
		t.Errorf("in flight: at most %v (bound 2), now %v", s["checks_in_flight_max"], s["checks_in_flight"])
	}
	// The cached secret ran no check: the one before the flood, then one
	// per 401.
	if s["checks_total"] != float64(1+answers[http.StatusUnauthorized]) || s["checks_busy_total"] != float64(answers[http.StatusServiceUnavailable]) {
		t.Errorf("checks run %v, busy %v; want %d and %d", s["checks_total"], s["checks_busy_total"], 1+answers[http.StatusUnauthorized], answers[http.StatusServiceUnavailable])
	}

	f.restart(map[string]string{"CLIENT_SECRET_SLOW_CHECKS": ""})
	if r := f.clientCall(clientReq{Form: postCreds(ops, "wrong", badRefresh()), ForwardFor: "203.0.113.9"}); r.Status != http.StatusUnauthorized {
		t.Errorf("wrong operator secret after the restart: %d %s", r.Status, r.Error)
	}
	m := metricsAt(t, f.Admin()+"/metrics")
	procs, ok := m["go_sched_gomaxprocs_threads"]
	if !ok || procs < 1 {
		t.Fatalf("the auth-server's GOMAXPROCS (go_sched_gomaxprocs_threads): %v %v", procs, ok)
	}
	if want := max(1, float64(int(procs)/2)); m["tollgate_auth_client_secret_slow_checks_limit"] != want {
		t.Errorf("default bound %v, want %v (the auth-server's GOMAXPROCS %v)", m["tollgate_auth_client_secret_slow_checks_limit"], want, procs)
	}
	if n := m["tollgate_auth_client_secret_slow_checks_total"]; n != 1 {
		t.Errorf("after the restart: %v checks, want 1", n)
	}
}
