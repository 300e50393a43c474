package gateway_test

import (
	"strings"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// TestToolCallIsOneTrace: with OTEL_EXPORTER_OTLP_ENDPOINT set on the
// gateway and capability-core, a tools/call is one trace from the
// gateway's HTTP span through the gRPC call to capability-core's Redis
// command, as an OTLP receiver sees it; the caller's X-Request-Id reaches
// capability-core's log; the gateway logs the request.
func TestToolCallIsOneTrace(t *testing.T) {
	recv := testharness.StartOTLPReceiver(t)
	f := &fleet{t: t, Redis: testharness.StartRedis(t), Issuer: tokentest.Start(t, issuerURL)}
	f.coreEnv = map[string]string{"REDIS_URL": f.Redis.URL(), "REDIS_KEY_PREFIX": "core:", "LOG_LEVEL": "debug"}
	for k, v := range recv.Env("capability-core") {
		f.coreEnv[k] = v
	}
	f.StartCore()
	// A limit under 16 a minute is never leased (ratelimit.Leasing): each
	// request takes its token from Redis, so the traced call has a gateway
	// Redis span of its own.
	extra := []string{"RATE_LIMIT_PER_MINUTE", "15"}
	for k, v := range recv.Env("mcp-gateway") {
		extra = append(extra, k, v)
	}
	g := f.Gateway(extra...)
	tok := f.Token("user-1", allScopes)
	sid := g.initialize(t, tok)
	const reqID = "trace-test-0001"
	r := g.do(t, req{Method: "POST", Path: "/mcp", Token: tok, Session: sid, Version: version,
		Header: map[string]string{"X-Request-Id": reqID}, Body: call("tools/call", map[string]any{"name": "health.check", "arguments": map[string]any{}})})
	if r.Status != 200 || r.rpc(t).Error != nil || r.Header.Get("X-Request-Id") != reqID {
		t.Fatalf("tools/call: %d %s %v", r.Status, r.Body, r.Header)
	}

	// The trace: gateway POST /mcp → gRPC client → capability-core server → Redis PING.
	var edge, client, server, redisSpan testharness.Span
	spans, ok := recv.WaitFor(20*time.Second, func(spans []testharness.Span) bool {
		byID := map[string]testharness.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		for _, s := range spans {
			if s.Service != "capability-core" || s.Kind != tracev1.Span_SPAN_KIND_CLIENT || s.Name != "ping" {
				continue
			}
			srv, ok1 := byID[s.ParentSpanID]
			cli, ok2 := byID[srv.ParentSpanID]
			http, ok3 := byID[cli.ParentSpanID]
			if ok1 && ok2 && ok3 && srv.Service == "capability-core" && srv.Kind == tracev1.Span_SPAN_KIND_SERVER &&
				cli.Service == "mcp-gateway" && cli.Kind == tracev1.Span_SPAN_KIND_CLIENT &&
				http.Service == "mcp-gateway" && http.Kind == tracev1.Span_SPAN_KIND_SERVER {
				edge, client, server, redisSpan = http, cli, srv, s
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no trace spans gateway → capability-core → Redis; got %d spans:\n%+v", len(spans), spans)
	}
	if edge.Name != "POST /mcp" || !strings.HasSuffix(client.Name, "HealthService/GetHealth") || server.Name != client.Name {
		t.Errorf("span names: %q → %q → %q → %q", edge.Name, client.Name, server.Name, redisSpan.Name)
	}
	for _, s := range []testharness.Span{client, server, redisSpan} {
		if s.TraceID != edge.TraceID {
			t.Errorf("span %q is not in the request's trace", s.Name)
		}
	}
	// The gateway also traced its own Redis calls (session, rate limit) in the request's trace.
	gatewayRedis := 0
	for _, s := range spans {
		if s.Service == "mcp-gateway" && s.TraceID == edge.TraceID && s.Attributes["db.system.name"]+s.Attributes["db.system"] == "redis" {
			gatewayRedis++
		}
	}
	if gatewayRedis == 0 {
		t.Errorf("no gateway Redis span in the trace")
	}

	// capability-core's log line of the call names the gateway's request.
	testharness.Eventually(t, 5*time.Second, "capability-core logs request_id="+reqID, func() (bool, string) {
		logs := f.core.Logs.String()
		return strings.Contains(logs, "request_id="+reqID), logs
	})
	// The gateway's access log line.
	var line string
	for _, l := range strings.Split(g.Logs.String(), "\n") {
		if strings.Contains(l, "msg=request") && strings.Contains(l, "request_id="+reqID) {
			line = l
		}
	}
	for _, want := range []string{"http_method=POST", "route=/mcp", "mcp_method=tools/call", "tool=health.check", "status=200", "duration_ms=", "client_id=", "trace_id=" + edge.TraceID} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line lacks %q: %q", want, line)
		}
	}
}
