package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/mcp-gateway/internal/session"
	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// In the steady state a call in a session costs no Redis command for the
// session: each replica admits it from memory until its renewal is due
// (the per-subject rate limit's leases still take tokens from Redis a few
// at a time). A DELETE on the other replica is still seen at once.
func TestSteadyStateCallsAskNoRedis(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway("RATE_LIMIT_PER_MINUTE", "100000"), f.Gateway("RATE_LIMIT_PER_MINUTE", "100000")
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	for _, g := range []*gw{a, b} {
		g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, nil) // B reads the record once
	}
	before := sessionCommands(t, f)
	const calls = 20
	for i := range calls {
		var res toolResult
		[]*gw{a, b}[i%2].rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
		if res.IsError || res.StructuredContent["sub"] != "user-1" {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	if after := sessionCommands(t, f); after != before {
		t.Errorf("%d session commands in Redis for %d steady-state calls, want 0", after-before, calls)
	}
	for _, g := range []*gw{a, b} {
		if v := g.metric(t, `tollgate_mcp_session_cache_total{result="memory"}`); v < calls/2 {
			t.Errorf("sessions admitted from memory = %v, want ≥ %d", v, calls/2)
		}
	}
	if r := a.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != 200 {
		t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("B after DELETE on A: %d %s", r.Status, r.Body)
	}
}

// sessionCommands counts the commands Redis ran that read or renew a
// session (EXISTS, PEXPIRE, HGETALL), from INFO commandstats.
func sessionCommands(t *testing.T, f *fleet) int64 {
	t.Helper()
	info, err := f.Redis.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		for _, c := range []string{"exists", "pexpire", "hgetall"} {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+c+":calls="); ok {
				v, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
				n += v
			}
		}
	}
	return n
}

// Two gateways share sessions through one Redis.
func TestSessionsAcrossReplicas(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)

	// initialize on A, call on B.
	sid := a.initialize(t, tok)
	var res toolResult
	b.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
	if res.IsError || res.StructuredContent["sub"] != "user-1" {
		t.Fatalf("call on B: %+v", res)
	}
	// The negotiated version is known on B.
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: "2025-06-18", Body: call("ping", nil)}); r.Status != 400 {
		t.Errorf("wrong version on B: %d", r.Status)
	}
	// Another subject cannot use it on either.
	for _, g := range []*gw{a, b} {
		if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: f.Token("mallory", allScopes), Session: sid, Version: version, Body: call("ping", nil)}); r.Status != 404 {
			t.Errorf("other subject: %d", r.Status)
		}
	}

	// B now knows the record and that the session lives (no Redis
	// command: TestSteadyStateCallsAskNoRedis)...
	b.rpc(t, tok, sid, "ping", nil, nil)
	if v := b.metric(t, `tollgate_mcp_session_cache_total{result="memory"}`); v < 1 {
		t.Errorf("sessions admitted from memory on B = %v", v)
	}
	// ...and still sees a DELETE on A at once (below): A answers the
	// DELETE once every replica has acknowledged the session's end.

	// A GET stream held on B ends when the session is deleted on A.
	s := b.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
	if v := b.metric(t, `tollgate_mcp_open_streams{transport="streamable-http"}`); v != 1 {
		t.Errorf("open streams on B = %v", v)
	}
	if r := a.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != 200 {
		t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
	}
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("B after DELETE on A: %d", r.Status)
	}
	if !s.ended(30 * time.Second) {
		t.Error("the GET stream on B stayed open after DELETE on A")
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.metric(t, `tollgate_mcp_open_streams{transport="streamable-http"}`) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("open-stream gauge did not return to 0")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := a.metric(t, `tollgate_mcp_sessions_total{event="deleted",transport="streamable-http"}`); v != 1 {
		t.Errorf("deleted sessions on A = %v", v)
	}
}

// The SSE stream held on A receives the response to a /messages POST sent to B.
func TestLegacyMessagesRelayedAcrossReplicas(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	s := a.openStream(t, "/sse", tok, nil)
	path := s.endpoint()
	legacyInit(t, s, b, tok, path) // the handshake itself goes through B
	c := call("tools/call", map[string]any{"name": "auth.session"})
	if r := b.do(t, req{Method: "POST", Path: path, Token: tok, Body: c}); r.Status != http.StatusAccepted {
		t.Fatalf("POST to B: %d %s", r.Status, r.Body)
	}
	e := s.next(response(c["id"]))
	if !strings.Contains(e.Data, `user-1`) {
		t.Errorf("response on A's stream: %s", e.Data)
	}
	if v := b.metric(t, `tollgate_mcp_relayed_messages_total{direction="sent"}`); v < 3 {
		t.Errorf("relayed from B: %v", v)
	}
	if v := a.metric(t, `tollgate_mcp_relayed_messages_total{direction="received"}`); v < 3 {
		t.Errorf("received on A: %v", v)
	}
	// Another subject cannot post into it through B.
	if r := b.do(t, req{Method: "POST", Path: path, Token: f.Token("mallory", allScopes), Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("other subject through B: %d", r.Status)
	}
}

// Killing the replica that served a session does not end it: the client
// continues on B and resumes a broken stream there with Last-Event-ID.
func TestReplicaKilledMidSession(t *testing.T) {
	f := newFleet(t)
	a, _ := f.GatewayProcess()
	b := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)

	// A tool call with a progress token answers as an SSE stream whose
	// events are recorded in Redis.
	c := call("tools/call", map[string]any{"name": "health.check", "_meta": map[string]any{"progressToken": "p1"}})
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: c})
	if r.Status != 200 || len(r.Events) < 2 {
		t.Fatalf("streamed call on A: %d %+v %s", r.Status, r.Events, r.Body)
	}
	first := r.Events[0]
	if !strings.Contains(first.Data, "notifications/progress") || first.ID == "" {
		t.Fatalf("first event %+v is not a recorded progress notification", first)
	}
	// A legacy stream on A dies with A.
	legacy := a.openStream(t, "/sse", tok, nil)
	lpath := legacy.endpoint()

	a.Stop() // SIGKILL: no goodbye

	// B continues the session...
	var res toolResult
	b.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
	if res.IsError {
		t.Fatalf("call on B after A died: %+v", res)
	}
	// ...and replays what the client missed after the progress event.
	resumed := b.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: sid, Version: version, Header: map[string]string{"Last-Event-ID": first.ID}})
	if resumed.Status != 200 || len(resumed.Events) != len(r.Events)-1 {
		t.Fatalf("resume on B: %d %+v", resumed.Status, resumed.Events)
	}
	var m rpcMessage
	if err := json.Unmarshal([]byte(resumed.Events[len(resumed.Events)-1].Data), &m); err != nil || !strings.Contains(string(m.Result), "structuredContent") {
		t.Errorf("replayed response: %s", resumed.Events[len(resumed.Events)-1].Data)
	}
	// An event id of another session is unknown here.
	other := b.initialize(t, tok)
	if r := b.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Session: other, Version: version, Header: map[string]string{"Last-Event-ID": first.ID}}); r.Status != 400 {
		t.Errorf("foreign Last-Event-ID: %d", r.Status)
	}
	// The legacy session that lived on A is gone: 404 through B.
	if r := b.do(t, req{Method: "POST", Path: lpath, Token: tok, Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("legacy session of the dead replica: %d %s", r.Status, r.Body)
	}
}

// POST answers JSON or SSE per Accept: a progress request streams only for
// a client that accepts text/event-stream. (mcp-go keeps answering a session
// with SSE once it has streamed to it, so each case has its own session.)
func TestAnswerFollowsAccept(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	c := func() map[string]any {
		return call("tools/call", map[string]any{"name": "health.check", "_meta": map[string]any{"progressToken": "p"}})
	}
	jsonOnly := g.initialize(t, tok)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: jsonOnly, Version: version, Body: c(), Header: map[string]string{"Accept": "application/json"}})
	if r.Header.Get("Content-Type") != "application/json" || r.rpc(t).Result == nil {
		t.Errorf("Accept JSON only: %s %s %+v", r.Header.Get("Content-Type"), r.Body, r.Events)
	}
	streaming := g.initialize(t, tok)
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: streaming, Version: version, Body: c()})
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") || len(r.Events) != 2 {
		t.Errorf("Accept with SSE: %s %d events", r.Header.Get("Content-Type"), len(r.Events))
	}
}

// Sessions cost mcp-go no per-session state: initialize on A and calls on
// A and B leave no registered session on either (the gateway answers those
// requests itself through MCPServer.HandleMessage); only a GET stream
// registers one, for as long as it is open (the gateway serves the stream
// itself: listen).
func TestNoMCPGoStatePerSession(t *testing.T) {
	f := newFleet(t)
	a, b := f.Gateway(), f.Gateway()
	tok := f.Token("user-1", allScopes)
	var sids []string
	for range 3 {
		sid := a.initialize(t, tok)
		sids = append(sids, sid)
		for _, g := range []*gw{a, b} {
			var res toolResult
			g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
			if res.IsError || res.StructuredContent["sub"] != "user-1" {
				t.Fatalf("call: %+v", res)
			}
			g.rpc(t, tok, sid, "tools/list", nil, nil)
		}
	}
	for name, g := range map[string]*gw{"A": a, "B": b} {
		if v := g.metric(t, "tollgate_mcp_active_sessions"); v != 0 {
			t.Errorf("mcp-go sessions on %s after initialize and calls: %v", name, v)
		}
	}
	s := b.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sids[0], "Mcp-Protocol-Version": version})
	registered := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			v := b.metric(t, "tollgate_mcp_active_sessions")
			return v == want, fmt.Sprintf("mcp-go sessions on B: %v, want %v", v, want)
		}
	}
	testharness.Eventually(t, 30*time.Second, "the GET stream registers its session", registered(1))
	s.Close()
	testharness.Eventually(t, 30*time.Second, "nothing is left registered once the stream closed", registered(0))
}

// A session's record keeps the client's name, version and title, not its
// icons, description or website, and its standard capabilities, not its
// experimental ones or extensions: an icon's data: URI or a free-form
// capability would otherwise sit in Redis for the session's life, times
// every session of every subject. The replica that adopts the session
// still knows the client by name and what it supports.
func TestSessionRecordKeepsOnlyTheClientsIdentity(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	icon := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 400)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version,
		"capabilities": map[string]any{"roots": map[string]any{"listChanged": true},
			"experimental": map[string]any{"blob": strings.Repeat("e", 4000)},
			"extensions":   map[string]any{"x.example/ext": map[string]any{"blob": strings.Repeat("x", 4000)}}},
		"clientInfo": map[string]any{"name": "big-client", "version": "2.1", "title": "Big Client",
			"description": strings.Repeat("d", 500), "websiteUrl": "https://client.example/",
			"icons": []map[string]any{{"src": icon, "mimeType": "image/png"}}},
	})})
	if r.Status != 200 {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	sid := r.Header.Get("Mcp-Session-Id")
	rdb, err := redisx.Open(context.Background(), config.Redis{URL: f.Redis.URL(), KeyPrefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	key := rdb.Key("mcp", "session", redisx.Tag(redisx.Hash(sid)))
	var rec map[string]string
	testharness.Eventually(t, 10*time.Second, "initialize's record has the client's info", func() (bool, string) {
		rec = rdb.HGetAll(context.Background(), key).Val()
		return rec["client_info"] != "", fmt.Sprint(rec)
	})
	if got, want := rec["client_info"], `{"name":"big-client","version":"2.1","title":"Big Client"}`; got != want {
		t.Errorf("client_info stored = %.200s, want %s", got, want)
	}
	if got, want := rec["capabilities"], `{"roots":{"listChanged":true}}`; got != want {
		t.Errorf("capabilities stored = %.200s, want %s", got, want)
	}
	var leaked []string
	for k, v := range rec {
		if strings.Contains(v, "iVBORw0KGgo") || strings.Contains(v, "ddddd") || strings.Contains(v, "eeeee") || strings.Contains(v, "xxxxx") {
			leaked = append(leaked, k)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("%d fields of the session record hold the icon, the description, experimental capabilities or extensions, e.g. %s", len(leaked), leaked[0])
	}
	if n := rdb.MemoryUsage(context.Background(), key).Val(); n > 1024 {
		t.Errorf("session record: %d bytes in Redis, want at most 1 KiB", n)
	}
}

// logging/setLevel and resources/subscribe are kept in the session record:
// a level set on one replica is the session's on every replica, and the
// per-session subscription cap counts subscriptions made on any replica.
// Neither leaves mcp-go state behind on the replica that served it.
func TestSessionStateAcrossReplicas(t *testing.T) {
	f := newFleet(t)
	env := []string{"RATE_LIMIT_PER_MINUTE", "100000", "MCP_CONFORMANCE_FIXTURES", "true"} // test://template/{id}/data
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)

	b.rpc(t, tok, sid, "logging/setLevel", map[string]any{"level": "warning"}, nil)
	rdb, err := redisx.Open(context.Background(), config.Redis{URL: f.Redis.URL(), KeyPrefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	key := rdb.Key("mcp", "session", redisx.Tag(redisx.Hash(sid)))
	if l := rdb.HGet(context.Background(), key, "log_level").Val(); l != "warning" {
		t.Errorf("log_level in the session record = %q, want warning", l)
	}
	r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("logging/setLevel", map[string]any{"level": "loud"})})
	if m := r.rpc(t); m.Error == nil || m.Error.Code != -32602 {
		t.Errorf("logging/setLevel loud: %s", r.Body)
	}

	for i := range session.MaxSubscriptions {
		[]*gw{a, b}[i%2].rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": fmt.Sprintf("test://template/%d/data", i)}, nil)
	}
	over := call("resources/subscribe", map[string]any{"uri": "test://template/one-more/data"})
	for _, g := range []*gw{a, b} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: over})
		if m := r.rpc(t); r.Status != 200 || m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, "at most 64") {
			t.Errorf("subscription beyond the cap: %d %s", r.Status, r.Body)
		}
	}
	a.rpc(t, tok, sid, "resources/unsubscribe", map[string]any{"uri": "test://template/1/data"}, nil)
	b.rpc(t, tok, sid, "resources/subscribe", map[string]any{"uri": "test://template/one-more/data"}, nil)
	for _, g := range []*gw{a, b} {
		if v := g.metric(t, "tollgate_mcp_active_sessions"); v != 0 {
			t.Errorf("mcp-go sessions registered = %v, want 0", v)
		}
	}

	if r := b.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if n := rdb.Exists(context.Background(), key).Val(); n != 0 {
		t.Error("the session record outlived DELETE")
	}
	if r := a.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("logging/setLevel", map[string]any{"level": "debug"})}); r.Status != 404 {
		t.Errorf("logging/setLevel after DELETE: %d %s", r.Status, r.Body)
	}
}

// On a Redis Cluster, too, a DELETE is answered once every replica has
// acknowledged the session's end: the announcement is published on the
// node that holds every replica's subscription (PUBLISH counts only that
// node's subscribers), so neither replica is left out of the count.
func TestDeleteAcknowledgedByEveryReplicaOnCluster(t *testing.T) {
	cluster, err := testharness.NewRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	f := newFleet(t)
	cfg := cluster.Config(t)
	env := []string{"REDIS_MODE", cfg.Mode, "REDIS_URL", cfg.URL, "REDIS_KEY_PREFIX", cfg.KeyPrefix, "LOG_LEVEL", "debug"}
	a, b := f.Gateway(env...), f.Gateway(env...)
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	for range 2 {
		b.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, nil)
	}
	if v := b.metric(t, `tollgate_mcp_session_cache_total{result="memory"}`); v < 1 {
		t.Errorf("sessions admitted from memory on B = %v", v)
	}
	if r := a.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != 200 {
		t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
	}
	acked := false
	for _, line := range strings.Split(a.Logs.String(), "\n") {
		acked = acked || strings.Contains(line, `msg="session end acknowledged"`) && strings.Contains(line, " subscribers=2 ")
	}
	if !acked {
		t.Errorf("A did not wait for both replicas:\n%s", a.Logs)
	}
	if r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)}); r.Status != 404 {
		t.Errorf("B after DELETE on A: %d %s", r.Status, r.Body)
	}
}
