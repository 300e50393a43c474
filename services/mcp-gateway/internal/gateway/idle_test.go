package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// BenchmarkIdleSession is what an idle Streamable HTTP session costs
// (issue 12: gateway heap ≤ 2 KB, Redis ≤ 512 B per idle session), on the
// gateway binary with a real Redis and capability-core, in two shapes:
//
//   - "initialize": initialize and notifications/initialized, then nothing;
//   - "get-stream": the same, then a GET /mcp event stream opened (its 200
//     and headers received) and closed by the client, then nothing;
//   - "initialize-again": the first shape once more, on a Redis and a
//     gateway that have grown their tables already.
//
// Each shape opens TOLLGATE_BENCH_IDLE_SESSIONS sessions (default 500),
// 100 per subject, and reports the gateway's live heap after a GC
// (/debug/pprof/heap?gc=1) and Redis' used_memory, before and after,
// divided by the sessions; and how many sessions mcp-go holds registered
// (tollgate_mcp_active_sessions) once every stream has closed.
//
// It runs once whatever b.N is: run it with -benchtime 1x.
func BenchmarkIdleSession(b *testing.B) {
	n := envInt(b, "TOLLGATE_BENCH_IDLE_SESSIONS", 500)
	f := &fleet{t: b, Redis: testharness.StartRedis(b), Issuer: tokentest.Start(b, issuerURL)}
	f.StartCore()
	g, _ := f.GatewayProcess("SESSION_LIMIT_PER_SUBJECT", "100", "RATE_LIMIT_PER_MINUTE", "1000000000", "LOG_LEVEL", "warn", "ADMIN_PPROF", "true")
	// Warm up every path once (first-use allocations are not per session).
	warm := f.Token("warm", allScopes)
	for range 3 {
		sid := g.initialize(b, warm)
		openAndCloseStream(b, g, warm, sid)
	}
	waitStreamsClosed(b, g)
	for _, shape := range []struct {
		name   string
		stream bool
	}{{"initialize", false}, {"get-stream", true}, {"initialize-again", false}} {
		tokens := make([]string, (n+99)/100)
		for i := range tokens {
			tokens[i] = f.Token(fmt.Sprintf("idle-%s-%d", shape.name, i), allScopes)
		}
		time.Sleep(time.Second) // let earlier garbage settle
		heap0, redis0 := heapAlloc(b, g.Admin), redisMemory(b, f)
		for i := range n {
			tok := tokens[i/100]
			sid := g.initialize(b, tok)
			if shape.stream {
				openAndCloseStream(b, g, tok, sid)
			}
		}
		waitStreamsClosed(b, g)
		heapPer := float64(heapAlloc(b, g.Admin)-heap0) / float64(n)
		redisPer := float64(redisMemory(b, f)-redis0) / float64(n)
		registered := g.metric(b, "tollgate_mcp_active_sessions")
		b.Logf("idle session, %s (%d sessions): gateway heap %.0f bytes each, Redis memory %.0f bytes each; mcp-go sessions registered afterwards: %.0f",
			shape.name, n, heapPer, redisPer, registered)
		b.ReportMetric(heapPer, "gateway-heap-B/"+shape.name)
		b.ReportMetric(redisPer, "redis-B/"+shape.name)
	}
}

// openAndCloseStream opens a GET /mcp event stream of the session, waits
// for its answer's header and closes it.
func openAndCloseStream(b *testing.B, g *gw, token, sid string) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/mcp", nil)
	hr.Header.Set("Accept", "text/event-stream")
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Mcp-Session-Id", sid)
	hr.Header.Set("Mcp-Protocol-Version", version)
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(hr)
	if err != nil {
		b.Fatalf("GET /mcp: %v", err)
	}
	if res.StatusCode != 200 {
		b.Fatalf("GET /mcp: %d", res.StatusCode)
	}
	cancel()
	res.Body.Close()
}

// waitStreamsClosed waits until the gateway has seen every GET /mcp stream close.
func waitStreamsClosed(b *testing.B, g *gw) {
	b.Helper()
	testharness.Eventually(b, 60*time.Second, "every GET /mcp stream closed on the gateway", func() (bool, string) {
		v := g.metric(b, `tollgate_mcp_open_streams{transport="streamable-http"}`)
		return v == 0, fmt.Sprintf("open streams: %v", v)
	})
}
