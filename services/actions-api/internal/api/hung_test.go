package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tollgate/tollgate/services/platform/grpcx"
)

// TestCapabilityCoreHungFailsFastAndRecovers: capability-core stops
// answering (SIGSTOP: the kernel still accepts its connections and takes
// the calls' bytes; nothing answers). Every request then gets a 503 with
// Retry-After; the first grpcx.BreakerTripAfter wait for CORE_CALL_TIMEOUT
// and trip the connection's circuit breaker, which answers later ones
// without waiting (at most one at a time, the half-open probe, waits);
// readiness stays 200 reporting capability-core down; after SIGCONT the
// operation is served again. What is asserted is who ended each call (the
// actions-api's log of the 503: its own deadline, DeadlineExceeded, or the
// open breaker), never how long it took. No readiness probe or scrape runs
// before the calls: each would count towards the breaker too
// (docs/operations/failures.md).
func TestCapabilityCoreHungFailsFastAndRecovers(t *testing.T) {
	f := start(t, map[string]string{"CORE_CALL_TIMEOUT": "300ms"})
	tok := f.token(t, allScopes)
	if r := f.do(t, http.MethodGet, "/actions/session", bearer(tok)); r.status != 200 {
		t.Fatalf("before the hang: %d %s", r.status, r.body)
	}

	f.core.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { f.core.Signal(syscall.SIGCONT) })
	before := len(f.logs.String()) // only what the actions-api logged during the hang counts
	hungLogs := func() string { return f.logs.String()[before:] }
	// failed counts the "request failed" lines (the 503s) whose cause
	// names what ended the call.
	failed := func(logs, endedBy string) int {
		n := 0
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "request failed") && strings.Contains(line, endedBy) {
				n++
			}
		}
		return n
	}
	const timedOut, byBreaker = "code = DeadlineExceeded", "circuit breaker open"
	// call is one request, checked as f.do checks it but without the
	// document's validation, which is not safe for concurrent use (the
	// sequential calls before the trip have it).
	call := func(i int) {
		req, _ := http.NewRequest(http.MethodGet, f.base+"/actions/session", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("call %d: %v", i, err)
			return
		}
		defer res.Body.Close()
		var e Error
		derr := json.NewDecoder(res.Body).Decode(&e)
		if res.StatusCode != 503 || derr != nil || e.Error != "temporarily_unavailable" || res.Header.Get("Retry-After") == "" {
			t.Errorf("call %d with capability-core hung: %d %v %+v (%v), want 503 temporarily_unavailable with Retry-After", i, res.StatusCode, res.Header, e, derr)
		}
	}
	for i := range grpcx.BreakerTripAfter {
		if r := f.do(t, http.MethodGet, "/actions/session", bearer(tok)); r.status != 503 || r.err.Error != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("call %d with capability-core hung: %d %v %s, want 503 temporarily_unavailable with Retry-After", i, r.status, r.header, r.body)
		}
	}
	if n, m := failed(hungLogs(), timedOut), failed(hungLogs(), byBreaker); n != grpcx.BreakerTripAfter || m != 0 {
		t.Fatalf("the first %d calls with capability-core hung: %d ended by %q, %d by %q; want each to end at CORE_CALL_TIMEOUT\n%s",
			grpcx.BreakerTripAfter, n, timedOut, m, byBreaker, hungLogs())
	}
	const concurrent = 8
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range concurrent {
		wg.Add(1)
		go func() { defer wg.Done(); <-begin; call(grpcx.BreakerTripAfter + i) }()
	}
	close(begin)
	wg.Wait()
	logs := hungLogs()
	answered, waited := failed(logs, byBreaker), failed(logs, timedOut)-grpcx.BreakerTripAfter
	if answered == 0 {
		t.Errorf("none of %d calls after the trip was answered by the breaker: each waited for the hung capability-core\n%s", concurrent, logs)
	}
	if answered+waited != concurrent {
		t.Errorf("of %d calls after the trip %d were answered by the breaker and %d at the deadline; want every one by either\n%s", concurrent, answered, waited, logs)
	}
	t.Logf("after the trip (report): %d answered by the breaker, %d waited for the deadline (half-open probes)", answered, waited)
	if code, body := f.ready(t); code != 200 || !strings.Contains(body, `"name":"capability-core","status":"down"`) {
		t.Errorf("readiness with capability-core hung: %d %s, want 200 reporting it down", code, body)
	}

	f.core.Signal(syscall.SIGCONT)
	eventually(t, "/actions/session served after capability-core resumed", func() bool {
		return f.do(t, http.MethodGet, "/actions/session", bearer(tok)).status == 200
	})
}
