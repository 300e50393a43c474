package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// Requests of a legacy session with the same id are counted apart in its
// backlog: each answer gives back its own request's place, as every
// request's id travels through mcp-go as a token of its own. Before, the
// backlog knew a request by the id mcp-go echoes: a ping's answer of id
// "dup" gave back the place of a tools/call of id "dup" still running,
// whose 7.8 MB result was then counted nowhere while it waited for a
// stream its client did not read — and the session took requests as if
// none waited.
func TestLegacyRequestsOfOneIDAreCountedApart(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	env := []string{"CAPABILITY_BACKENDS", "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr,
		"RATE_LIMIT_PER_MINUTE", "100000", "CORE_CALL_TIMEOUT", "60s", "STREAM_WRITE_TIMEOUT", "60s"}
	a := f.Gateway(env...)
	tok := f.Token("user-1", "openid notes.read")
	s := openRawLegacy(t, a, tok)

	entered, release := notes.Hold()
	released := false
	t.Cleanup(func() {
		if !released {
			release()
		}
	})
	if r := s.post(a, toolCallBody(`"dup"`, "notes.list", registrytest.BigReplyText(3_900_000))); r.Status != 202 {
		t.Fatalf("big call: %d %s", r.Status, r.Body)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not reach its backend")
	}
	if r := s.post(a, `{"jsonrpc":"2.0","id":"dup","method":"ping"}`); r.Status != 202 {
		t.Fatalf("ping: %d %s", r.Status, r.Body)
	}
	if got, d := s.answer(); string(got.ID) != `"dup"` || got.Result == nil || len(d) > 100 {
		t.Fatalf("ping's answer: %.300s", d)
	}
	release()
	released = true
	// The call's 7.8 MB result now waits for the stream, counted in its
	// own place: requests are refused. Pings probe it, every 3 seconds (a
	// bound on the wait, not a speed assertion: the result is made and
	// encoded under the race detector), within the 32 requests a session
	// may have waiting.
	pings, refused := 0, false
	for i := 0; i < 28 && !refused; i++ {
		r := s.post(a, fmt.Sprintf(`{"jsonrpc":"2.0","id":"p-%d","method":"ping"}`, i))
		switch r.Status {
		case 202:
			pings++
			time.Sleep(3 * time.Second)
		case 429:
			refused = true
			if !strings.Contains(string(r.Body), "4194304 bytes of tool results") {
				t.Errorf("refusal: %s", r.Body)
			}
		default:
			t.Fatalf("ping: %d %s", r.Status, r.Body)
		}
	}
	if !refused {
		t.Fatalf("%d requests taken while a 7.8 MB result waited for the stream: the result was counted nowhere", pings)
	}
	// The answers, in any order: the probes answered before the result
	// was made come first.
	for n := 0; n < 1+pings; n++ {
		got, d := s.answer()
		switch {
		case string(got.ID) == `"dup"`:
			if got.Result == nil || len(d) < 7_800_000 {
				t.Fatalf("the call's answer: %.300s", d)
			}
		case !strings.HasPrefix(string(got.ID), `"p-`) || got.Result == nil:
			t.Fatalf("a probe's answer: %.300s", d)
		}
	}
}

// A legacy client's notifications/cancelled cancels the request it names
// (MCP "Cancellation"): mcp-go knows the request by its token, and the
// cancellation is pointed at it. Here a tools/call held at its backend
// ends, and is answered, as soon as it is cancelled — long before
// CORE_CALL_TIMEOUT (60s) — for a plain id and for one mcp-go would not echo
// (a 20-digit integer: a token before too, which no cancellation found).
func TestLegacyCancellationReachesTheRequest(t *testing.T) {
	f := newFleet(t)
	notes := registrytest.Start(t, "notes", []registrytest.Service{notesService("notes")})
	env := []string{"CAPABILITY_BACKENDS", "capability-core=" + f.CoreAddr + ",notes=" + notes.Addr,
		"RATE_LIMIT_PER_MINUTE", "100000", "CORE_CALL_TIMEOUT", "60s"}
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-1", "openid notes.read")
	s := openRawLegacy(t, a, tok)

	entered, release := notes.Hold()
	defer release()
	for i, id := range []string{`7`, `12345678901234567890`} {
		g := []*gw{a, b}[i] // the cancellation posted to the stream's replica, then relayed
		if r := s.post(a, toolCallBody(id, "notes.list", "x")); r.Status != 202 {
			t.Fatalf("call %s: %d %s", id, r.Status, r.Body)
		}
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the call did not reach its backend")
		}
		if r := s.post(g, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`+id+`,"reason":"test"}}`); r.Status != 202 {
			t.Fatalf("cancel %s: %d %s", id, r.Status, r.Body)
		}
		answered := make(chan string, 1)
		go func() {
			_, d := s.answer()
			answered <- d
		}()
		select {
		case d := <-answered:
			if !strings.HasPrefix(d, `{"jsonrpc":"2.0","id":`+id+`,`) {
				t.Fatalf("call %s after its cancellation: %.300s", id, d)
			}
		case <-time.After(30 * time.Second): // a bound on the wait: CORE_CALL_TIMEOUT is 60s
			t.Fatalf("call %s still running 30s after its cancellation", id)
		}
	}
}
