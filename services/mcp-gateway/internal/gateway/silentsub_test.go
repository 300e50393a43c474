package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestSilentSubscriptionIsReplaced: replica B reaches Redis through a
// proxy that makes the connections it holds go silent — kept open, no byte
// forwarded either way, as behind a sidecar that keeps ACKing or a NAT
// whose node died — while new connections are forwarded. B's subscription
// (terminations, relayed legacy messages, acknowledgements,
// notifications) was never noticed silent: go-redis's health check PINGs,
// but only a PING it cannot write makes it reconnect. Now B notices the
// missing PONG and subscribes again; meanwhile and until every session is
// confirmed with Redis again, it admits no session from memory, so a
// session deleted on A while B was deaf is 404 on B (it was admitted from
// memory until its renewal, up to a minute later), and /messages POSTed
// to A are relayed to the legacy stream held on B again.
func TestSilentSubscriptionIsReplaced(t *testing.T) {
	f := newFleet(t)
	proxy := testharness.StartHungProxy(t, f.Redis.Addr())
	// The polls below are not to be refused as too many.
	a := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	b := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000", "REDIS_URL", "redis://"+proxy.Addr()+"/0")
	tok := f.Token("user-1", allScopes)
	s, path := b.openLegacy(t, tok)
	relayed := 0
	// relayedPing POSTs a ping to A for the legacy stream on B, and
	// reports whether an answer to it (or to an earlier one) arrived
	// on the stream soon after.
	relayedPing := func() (bool, string) {
		relayed++
		r := a.do(t, req{Method: "POST", Path: path, Token: tok, Body: map[string]any{"jsonrpc": "2.0", "id": relayed, "method": "ping"}})
		wait := time.After(500 * time.Millisecond)
		for {
			select {
			case e, ok := <-s.events:
				if !ok {
					t.Fatal("the legacy stream on B ended")
				}
				var m rpcMessage
				if json.Unmarshal([]byte(e.Data), &m) == nil && m.Result != nil && len(m.ID) > 0 {
					return true, ""
				}
			case <-wait:
				return false, fmt.Sprintf("ping %d POSTed to A: %d %s, no answer on the stream", relayed, r.Status, r.Body)
			}
		}
	}
	testharness.Eventually(t, 30*time.Second, "a message relayed to B", relayedPing)

	sid := a.initialize(t, tok)
	for range 2 {
		b.rpc(t, tok, sid, "ping", nil, nil)
	}
	if v := b.metric(t, `tollgate_mcp_session_cache_total{result="memory"}`); v < 1 {
		t.Fatalf("sessions admitted from memory on B = %v", v)
	}

	proxy.SilenceHeld()
	// A answers once every subscriber acknowledged, or after 2 s: B's
	// silent subscription cannot.
	if r := a.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
	}
	testharness.Eventually(t, 30*time.Second, "the session deleted on A refused on B", func() (bool, string) {
		r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)})
		return r.Status == http.StatusNotFound, fmt.Sprintf("%d %s", r.Status, r.Body)
	})
	testharness.Eventually(t, 30*time.Second, "a message relayed to B after its subscription went silent", relayedPing)
	if v := b.metric(t, `tollgate_redis_pubsub_resubscribes_total{kind="mcp"}`); v != 1 {
		t.Errorf(`tollgate_redis_pubsub_resubscribes_total{kind="mcp"} on B = %v, want 1`, v)
	}
	if v := a.metric(t, `tollgate_redis_pubsub_resubscribes_total{kind="mcp"}`); v != 0 {
		t.Errorf(`tollgate_redis_pubsub_resubscribes_total{kind="mcp"} on A = %v, want 0`, v)
	}
}
