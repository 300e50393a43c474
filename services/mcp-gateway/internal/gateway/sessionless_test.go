package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// sessionMembers counts the sessions in every (subject, client) session
// set of the fleet's Redis: what SESSION_LIMIT_PER_SUBJECT counts.
func sessionMembers(t *testing.T, f *fleet) int64 {
	t.Helper()
	opt, err := redis.ParseURL(f.Redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "test:mcp:client-sessions:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		c, err := rdb.ZCard(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// redisKeys lists the fleet's Redis keys matching pattern.
func redisKeys(t *testing.T, f *fleet, pattern string) []string {
	t.Helper()
	opt, err := redis.ParseURL(f.Redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// ChatGPT's connector creation (oaslananka/kicad-studio-kit#34): it
// initializes, then sends the initialized notification, tools/list and
// tools/call without the Mcp-Session-Id the initialize answer gave it.
// Each is served without a session (MCP 2025-11-25, Transports, "Session
// Management": a server MAY assign a session id; only one that requires
// it answers 400), under the protocol version of MCP-Protocol-Version or,
// without the header, 2025-03-26 ("Protocol Version Header"), and takes
// no place of SESSION_LIMIT_PER_SUBJECT: the pair's one session keeps its
// place and stays usable.
func TestSessionlessChatGPTConnectorCreation(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_LIMIT_PER_SUBJECT", "1", "SESSION_EVICT_IDLE_AFTER", "0")
	tok := f.Token("user-1", allScopes)
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Header: chatGPTHeaders, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "openai-mcp", "version": "1.0.0"}})})
	if r.Status != http.StatusOK || r.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	sid := r.Header.Get("Mcp-Session-Id")
	for _, v := range []string{"2025-06-18", ""} {
		if n := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Header: chatGPTHeaders,
			Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}}); n.Status != http.StatusAccepted || len(n.Body) != 0 {
			t.Errorf("version %q: notifications/initialized without a session: %d %s, want 202 and no body", v, n.Status, n.Body)
		}
		l := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Header: chatGPTHeaders, Body: call("tools/list", nil)})
		if l.Status != http.StatusOK || l.Header.Get("Mcp-Session-Id") != "" {
			t.Fatalf("version %q: tools/list without a session: %d %v %s", v, l.Status, l.Header, l.Body)
		}
		var tools struct {
			Tools []struct{ Name string } `json:"tools"`
		}
		if m := l.rpc(t); m.Error != nil || json.Unmarshal(m.Result, &tools) != nil || len(tools.Tools) == 0 {
			t.Fatalf("version %q: tools/list without a session: %s", v, l.Body)
		}
		c := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Header: chatGPTHeaders,
			Body: call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}})})
		if m := c.rpc(t); c.Status != http.StatusOK || m.Error != nil || !strings.Contains(string(m.Result), `"content"`) || strings.Contains(string(m.Result), `"isError":true`) {
			t.Fatalf("version %q: tools/call without a session: %d %s", v, c.Status, c.Body)
		}
		for _, m := range []string{"ping", "resources/list", "resources/templates/list"} {
			if a := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Body: call(m, nil)}); a.Status != http.StatusOK || a.rpc(t).Error != nil {
				t.Errorf("version %q: %s without a session: %d %s", v, m, a.Status, a.Body)
			}
		}
		// A progress token takes the request to mcp-go's transport.
		p := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Body: call("tools/call", map[string]any{
			"name": "health.check", "arguments": map[string]any{}, "_meta": map[string]any{"progressToken": "p1"}})})
		if m := p.rpc(t); p.Status != http.StatusOK || m.Error != nil || strings.Contains(string(m.Result), `"isError":true`) {
			t.Fatalf("version %q: tools/call with a progress token without a session: %d %s %v", v, p.Status, p.Body, p.Events)
		}
	}
	if n := sessionMembers(t, f); n != 1 {
		t.Errorf("%d sessions in the session sets after the sessionless requests, want the initialize's 1", n)
	}
	if keys := redisKeys(t, f, "test:mcp:event*"); len(keys) != 0 {
		t.Errorf("sessionless requests stored events: %v", keys)
	}
	// The session is still the pair's one place: usable, and a second
	// session is refused at the cap (no eviction: 0).
	toolCall(t, g, tok, sid, http.StatusOK)
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "openai-mcp", "version": "1.0.0"}})}); r.Status != http.StatusTooManyRequests {
		t.Errorf("second initialize at the cap of 1: %d %s, want 429", r.Status, r.Body)
	}
	// A session id that is unknown or ended is still 404 (Streamable HTTP,
	// "Session Management"), never served without a session.
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: "x" + sid, Version: version, Body: call("tools/list", nil)}); r.Status != http.StatusNotFound {
		t.Errorf("unknown session: %d %s, want 404", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Session: sid, Version: version}); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("tools/list", nil)}); r.Status != http.StatusNotFound {
		t.Errorf("ended session: %d %s, want 404", r.Status, r.Body)
	}
	if n := g.metric(t, `tollgate_mcp_sessionless_requests_total{code="200",method="tools/call"}`); n != 4 {
		t.Errorf("%v sessionless tools/call in the metrics, want 4", n)
	}
}

// What a sessionless request may not do, and the refusals it keeps: a
// token for another audience or an expired one is 401, the per-subject
// rate limit applies, an unsupported MCP-Protocol-Version is 400, a
// request whose state lives in a session (logging/setLevel,
// resources/subscribe) is 400, and GET has no stream without a session
// (405: Streamable HTTP, "Listening for Messages from the Server").
func TestSessionlessRefusals(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("RATE_LIMIT_PER_MINUTE", "30")
	tok := f.Token("user-1", allScopes)
	list := func(token, v string) *resp {
		return g.do(t, req{Method: "POST", Path: "/mcp", Token: token, Version: v, Body: call("tools/list", nil)})
	}
	if r := list(f.Issuer.Mint(t, tokentest.Token{Audience: "http://localhost:4000/actions", Scope: allScopes}), version); r.Status != http.StatusUnauthorized {
		t.Errorf("another audience's token: %d %s, want 401", r.Status, r.Body)
	}
	if r := list(f.Issuer.Mint(t, tokentest.Token{Audience: resource, Scope: allScopes, IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresIn: time.Hour}), version); r.Status != http.StatusUnauthorized {
		t.Errorf("expired token: %d %s, want 401", r.Status, r.Body)
	}
	if r := list("", version); r.Status != http.StatusUnauthorized {
		t.Errorf("no token: %d %s, want 401", r.Status, r.Body)
	}
	if r := list(tok, "1999-01-01"); r.Status != http.StatusBadRequest || r.rpc(t).Error == nil {
		t.Errorf("unsupported version: %d %s, want 400", r.Status, r.Body)
	}
	for _, c := range []struct{ method, params string }{
		{"logging/setLevel", `{"level":"debug"}`},
		{"resources/subscribe", `{"uri":"tollgate://me"}`},
		{"resources/unsubscribe", `{"uri":"tollgate://me"}`},
	} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: version,
			Body: `{"jsonrpc":"2.0","id":7,"method":"` + c.method + `","params":` + c.params + `}`})
		if m := r.rpc(t); r.Status != http.StatusBadRequest || m.Error == nil || m.Error.Code != -32600 || !strings.Contains(m.Error.Message, "Mcp-Session-Id") || string(m.ID) != "7" {
			t.Errorf("%s without a session: %d %s, want 400 -32600 naming Mcp-Session-Id", c.method, r.Status, r.Body)
		}
	}
	// A client's response has nothing to answer without a session: 202.
	if r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: `{"jsonrpc":"2.0","id":1,"result":{}}`}); r.Status != http.StatusAccepted {
		t.Errorf("a response without a session: %d %s, want 202", r.Status, r.Body)
	}
	if r := g.do(t, req{Method: "GET", Path: "/mcp", Token: tok, Version: version}); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") == "" {
		t.Errorf("GET without a session: %d %v %s, want 405 with Allow", r.Status, r.Header, r.Body)
	}
	if r := g.do(t, req{Method: "DELETE", Path: "/mcp", Token: tok, Version: version}); r.Status != http.StatusBadRequest {
		t.Errorf("DELETE without a session: %d %s, want 400", r.Status, r.Body)
	}
	// The per-subject limit counts sessionless requests as any other.
	limited := false
	for i := 0; i < 40 && !limited; i++ {
		r := list(tok, version)
		switch r.Status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited = r.Header.Get("Retry-After") != ""
		default:
			t.Fatalf("tools/list %d: %d %s", i, r.Status, r.Body)
		}
	}
	if !limited {
		t.Errorf("40 sessionless requests within a minute at RATE_LIMIT_PER_MINUTE=30 were never refused with 429 and Retry-After")
	}
}

// A 2025-03-26 client without a session may send JSON-RPC batches (MCP
// 2025-03-26, "JSON-RPC Batching"): without MCP-Protocol-Version the
// request is 2025-03-26. Later versions removed batches: with their
// header the batch is refused, as in their sessions.
func TestSessionlessBatches(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},` +
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"health.check","arguments":{}}}]`
	for _, v := range []string{"", "2025-03-26"} {
		r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: v, Body: batch})
		var answers []rpcMessage
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &answers) != nil || len(answers) != 2 {
			t.Fatalf("version %q: batch without a session: %d %s, want 200 and two answers", v, r.Status, r.Body)
		}
		for _, a := range answers {
			if a.Error != nil || a.Result == nil {
				t.Errorf("version %q: batch answer %s: %+v", v, a.ID, a.Error)
			}
		}
	}
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Version: "2025-06-18", Body: batch})
	if r.Status != http.StatusBadRequest || r.rpc(t).Error == nil || r.rpc(t).Error.Code != -32600 {
		t.Errorf("2025-06-18 batch without a session: %d %s, want 400 -32600", r.Status, r.Body)
	}
	if n := sessionMembers(t, f); n != 0 {
		t.Errorf("%d sessions after sessionless batches, want none", n)
	}
}

// SESSION_REQUIRED=true keeps a server that requires sessions: a request
// without Mcp-Session-Id other than initialize is 400 (Streamable HTTP,
// "Session Management"), a batch included, and GET too.
func TestSessionRequired(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("SESSION_REQUIRED", "true")
	tok := f.Token("user-1", allScopes)
	for _, r := range []req{
		{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: call("tools/list", nil)},
		{Method: "POST", Path: "/mcp", Token: tok, Body: call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}})},
		{Method: "POST", Path: "/mcp", Token: tok, Version: version, Body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}},
		{Method: "GET", Path: "/mcp", Token: tok, Version: version},
		{Method: "DELETE", Path: "/mcp", Token: tok, Version: version},
	} {
		a := g.do(t, r)
		if a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), "Mcp-Session-Id header is required") {
			t.Errorf("%s %v without a session: %d %s, want 400", r.Method, r.Body, a.Status, a.Body)
		}
	}
	if a := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Body: `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`}); a.Status != http.StatusBadRequest {
		t.Errorf("batch without a session: %d %s, want 400", a.Status, a.Body)
	}
	// Sessions work as before.
	sid := g.initialize(t, tok)
	toolCall(t, g, tok, sid, http.StatusOK)
}
