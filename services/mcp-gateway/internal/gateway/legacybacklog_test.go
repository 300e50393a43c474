package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// The answers of a legacy session that wait for its GET /sse stream are
// bounded (legacyPendingAnswers requests, legacyPendingBytes of their
// bodies): a POST /messages beyond is refused 429 with Retry-After and a
// JSON-RPC error carrying its id, on the stream's replica and on another
// one (relayed), and the stream carries on. Before, every POST was
// accepted and its answer waited in the gateway's memory (brkexhaust
// finding 2: 250 pings with 1 MB ids took it from 41 to 643 MB). Here the
// answers wait because capability-core is stopped (SIGSTOP) while the
// calls are made, so what is held is certain, not a matter of socket
// buffers; the bound is the same for answers waiting on a stream its
// client does not read.
func TestLegacyBacklogIsBounded(t *testing.T) {
	f := newFleet(t)
	addr, admin, p := f.startCore(t)
	coreReady(t, admin)
	env := []string{"CORE_GRPC_ADDR", addr, "CORE_CALL_TIMEOUT", "60s", "RATE_LIMIT_PER_MINUTE", "100000"}
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-7", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	defer s.Close()
	path := s.endpoint()
	legacyInit(t, s, a, tok, path)

	p.Signal(syscall.SIGSTOP)
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			p.Signal(syscall.SIGCONT)
		}
	})
	toolCall := func(id string, pad int) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"identity.profile","arguments":{}}}` + strings.Repeat(" ", pad)
	}
	refused := func(who string, r *resp, id string) {
		t.Helper()
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("%s: %d %s, want 429 (the session's backlog is full)", who, r.Status, r.Body)
		}
		m := r.rpc(t)
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" || m.Error == nil || m.Error.Code != -32029 ||
			string(m.ID) != `"`+id+`"` || !strings.Contains(m.Error.Message, "too many answers are waiting for this session's SSE stream") {
			t.Fatalf("%s: %d Retry-After %q %s; want 429, Retry-After 1, -32029 with id %q", who, r.Status, r.Header.Get("Retry-After"), r.Body, id)
		}
	}
	var accepted []string
	// Bytes: a 600 KB body is taken while nothing waits; a second is not.
	if r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: toolCall("big-0", 600<<10)}); r.Status != http.StatusAccepted {
		t.Fatalf("first big call: %d %s", r.Status, r.Body)
	}
	accepted = append(accepted, "big-0")
	refused("second big call", a.do(t, req{Method: "POST", Path: path, Token: tok, Body: toolCall("big-1", 600<<10)}), "big-1")
	// Count: small calls are taken up to 32 waiting in all.
	n := 1
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("c-%d", i)
		r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: toolCall(id, 0)})
		if r.Status != http.StatusAccepted {
			refused("call "+id, r, id)
			break
		}
		accepted = append(accepted, id)
		n++
	}
	if n != 32 {
		t.Fatalf("%d calls accepted while none was answered, want 32 (legacyPendingAnswers)", n)
	}
	// Relayed from another replica: refused the same way there. A
	// notification, never answered, still passes.
	refused("relayed call", b.do(t, req{Method: "POST", Path: path, Token: tok, Body: toolCall("relayed-0", 0)}), "relayed-0")
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"none"}}`}); r.Status != http.StatusAccepted {
		t.Errorf("notification with a full backlog: %d %s", r.Status, r.Body)
	}
	if v := a.metric(t, `tollgate_mcp_requests_total{method="tools/call",result="backlog",transport="sse"}`); v != 2 {
		t.Errorf("a: backlog refusals = %v, want 2", v)
	}

	// Answered, the calls leave the backlog: every accepted one is answered
	// on the stream, and the session takes calls again.
	p.Signal(syscall.SIGCONT)
	resumed = true
	waiting := map[string]bool{}
	for _, id := range accepted {
		waiting[`"`+id+`"`] = true
	}
	for len(waiting) > 0 { // answers come in any order
		s.next(func(e sseEvent) bool {
			var m rpcMessage
			if json.Unmarshal([]byte(e.Data), &m) != nil || !waiting[string(m.ID)] || (m.Result == nil && m.Error == nil) {
				return false
			}
			delete(waiting, string(m.ID))
			return true
		})
	}
	for _, g := range []*gw{a, b} {
		id := "after-" + g.URL
		if r := g.do(t, req{Method: "POST", Path: path, Token: tok, Body: toolCall(id, 0)}); r.Status != http.StatusAccepted {
			t.Fatalf("call after the backlog was answered: %d %s", r.Status, r.Body)
		}
		s.next(response(id))
	}
}
