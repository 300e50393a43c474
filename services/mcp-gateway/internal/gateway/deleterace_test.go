package gateway_test

import (
	"net/http"
	"sync"
	"testing"
)

// TestRacingDeletesCountTheSessionOnce: two DELETEs of one session on two
// replicas both answer 200 (the second finds the record gone after its
// lookup), and each counted sessions_total{event="deleted"}: ten sessions
// were counted deleted twenty times (review2), where monitoring.md defines
// deleted as the record removed from Redis. Only the DELETE that removed
// it counts it.
func TestRacingDeletesCountTheSessionOnce(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	const sessions = 10
	for range sessions {
		sid := a.initialize(t, tok)
		b.rpc(t, tok, sid, "ping", nil, nil) // b admits it too
		var wg sync.WaitGroup
		status := make([]int, 2)
		for j, g := range []*gw{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status[j] = g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}).Status
			}()
		}
		wg.Wait()
		for j, st := range status {
			if st != http.StatusOK && st != http.StatusNotFound {
				t.Errorf("DELETE on replica %d: %d, want 200 (or 404 once the other's DELETE is known)", j, st)
			}
		}
	}
	const deleted = `tollgate_mcp_sessions_total{event="deleted",transport="streamable-http"}`
	if n := a.metric(t, deleted) + b.metric(t, deleted); n != sessions {
		t.Errorf("%d sessions deleted, counted %v times (a %v, b %v)", sessions, n, a.metric(t, deleted), b.metric(t, deleted))
	}
}
