package gateway_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
)

// A disallowed Origin is refused before anything else, even before the
// token is looked at; allowed origins get CORS; no Origin passes.
func TestOriginAllowList(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	for _, path := range []string{"/mcp", "/sse", "/messages"} {
		for _, tk := range []string{"", tok} {
			r := g.do(t, req{Method: "POST", Path: path, Token: tk, Header: map[string]string{"Origin": "https://evil.example"}, Body: call("ping", nil)})
			if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s from evil origin (token %v): %d %v", path, tk != "", r.Status, r.Header)
			}
		}
		if r := g.do(t, req{Method: "POST", Path: path, Header: map[string]string{"Origin": "null"}, Body: call("ping", nil)}); r.Status != http.StatusForbidden {
			t.Errorf("%s from null origin: %d", path, r.Status)
		}
	}
	// Preflight from the allowed origin.
	r := g.do(t, req{Method: "OPTIONS", Path: "/mcp", Header: map[string]string{"Origin": allowedOrigin,
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, mcp-session-id"}})
	if r.Status/100 != 2 || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Errorf("preflight: %d %v", r.Status, r.Header)
	}
	// A real request from the allowed origin, and one without Origin.
	r = g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Header: map[string]string{"Origin": allowedOrigin}, Body: call("initialize", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "b", "version": "1"}})})
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("allowed origin: %d %v", r.Status, r.Header)
	}
	g.initialize(t, tok)
}

// On a request that arrived on loopback, the gateway refuses a Host that is
// not one of its names (DNS rebinding) — also when it listens on an
// inherited socket ("fd:3", as make dev and GatewayProcess start it), whose
// address HTTP_ADDR does not spell out.
func TestHostCheckOnLoopback(t *testing.T) {
	f := newFleet(t)
	inProcess := f.Gateway()
	inherited, _ := f.GatewayProcess()
	tok := f.Token("user-1", allScopes)
	for name, g := range map[string]*gw{"HTTP_ADDR=127.0.0.1:0": inProcess, "HTTP_ADDR=fd:3": inherited} {
		for _, host := range []string{"evil.example", "evil.example:4000", "localhost.evil.example"} {
			hr, _ := http.NewRequest("POST", g.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			hr.Host = host
			hr.Header.Set("Authorization", "Bearer "+tok)
			hr.Header.Set("Content-Type", "application/json")
			res, err := httpClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "host not allowed") {
				t.Errorf("%s, Host %s: %d %s", name, host, res.StatusCode, body)
			}
			hr, _ = http.NewRequest("GET", g.URL+"/.well-known/oauth-protected-resource/mcp", nil)
			hr.Host = host
			if res, err = httpClient.Do(hr); err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s, metadata with Host %s: %d", name, host, res.StatusCode)
			}
		}
		for _, host := range []string{"localhost:4000", "127.0.0.1", "localhost", "[::1]:4000"} {
			hr, _ := http.NewRequest("GET", g.URL+"/.well-known/oauth-protected-resource/mcp", nil)
			hr.Host = host
			res, err := httpClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("%s, Host %s: %d", name, host, res.StatusCode)
			}
		}
	}
}

// The per-subject limit is shared by the replicas and answered with 429,
// Retry-After and a JSON-RPC error; another subject is not affected.
func TestRateLimitPerSubject(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("RATE_LIMIT_PER_MINUTE", "4")
	b := f.Gateway("RATE_LIMIT_PER_MINUTE", "4")
	tok := f.Token("busy", allScopes)
	sid := a.initialize(t, tok) // 2 requests
	b.rpc(t, tok, sid, "ping", nil, nil)
	a.rpc(t, tok, sid, "ping", nil, nil)
	r := b.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)})
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("5th request: %d %s", r.Status, r.Body)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if m := r.rpc(t); m.Error == nil || !strings.Contains(m.Error.Message, "rate limit") || m.Error.Code != -32029 || string(m.ID) == "null" {
		t.Errorf("body %s", r.Body)
	}
	if r := a.do(t, req{Method: "GET", Path: "/sse", Token: tok}); r.Status != http.StatusTooManyRequests {
		t.Errorf("/sse over the limit: %d", r.Status)
	}
	other := f.Token("calm", allScopes)
	a.initialize(t, other)
}

// Redis down: requests that need it get 503 + Retry-After quickly,
// readiness stays green (Redis is shared by every replica) and reports
// Redis down in its body, and everything recovers without a restart.
func TestRedisOutageAndRecovery(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	ready := func() (int, string) {
		res, err := httpClient.Get(g.Admin + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := ready(); code != 200 {
		t.Fatal("not ready at start")
	}
	f.Redis.Stop()
	time.Sleep(leaseTTL + 50*time.Millisecond) // leased rate-limit tokens expire
	for _, r := range []req{
		{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version, Body: call("ping", nil)},
		{Method: "POST", Path: "/mcp", Token: tok, Body: call("initialize", map[string]any{"protocolVersion": version})},
		{Method: "GET", Path: "/sse", Token: tok},
	} {
		start := time.Now()
		res := g.do(t, r)
		if res.Status != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: %d %s", r.Method, r.Path, res.Status, res.Body)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s %s took %s with Redis down", r.Method, r.Path, d)
		}
	}
	if code, body := ready(); code != 200 || !strings.Contains(body, `"name":"redis","status":"down"`) {
		t.Errorf("readiness with Redis down: %d %s, want 200 reporting redis down", code, body)
	}
	if res, _ := httpClient.Get(g.Admin + "/healthz/live"); res == nil || res.StatusCode != 200 {
		t.Error("not live with Redis down")
	}
	f.Redis.Start() // an empty Redis: old sessions are gone, new ones work
	deadline := time.Now().Add(30 * time.Second)
	for _, body := ready(); !strings.Contains(body, `"name":"redis","status":"ok"`); _, body = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("readiness does not report Redis back: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sid = g.initialize(t, tok)
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check"}, nil)
}

// capability-core down: the tool answers "temporarily unavailable" within
// the deadline and the gateway stays healthy; it recovers with the core.
func TestCapabilityCoreDown(t *testing.T) {
	f := newFleet(t)
	g := f.Gateway("CORE_CALL_TIMEOUT", "1s")
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	f.StopCore()
	start := time.Now()
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &res)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call with core down took %s", d)
	} else {
		t.Logf("tool call with capability-core killed answered in %s (report, not asserted)", d.Round(100*time.Microsecond))
	}
	if code, body := g.readiness(t); code != 200 || !dependency(body, "capability-core", "down") {
		t.Errorf("readiness with capability-core down: %d %s; want 200 reporting it down", code, body)
	}
	if !res.IsError || !strings.Contains(res.Content[0].Text, "temporarily unavailable") || res.Meta["tollgate/error"] == nil {
		t.Errorf("result with core down: %+v", res)
	}
	if res, _ := httpClient.Get(g.Admin + "/healthz/live"); res == nil || res.StatusCode != 200 {
		t.Error("gateway not live with core down")
	}
	if v := g.metric(t, `tollgate_mcp_tool_calls_total{result="unavailable",tool="identity.profile"}`); v != 1 {
		t.Errorf("unavailable metric = %v", v)
	}
	// The caller sees a generic text; the log has the details, with the request id.
	logged := false
	for _, l := range strings.Split(g.Logs.String(), "\n") {
		if strings.Contains(l, `msg="tool call failed: backend unavailable"`) && strings.Contains(l, "tool=identity.profile backend=capability-core ") &&
			strings.Contains(l, "grpc_code=") && strings.Contains(l, "err=") && strings.Contains(l, "request_id=") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("the failed tool call was not logged with its details:\n%s", g.Logs)
	}
	f.StartCore()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok toolResult
		g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "identity.profile"}, &ok)
		if !ok.IsError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the core came back: %+v", ok)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A backend that never answers a call: the tool still answers within
// CORE_CALL_TIMEOUT.
func TestCapabilityCoreSlow(t *testing.T) {
	f := newFleet(t)
	// A backend that describes its service but never answers a call.
	slow := registrytest.Start(t, "slow", []registrytest.Service{{Package: "slow", Name: "S",
		Scopes: []*optionsv1.Scope{{Name: "slow.read", Description: "Read slowly"}},
		Methods: []registrytest.Method{{Name: "Get", Tool: &optionsv1.McpTool{Name: "slow.get", Title: "Get", Description: "Gets.",
			RequiredScopes: []string{"slow.read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}}},
	}})
	entered, release := slow.Hold()
	t.Cleanup(release)
	g := f.Gateway("CAPABILITY_BACKENDS", "slow="+slow.Addr, "CORE_CALL_TIMEOUT", "1s")
	tok := f.Token("user-1", "openid slow.read")
	sid := g.initialize(t, tok)
	start := time.Now()
	var res toolResult
	g.rpc(t, tok, sid, "tools/call", map[string]any{"name": "slow.get"}, &res)
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("call to a silent backend took %s, want about the 1s deadline", d)
	}
	<-entered
	if !res.IsError || !strings.Contains(res.Content[0].Text, "temporarily unavailable") {
		t.Errorf("result: %+v", res)
	}
}

// SIGTERM with streams open: they are closed so the gateway stops at once,
// and the Streamable HTTP session lives on for another replica.
func TestGracefulShutdownClosesStreams(t *testing.T) {
	f := newFleet(t)
	a := f.Gateway("SHUTDOWN_TIMEOUT", "20s")
	b := f.Gateway()
	tok := f.Token("user-1", allScopes)
	sid := a.initialize(t, tok)
	get := a.openStream(t, "/mcp", tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": version})
	legacy := a.openStream(t, "/sse", tok, nil)
	legacy.endpoint()
	start := time.Now()
	a.Stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %s with streams open", d)
	}
	if !get.ended(10*time.Second) || !legacy.ended(10*time.Second) {
		t.Error("streams still open after shutdown")
	}
	b.rpc(t, tok, sid, "tools/call", map[string]any{"name": "health.check"}, nil)
}
